"""Numba kernels for the elementwise ops: sign, the surrogates (a fused one-pass FDA), eta, and the fused
elementwise parts of the quantizer (SEMANTICS 1-4).

Every kernel comes as a serial ``*_range(…, start, stop)`` body and a parallel driver that splits the flat
index range into chunks over ``prange``; the Python wrappers in :mod:`.ops` call the serial body directly for
small arrays (a parallel region costs a few microseconds). fastmath is OFF everywhere: the kernels must agree
with the NumPy reference to a few ulp, and NaN / inf must propagate as they do there.

The FDA surrogate (Eq. 10) is evaluated in closed form with the range reduction of
:func:`fdaref.estimators.fda`: t = omega x (float64), k = rint(t / pi), r = t - k pi, M = 2 (n + 1),
value (-1)^k sin(M r) / (2 sin r), Taylor branch (n + 1)(1 - (M^2 - 1) r^2 / 6) where |M r| < 1e-3.
The two sines are branch-free polynomials (Taylor coefficients 1/k!, Cody-Waite reduction of M r by
pi/2 in three parts), so LLVM vectorises the loop; libm's sin would not vectorise and costs 10x more.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.core.extending import intrinsic, overload

import os
_CACHE = os.environ.get("FDAREF_NUMBA_NOCACHE") != "1"
CHUNK = 1 << 15          # elements per parallel work item
PAR_MIN = 1 << 16        # below this many elements the serial body runs (no parallel region)

@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma): an exactly specified operation, not a fast-math licence."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return a(a, b, c), codegen


# pi/2 = _P1 + _P2 + _P3 to ~1e-37; _P1 and _P2 hold 33 significant bits so q * _P1 is exact for |q| < 2^20.
_P1 = 1.5707963267341256
_P2 = 6.077100506303966e-11
_P3 = 2.0222662487959506e-21
_TWO_OVER_PI = 0.6366197723675814
_PI1, _PI2, _PI3 = 2.0 * _P1, 2.0 * _P2, 2.0 * _P3   # pi in three parts (exact doublings)
_PI = math.pi            # the same float64 pi as numpy's, so r matches the reference bit for bit
_INV_PI = 1.0 / math.pi

# Taylor coefficients (-1)^j / (2j+1)! and (-1)^j / (2j)!
_S3, _S5, _S7, _S9 = -1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0, 1.0 / 362880.0
_S11, _S13, _S15, _S17 = -1.0 / 39916800.0, 1.0 / 6227020800.0, -1.0 / 1307674368000.0, 1.0 / 355687428096000.0
_S19, _S21, _S23 = -1.0 / 121645100408832000.0, 1.0 / 51090942171709440000.0, -1.0 / 25852016738884976640000.0
_C2, _C4, _C6, _C8 = -0.5, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40320.0
_C10, _C12, _C14, _C16 = -1.0 / 3628800.0, 1.0 / 479001600.0, -1.0 / 87178291200.0, 1.0 / 20922789888000.0
_C18 = -1.0 / 6402373705728000.0


@njit(error_model="numpy", cache=_CACHE, inline="always")
def _sin_tail(y: float, z: float, p: float) -> float:
    """The odd Taylor polynomial of sin(y), z = y^2, by Horner from the coefficient of y^17 down, given ``p``,
    the Horner sum of the higher terms down to (and with) the y^17 coefficient."""
    p = fma(p, z, _S15)
    p = fma(p, z, _S13)
    p = fma(p, z, _S11)
    p = fma(p, z, _S9)
    p = fma(p, z, _S7)
    p = fma(p, z, _S5)
    p = fma(p, z, _S3)
    return fma(y * z, p, y)


@njit(error_model="numpy", cache=_CACHE, inline="always")
def _sin_small(y: float) -> float:
    """sin(y) for |y| <= pi/4 (truncation error < 1e-19)."""
    return _sin_tail(y, y * y, _S17)


@njit(error_model="numpy", cache=_CACHE, inline="always")
def _cos_small(y: float) -> float:
    """cos(y) for |y| <= pi/4 (truncation error < 1e-20)."""
    z = y * y
    p = _C18
    p = fma(p, z, _C16)
    p = fma(p, z, _C14)
    p = fma(p, z, _C12)
    p = fma(p, z, _C10)
    p = fma(p, z, _C8)
    p = fma(p, z, _C6)
    p = fma(p, z, _C4)
    p = fma(p, z, _C2)
    return fma(z, p, 1.0)


@njit(error_model="numpy", cache=_CACHE, inline="always")
def _sin_half_pi(r: float) -> float:
    """sin(r) for |r| <= pi/2 + 1e-9 without reduction (odd Taylor polynomial to r^23, error < 1e-20)."""
    z = r * r
    return _sin_tail(r, z, fma(fma(fma(_S23, z, _S21), z, _S19), z, _S17))


@njit(error_model="numpy", cache=_CACHE, inline="always")
def fda_scalar(xv: float, m: float, np1: float, c6: float, scale: float, omega: float) -> float:
    """Eq. 10 in closed form at one point (float64), without the clip mask. ``m`` = 2(n+1), ``np1`` = n+1,
    ``c6`` = (m^2 - 1) / 6, ``scale`` = 4 omega / pi."""
    t = xv * omega
    k = np.rint(t * _INV_PI)
    r = t - k * _PI
    mr = m * r
    if abs(mr) < 1e-3:
        ratio = np1 * (1.0 - c6 * (r * r))
    else:
        q = np.rint(mr * _INV_PI)                # sin(M r) = (-1)^q sin(y), |y| <= pi/2
        y = ((mr - q * _PI1) - q * _PI2) - q * _PI3
        ratio = _sin_half_pi(y) / (2.0 * _sin_half_pi(r))
        k = k + q
    h = k * 0.5
    if h != np.floor(h):                         # (-1)^(k + q)
        ratio = -ratio
    return ratio * scale


@njit(error_model="numpy", cache=_CACHE, inline="always")
def fda_masked(xv: float, m: float, np1: float, c6: float, scale: float, omega: float, clip: float) -> float:
    """:func:`fda_scalar` times the clip mask (0 where |x| > clip; clip = inf means no clip)."""
    v = fda_scalar(xv, m, np1, c6, scale, omega)
    return 0.0 if abs(xv) > clip else v


# float32 inputs: the range reduction stays in float64 (r and M r exactly as the reference computes them), the
# polynomials run in float32 (twice the SIMD width); the error stays below 3e-7 of the peak (n + 1).
_F = np.float32
_S3f, _S5f, _S7f, _S9f, _S11f, _S13f = _F(_S3), _F(_S5), _F(_S7), _F(_S9), _F(_S11), _F(_S13)
_C2f, _C4f, _C6f, _C8f, _C10f = _F(_C2), _F(_C4), _F(_C6), _F(_C8), _F(_C10)
_ONEf, _TWOf, _ZEROf = _F(1.0), _F(2.0), _F(0.0)


@njit(error_model="numpy", cache=_CACHE, inline="always")
def _sin_small32(y):
    """sin(y), |y| <= pi/4, float32 (truncation < 2e-9)."""
    z = y * y
    p = fma(_S9f, z, _S7f)
    p = fma(p, z, _S5f)
    p = fma(p, z, _S3f)
    return fma(y * z, p, y)


@njit(error_model="numpy", cache=_CACHE, inline="always")
def _cos_small32(y):
    """cos(y), |y| <= pi/4, float32 (truncation < 2e-10)."""
    z = y * y
    p = fma(_C10f, z, _C8f)
    p = fma(p, z, _C6f)
    p = fma(p, z, _C4f)
    p = fma(p, z, _C2f)
    return fma(z, p, _ONEf)


@njit(error_model="numpy", cache=_CACHE, inline="always")
def _sin_half_pi32(r):
    """sin(r), |r| <= pi/2, float32 (truncation < 7e-10)."""
    z = r * r
    p = fma(_S13f, z, _S11f)
    p = fma(p, z, _S9f)
    p = fma(p, z, _S7f)
    p = fma(p, z, _S5f)
    p = fma(p, z, _S3f)
    return fma(r * z, p, r)


@njit(error_model="numpy", cache=_CACHE, inline="always")
def fda_masked32(xv, m, np1, c6, scale, omega, clip):
    """Eq. 10 with the clip mask for a float32 input, returned as float32."""
    t = np.float64(xv) * omega
    k = np.rint(t * _INV_PI)
    r = t - k * _PI
    mr = m * r
    q = np.rint(mr * _INV_PI)                    # sin(M r) = (-1)^q sin(y), |y| <= pi/2
    y = np.float32((mr - q * _PI1) - q * _PI2)
    v = _sin_half_pi32(y)
    ratio = v / (_TWOf * _sin_half_pi32(np.float32(r)))
    if abs(mr) < 1e-3:
        ratio = np.float32(np1 * (1.0 - c6 * (r * r)))
    else:
        k = k + q
    hk = k * 0.5
    if hk != np.floor(hk):                       # (-1)^(k + q)
        ratio = -ratio
    ratio = ratio * np.float32(scale)
    return _ZEROf if abs(xv) > clip else ratio


def fda_point(xv, m, np1, c6, scale, omega, clip):
    """Eq. 10 with the clip mask at one point, in the precision of ``xv`` (dispatched at compile time)."""
    raise NotImplementedError("fda_point is only callable from numba-compiled code")


@overload(fda_point, inline="always")
def _fda_point_impl(xv, m, np1, c6, scale, omega, clip):
    if xv == types.float32:
        return lambda xv, m, np1, c6, scale, omega, clip: fda_masked32(xv, m, np1, c6, scale, omega, clip)
    return lambda xv, m, np1, c6, scale, omega, clip: fda_masked(np.float64(xv), m, np1, c6, scale, omega, clip)


def fda_constants(n: int, omega: float, clip) -> tuple[float, float, float, float, float, float]:
    """(m, n+1, (m^2-1)/6, 4 omega/pi, omega, clip or inf) for the FDA kernels."""
    m = 2.0 * (n + 1)
    return (m, float(n + 1), (m * m - 1.0) / 6.0, 4.0 * omega / math.pi, float(omega),
            math.inf if clip is None else float(clip))


# ------------------------------------------------------------------------------------------------------
# Estimators by code (the non-fda ones are cheap; one generic kernel serves them).
EST_CODES = {"ste": 0, "clipped_ste": 1, "approx_sign": 2, "sign_swish": 3, "tanh": 4, "fda_series": 6}


@njit(error_model="numpy", cache=_CACHE, inline="always")
def est_scalar(xv: float, code: int, beta: float, n: int, omega: float, clip: float) -> float:
    """d sign / dx at one point for the estimator ``code`` (float64); fda_series is the literal sum."""
    if code == 0:
        return 1.0
    if code == 1:
        return 1.0 if abs(xv) <= 1.0 else 0.0
    if code == 2:
        ax = abs(xv)
        return 2.0 - 2.0 * ax if ax <= 1.0 else 0.0
    if code == 3:
        bx = beta * xv
        ch = math.cosh(bx) if abs(bx) < 710.0 else math.inf
        return beta * (2.0 - bx * math.tanh(bx / 2.0)) / (1.0 + ch)
    if code == 4:
        th = math.tanh(beta * xv)
        return beta * (1.0 - th * th)
    # fda_series
    t = omega * xv
    total = 0.0
    for i in range(n + 1):
        total += math.cos((2 * i + 1) * t)
    v = (4.0 * omega / math.pi) * total
    return 0.0 if abs(xv) > clip else v


# ------------------------------------------------------------------------------------------------------
# sign

@njit(error_model="numpy", cache=_CACHE)
def sign_range(x, out, zero, start, stop):
    for i in range(start, stop):
        v = x[i]
        out[i] = 1.0 if v > 0 else (-1.0 if v < 0 else (zero if v == 0 else v))


@njit(error_model="numpy", cache=_CACHE, parallel=True)
def sign_par(x, out, zero):
    size = x.size
    for c in prange((size + CHUNK - 1) // CHUNK):
        sign_range(x, out, zero, c * CHUNK, min(size, (c + 1) * CHUNK))


# ------------------------------------------------------------------------------------------------------
# surrogates

@njit(error_model="numpy", cache=_CACHE)
def fda_range(x, out, m, np1, c6, scale, omega, clip, start, stop):
    xs = x[start:stop]
    os_ = out[start:stop]
    for i in range(np.uint64(0), np.uint64(xs.size)):
        os_[i] = fda_point(xs[i], m, np1, c6, scale, omega, clip)


@njit(error_model="numpy", cache=_CACHE, parallel=True)
def fda_par(x, out, m, np1, c6, scale, omega, clip):
    size = x.size
    for c in prange((size + CHUNK - 1) // CHUNK):
        fda_range(x, out, m, np1, c6, scale, omega, clip, c * CHUNK, min(size, (c + 1) * CHUNK))


@njit(error_model="numpy", cache=_CACHE)
def est_range(x, out, code, beta, n, omega, clip, start, stop):
    for i in range(start, stop):
        out[i] = est_scalar(np.float64(x[i]), code, beta, n, omega, clip)


@njit(error_model="numpy", cache=_CACHE, parallel=True)
def est_par(x, out, code, beta, n, omega, clip):
    size = x.size
    for c in prange((size + CHUNK - 1) // CHUNK):
        est_range(x, out, code, beta, n, omega, clip, c * CHUNK, min(size, (c + 1) * CHUNK))


# ------------------------------------------------------------------------------------------------------
# sin / cos for eta (Eq. 13): the branch-free polynomial with quadrant reduction (vectorises, unlike libm);
# arguments beyond BIG are recomputed with libm in a second, rarely taken pass (the three-part reduction is
# exact only for |a| < 2^20 pi/2).
BIG = 1.0e5


@njit(error_model="numpy", cache=_CACHE, inline="always")
def sin_quadrant(a: float, shift: float) -> float:
    """sin(a + shift * pi/2) for integral ``shift`` (0: sin, 1: cos), |a| < 2^20 pi/2."""
    q = np.rint(a * _TWO_OVER_PI)
    y = ((a - q * _P1) - q * _P2) - q * _P3
    s = _sin_small(y)
    c = _cos_small(y)
    q = q + shift
    h = q * 0.5
    v = c if h != np.floor(h) else s
    q4 = q - 4.0 * np.floor(q * 0.25)
    return -v if q4 >= 2.0 else v


# ------------------------------------------------------------------------------------------------------
# The quantizer's fused elementwise parts. ``fc`` / ``drows`` are in row order (rows, d) (SEMANTICS 3). The flat
# tensor is walked in "planes": with the activation layout (B, C, H, W) a plane is one (b, c) map of hw = H*W
# elements and element p of plane (b, c) sits at row b*hw + p, column c, i.e. flat row-order index
# (b*hw + p)*C + c; with the weight layout rows and tensor agree, so C = 1 and a "plane" is a block of hw
# elements. One integer division per plane, none per element.

@njit(error_model="numpy", cache=_CACHE)
def any_big(t, start, stop):
    """Whether BIG < |t| < inf anywhere in t[start:stop] (a vectorised count: the fixup loops below are slow
    to run over every element, so they run only when this says so)."""
    cnt = 0
    for p in range(np.uint64(start), np.uint64(stop)):
        v = abs(np.float64(t[p]))
        cnt += np.int64((v > BIG) & (v < np.inf))
    return cnt > 0


@njit(error_model="numpy", cache=_CACHE, inline="always")
def _sin_below_big(v: float, shift: float) -> float:
    """sin(v + shift * pi/2) via the polynomial; 0 where BIG < |v| < inf (fixed up afterwards with libm).
    NaN / inf propagate."""
    sv = sin_quadrant(v, shift)
    return 0.0 if ((abs(v) > BIG) & (abs(v) < np.inf)) else sv


@njit(error_model="numpy", cache=_CACHE, inline="always")
def _eta_sin(v: float, a: float, kind: int) -> float:
    """eta(v) (Eq. 13) without libm: a sin(v), a v, 0."""
    if kind == 0:
        return a * _sin_below_big(v, 0.0)
    if kind == 1:
        return a * v
    return 0.0


@njit(error_model="numpy", cache=_CACHE, inline="always")
def _eta_cos(v: float, a: float, kind: int) -> float:
    """eta'(v): a cos(v), a, 0."""
    if kind == 0:
        return a * _sin_below_big(v, 1.0)
    if kind == 1:
        return a
    return 0.0


@njit(error_model="numpy", cache=_CACHE, inline="always")
def _plane(plane, c_dim, hw, size):
    """(elements, first flat index, first row-order index, row stride) of ``plane``, all unsigned: no
    negative-index wraparound, so the loads stay contiguous vectors."""
    b = plane // c_dim
    c = plane - b * c_dim
    return (np.uint64(min(hw, size - plane * hw)), np.uint64(plane * hw), np.uint64(b * hw * c_dim + c),
            np.uint64(c_dim))


@njit(error_model="numpy", cache=_CACHE)
def qfwd_range(t, fc, out, zero, alpha, eta_kind, a, c_dim, hw, start, stop):
    """Planes [start, stop): out = sign(t) + alpha (fc + eta(t)); with zero = NaN (the bare noise forward)
    out = fc + eta(t)."""
    size = t.size
    bare = zero != zero
    for plane in range(start, stop):
        cnt, i0, r0, ucd = _plane(plane, c_dim, hw, size)
        if bare:
            for p in range(np.uint64(0), cnt):
                v = np.float64(t[i0 + p])
                out[i0 + p] = np.float64(fc[r0 + p * ucd]) + _eta_sin(v, a, eta_kind)
        else:
            for p in range(np.uint64(0), cnt):
                v = np.float64(t[i0 + p])
                e = np.float64(fc[r0 + p * ucd]) + _eta_sin(v, a, eta_kind)
                sg = 1.0 if v > 0 else (-1.0 if v < 0 else (zero if v == 0 else v))
                out[i0 + p] = sg + alpha * e
        if eta_kind == 0 and any_big(t, i0, i0 + cnt):   # libm for the (rare) huge arguments
            k = 1.0 if bare else alpha
            for p in range(np.uint64(0), cnt):
                v = np.float64(t[i0 + p])
                if abs(v) > BIG and abs(v) < np.inf:
                    out[i0 + p] = np.float64(out[i0 + p]) + k * (a * math.sin(v))


@njit(error_model="numpy", cache=_CACHE, parallel=True)
def qfwd_par(t, fc, out, zero, alpha, eta_kind, a, c_dim, hw, planes, chunks):
    for c in prange(chunks):
        qfwd_range(t, fc, out, zero, alpha, eta_kind, a, c_dim, hw, c * planes // chunks, (c + 1) * planes // chunks)


@njit(error_model="numpy", cache=_CACHE)
def qbwd_range(g, t, drows, out, alpha, eta_kind, a, est_code, beta, n, omega, clip, m, np1, c6, scale,
               c_dim, hw, has_module, start, stop):
    """Planes [start, stop): out = g est'(t) + alpha (drows + g eta'(t)), est = fda when ``est_code`` == -1,
    none when -2; the module part only when ``has_module``. One loop per estimator kind (no per-element
    dispatch), so the fda loop vectorises."""
    size = t.size
    for plane in range(start, stop):
        cnt, i0, r0, ucd = _plane(plane, c_dim, hw, size)
        if est_code == -1:
            if has_module:
                for p in range(np.uint64(0), cnt):
                    gv = np.float64(g[i0 + p])
                    tv = t[i0 + p]
                    v = np.float64(tv)
                    e = np.float64(drows[r0 + p * ucd]) + gv * _eta_cos(v, a, eta_kind)
                    out[i0 + p] = gv * fda_point(tv, m, np1, c6, scale, omega, clip) + alpha * e
            else:
                for p in range(np.uint64(0), cnt):
                    out[i0 + p] = np.float64(g[i0 + p]) * fda_point(t[i0 + p], m, np1, c6, scale, omega, clip)
        else:
            for p in range(np.uint64(0), cnt):
                gv = np.float64(g[i0 + p])
                v = np.float64(t[i0 + p])
                d = 0.0 if est_code == -2 else gv * est_scalar(v, est_code, beta, n, omega, clip)
                if has_module:
                    d += alpha * (np.float64(drows[r0 + p * ucd]) + gv * _eta_cos(v, a, eta_kind))
                out[i0 + p] = d
        if has_module and eta_kind == 0 and any_big(t, i0, i0 + cnt):   # libm for the (rare) huge arguments
            for p in range(np.uint64(0), cnt):
                v = np.float64(t[i0 + p])
                if abs(v) > BIG and abs(v) < np.inf:
                    out[i0 + p] = np.float64(out[i0 + p]) + alpha * (np.float64(g[i0 + p]) * (a * math.cos(v)))


@njit(error_model="numpy", cache=_CACHE, parallel=True)
def qbwd_par(g, t, drows, out, alpha, eta_kind, a, est_code, beta, n, omega, clip, m, np1, c6, scale,
             c_dim, hw, has_module, planes, chunks):
    for c in prange(chunks):
        qbwd_range(g, t, drows, out, alpha, eta_kind, a, est_code, beta, n, omega, clip, m, np1, c6, scale,
                   c_dim, hw, has_module, c * planes // chunks, (c + 1) * planes // chunks)


@njit(error_model="numpy", cache=_CACHE)
def relu_mask_mul_range(dh, h, start, stop):
    """dh *= (h > 0), in place (relu'(0) = 0)."""
    for i in range(start, stop):
        if not h[i] > 0:
            dh[i] = 0.0


@njit(error_model="numpy", cache=_CACHE)
def relu_inplace_range(h, start, stop):
    for i in range(start, stop):
        if h[i] < 0:
            h[i] = 0.0
