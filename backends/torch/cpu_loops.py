"""Fused CPU loops (numba) for the float32 activation quantizer.

In torch eager every operation is one pass over memory and every sin / cos costs about 1 ns per element
(a pass costs 0.1 ns), and the noise module's products over channels are matrix products with one side of
width m = 1 or 2. Here each quantity is one loop with everything in registers, vectorised by LLVM:

- :func:`fda_cos_into`: ``out = g (fda'(x) + cos_coef cos x)`` (SEMANTICS 4 backward without the fc term).
- :func:`quantize_forward` / :func:`quantize_backward`: the whole activation quantizer with the noise
  module and eta = a sin (Eq. 14 forward, SEMANTICS 4 backward), image by image (an image's activations
  stay in cache between the elementwise pass and the products over channels), for NCHW and channels-last
  (NHWC) tensors; the outputs keep the input's layout (torch.compile hands channels-last tensors over).
  The images are shared among torch's own OpenMP threads (:mod:`.omp_team`), a range of images per slot.

The elementwise math is float32 (16 lanes per AVX-512 vector) on an exact reduction, and says what the
reference says to a few float32 roundings of the largest term (tests: 4 x 2^-24 of it). Every sine is taken
in units of pi: for u = y / pi (1 / pi as a float32 pair hi + lo), j = rint(u) and w = u - j with x hi, its
rounding error (an explicit FMA) and x lo summed as error-free transformations, so w carries float32 relative
accuracy however far y is reduced; sin(y) = (-1)^j pi w sinc(pi w), cos(y) = (-1)^j cos(pi w), with Taylor
polynomials to degree 13 / 14 (|pi w| <= pi/2: truncation below 1e-9). No fastmath there: a contracted
product would break the transformations. FDA (SEMANTICS 2, closed form): u = x omega / pi, k = rint(u),
v = u - k, so r = omega x - k pi = pi v; M v = j + w the same way, and the value is (4 omega / pi) / 2
times (-1)^(k + j) (w / v) sinc(pi w) / sinc(pi v), where w / v is M itself when j = 0: that is also the limit
(-1)^k M at v = 0, with no special case.

Coverage: |x| <= COVER_X and |x omega / pi| <= COVER_X, checked once per call (:func:`covers`; the fused
quantizer checks it in its elementwise pass and returns None where it fails). There the pair lo + hi is off
1 / pi or omega / pi by about 2^-48 relative, so a reduced argument by at most 2^-32; NaN, inf and larger
values take the torch kernels. The products over channels are float32 (as a float32 matmul), their sums
over pixels float64.
numba is optional: without it :func:`covers` is False everywhere. ``FDAREF_TORCH_LOOPS=0`` turns the loops
off (the torch kernels run), for comparisons.
"""
from __future__ import annotations

import math
import os
from typing import Any, Optional

import torch

from . import omp_team

Tensor = torch.Tensor
COVER_X = 2.0 ** 16

try:
    import numpy as np
    from numba import carray, cfunc, njit, types
    from numba.extending import intrinsic
except ImportError:  # pragma: no cover - depends on the environment
    njit = None


def enabled() -> bool:
    """Whether the loops can run here (numba importable, not turned off by FDAREF_TORCH_LOOPS=0)."""
    return njit is not None and os.environ.get("FDAREF_TORCH_LOOPS", "1") != "0"


def _loop_tensor(x: Tensor) -> bool:
    """Loops enabled and ``x`` a float32 CPU tensor with elements: what every loop here takes."""
    return enabled() and x.dtype == torch.float32 and x.device.type == "cpu" and x.numel() > 0


def _bound(omega: float) -> float:
    """The largest |x| covered: |x| <= COVER_X and |x omega / pi| <= COVER_X."""
    return COVER_X * min(1.0, math.pi / omega)


def _bound32(omega: float) -> Any:
    """:func:`_bound` as the kernels compare it: the largest float32 not above it."""
    bound = _bound(omega)
    b = np.float32(bound)
    return b if float(b) <= bound else np.nextafter(b, np.float32(0))


def _split(c: float) -> tuple[Any, Any]:
    """c as float32 hi + lo (hi = c rounded, lo the rest rounded): c to about 2^-48 relative."""
    hi = np.float32(c)
    return hi, np.float32(c - float(hi))


def _fda_constants(n: int, omega: float) -> tuple[Any, Any, Any, Any]:
    """(omega / pi as hi, lo; M = 2 (n + 1); (4 omega / pi) / 2) as float32 for the kernels: the 2 of
    2 sin r folded in."""
    c_hi, c_lo = _split(omega / math.pi)
    return c_hi, c_lo, np.float32(2.0 * (n + 1)), np.float32(2.0 * omega / math.pi)


def covers(x: Tensor, omega: float = 1.0) -> bool:
    """Whether the loops serve ``x``: enabled, a contiguous float32 CPU tensor, every |x| <= COVER_X and
    |x omega / pi| <= COVER_X (False where x holds NaN or inf)."""
    if not _loop_tensor(x) or not x.is_contiguous():
        return False
    bound = _bound(omega)
    lo, hi = torch.aminmax(x)
    return bool(lo.item() >= -bound) and bool(hi.item() <= bound)   # NaN compares False


def _flat(t: Tensor) -> Any:
    return t.detach().reshape(-1).numpy()


def fda_cos_into(out: Tensor, x: Tensor, g: Tensor, n: int, omega: float, cos_coef: float = 0.0) -> Tensor:
    """out = g (fda'(x) + cos_coef cos x) for float32 ``x`` with ``covers(x, omega)``; ``g`` and ``out``
    float32 and contiguous, the shape of ``x`` (``out`` may be ``g``)."""
    constants = _fda_constants(n, omega)
    if cos_coef == 0:
        _fda(_flat(x), _flat(g), _flat(out), *constants)
    else:   # covered already: the pass's own check has nothing left to find
        _fda_cos(_flat(x), _flat(g), _flat(out), *constants, np.float32(cos_coef), np.float32(np.inf))
    return out


def channels_last(x: Tensor) -> bool:
    """Whether ``x`` is a channels-last (NHWC) tensor that is not also NCHW-contiguous."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def fused_quantizer_applies(x: Tensor) -> bool:
    """Whether :func:`quantize_forward` / :func:`quantize_backward` can take ``x``: loops enabled, a float32
    CPU (B, C, H, W) tensor with elements (coverage is checked inside)."""
    return _loop_tensor(x) and x.dim() == 4


def _dense(x: Tensor) -> Tensor:
    """``x`` itself if NCHW-contiguous or channels-last, else an NCHW copy."""
    return x if x.is_contiguous() or channels_last(x) else x.contiguous()


def _rows(x: Tensor) -> Any:
    """(B, C, P) for NCHW, (B, P, C) for channels-last, as a numpy view of ``x``'s memory."""
    b, c = x.shape[:2]
    if channels_last(x):
        return x.detach().permute(0, 2, 3, 1).reshape(b, -1, c).numpy()
    return x.detach().reshape(b, c, -1).numpy()


def _weights(w1: Tensor, w2: Tensor) -> tuple[Any, Any]:
    """W1^T and W2, both (m, C) contiguous float32: a channel row per hidden unit."""
    return (w1.detach().T.contiguous().to(torch.float32).numpy(),
            w2.detach().contiguous().to(torch.float32).numpy())


def _slots(images: int) -> int:
    """How many slots (image ranges) a pass is cut into: one per torch thread, where there is a team."""
    return max(1, min(images, torch.get_num_threads())) if omp_team.available() else 1


def _address(a: Any) -> int:
    """The address of a C-contiguous numpy array (the cfuncs read it through ``numba.carray``)."""
    if not a.flags.c_contiguous:
        raise AssertionError("cpu_loops: a kernel argument is not C-contiguous")   # a bug here, not bad input
    return a.ctypes.data


def _context(ints: tuple, arrays: tuple, slots: int) -> Any:
    """The int64 context of :mod:`.omp_team`: slot counter, slots, then ``ints``, then the arrays' addresses."""
    return np.array((0, slots) + tuple(int(i) for i in ints) + tuple(_address(a) for a in arrays), np.int64)


def quantize_forward(x: Tensor, w1: Tensor, w2: Tensor, zero: float, alpha: float, coef: float
                     ) -> Optional[tuple[Tensor, Tensor]]:
    """Eq. 14 with the noise module over channels and eta = a sin, for ``x`` with
    :func:`fused_quantizer_applies`; ``w1`` (C, m), ``w2`` (m, C), ``coef`` = alpha a.

    Returns z = sign(x) + coef sin(x) + alpha relu(x W1) W2 (``x``'s shape and layout) and h = relu(x W1) of
    shape (B, m, H W) (pixel-major strides for a channels-last ``x``), or None where x is not covered. The
    images are shared among torch's threads (:mod:`.omp_team`); each image is one thread's, so the values
    do not depend on the thread count.
    """
    x = _dense(x)
    b, c, hh, ww = x.shape
    m = w1.shape[1]
    nhwc = channels_last(x)
    z = torch.empty_like(x)
    w1t, w2n = _weights(w1, w2)
    if nhwc:
        h = x.new_empty((b, hh * ww, m)).transpose(1, 2)
        hv = h.transpose(1, 2).numpy()
    else:
        h = x.new_empty((b, m, hh * ww))
        hv = h.numpy()
    slots = _slots(b)
    ok = np.zeros(slots, np.int64)
    scalars = np.array([np.float32(zero), alpha, np.float32(coef), COVER_X], np.float64)
    omp_team.run(_forward_team, _context((b, c, hh * ww, m, nhwc), (_rows(x), w1t, w2n, _rows(z), hv, scalars, ok),
                                         slots), slots)
    return (z, h) if ok.all() else None


def quantize_backward(g: Tensor, x: Tensor, h: Tensor, w1: Tensor, w2: Tensor, n: int, omega: float,
                      cos_coef: float, alpha: float) -> Optional[tuple[Tensor, Tensor, Tensor]]:
    """SEMANTICS 4 backward of :func:`quantize_forward` (estimator fda without a clip; ``cos_coef`` = alpha a).

    ``h``: relu(x W1) as :func:`quantize_forward` returned it. Returns dt = g (fda'(x) + cos_coef cos x) +
    alpha dfc/dx^T g (``x``'s layout), dW1 = alpha x^T dh (C, m) and dW2 = alpha h^T g (m, C), or None where
    x is not covered. Images are shared among torch's threads as in :func:`quantize_forward`; the weight
    gradients are summed per image range in float64, then over the ranges in order (the same sums for the
    same thread count).
    """
    x = _dense(x)
    b, c, hh, ww = x.shape
    m = w1.shape[1]
    nhwc = channels_last(x)
    g = g.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
    hv = h.transpose(1, 2).contiguous().numpy() if nhwc else h.contiguous().numpy()
    dt = torch.empty_like(x)
    w1t, w2n = _weights(w1, w2)
    slots = _slots(b)
    ok = np.zeros(slots, np.int64)
    acc1, acc2 = np.zeros((slots, m, c)), np.zeros((slots, m, c))
    scalars = np.array(_fda_constants(n, omega) + (np.float32(cos_coef), alpha, _bound32(omega)), np.float64)
    omp_team.run(_backward_team, _context((b, c, hh * ww, m, nhwc),
                                          (_rows(x), _rows(g), hv, w1t, w2n, _rows(dt), acc1, acc2, scalars, ok),
                                          slots), slots)
    if not ok.all():
        return None
    dw1 = torch.from_numpy(acc1.sum(0)).T.mul(alpha).to(w1.dtype)
    return dt, dw1, torch.from_numpy(acc2.sum(0)).mul_(alpha).to(w2.dtype)


if njit is not None:
    _F32 = np.float32
    _PI32 = _F32(math.pi)
    _INV_PI_HI, _INV_PI_LO = _split(1.0 / math.pi)
    # (-1)^i / (2i+1)! to y^13 and (-1)^i / (2i)! to y^14, highest first for Horner (|y| <= pi/2: the
    # truncation is below 1e-9, under the float32 rounding of the evaluation)
    _SIN = tuple(_F32((-1.0) ** i / math.factorial(2 * i + 1)) for i in range(6, -1, -1))
    _COS = tuple(_F32((-1.0) ** i / math.factorial(2 * i)) for i in range(7, -1, -1))
    # No fastmath in the elementwise kernels: the reductions are error-free transformations, which a
    # contracted (fused) product would silently break; the FMAs they need are explicit (_fma).
    # error_model: 0/0 is NaN, no raise; nogil: torch may call from several threads
    _kernel = njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    _inline = njit(cache=True, error_model="numpy", inline="always")
    # sums of products only (never the sines): "reassoc" lets LLVM vectorise them
    _sums = njit(cache=True, boundscheck=False, nogil=True, fastmath={"contract", "reassoc"})

    @intrinsic
    def _fma(typingctx, a, b, c):  # pragma: no cover - compiled
        """a * b + c rounded once (llvm.fma, vectorised by LLVM)."""
        def codegen(context, builder, signature, args):
            return builder.fma(*args)
        return a(a, a, a), codegen

    @_inline
    def _parity(j):
        """(-1)^j for integer-valued float32 j (exact below 2^24)."""
        return _F32(1.0) - _F32(2.0) * (j - _F32(2.0) * np.floor(_F32(0.5) * j))

    @_inline
    def _horner(z, coeffs):
        p = coeffs[0]
        for c in coeffs[1:]:
            p = _fma(p, z, c)
        return p

    @_inline
    def _sinc_pi(w):
        """sin(pi w) / (pi w) for |w| <= 1/2 (float32): 1 at w = 0."""
        y = _PI32 * w
        return _horner(y * y, _SIN)

    @_inline
    def _cos_pi(w):
        """cos(pi w) for |w| <= 1/2 (float32)."""
        y = _PI32 * w
        return _horner(y * y, _COS)

    @_inline
    def _reduce(x, hi, lo):
        """(j, v_hi, v_lo) with x (hi + lo) = j + v_hi + v_lo, j integer, |v_hi| <= 1/2: p = x hi and its
        rounding error e (an FMA) are exact, p - j is exact (Sterbenz), e + x lo rounds far below v."""
        p = x * hi
        e = _fma(x, hi, -p)
        j = np.rint(p)
        return j, p - j, e + x * lo

    @_inline
    def _fda_ratio(xv, c_hi, c_lo, m):
        """(-1)^k sin(M r) / sin(r) for r = omega x - k pi = pi v (c = omega / pi as c_hi + c_lo), with
        M v = j + w: (-1)^(k + j) (w / v) sinc(pi w) / sinc(pi v). Where j = 0, w / v is M itself (taking
        M avoids the rounding of w and v apart), and the value tends to M as v -> 0: no special case."""
        k, vh, vl = _reduce(xv, c_hi, c_lo)
        j = np.rint(m * vh)
        w = _fma(m, vh, -j) + m * vl      # M v - j to the float32 rounding of w itself
        v = vh + vl
        near = j == 0
        num = (m if near else w) * _sinc_pi(w)
        den = (_F32(1.0) if near else v) * _sinc_pi(v)
        return _parity(k + j) * num / den

    @_inline
    def _sin(xv):
        j, wh, wl = _reduce(xv, _INV_PI_HI, _INV_PI_LO)
        w = wh + wl
        return _parity(j) * (_PI32 * w) * _sinc_pi(w)

    @_inline
    def _cos(xv):
        j, wh, wl = _reduce(xv, _INV_PI_HI, _INV_PI_LO)
        return _parity(j) * _cos_pi(wh + wl)

    @_kernel
    def _fda(x, g, out, c_hi, c_lo, m, half_scale):  # pragma: no cover - compiled
        for i in range(x.size):
            out[i] = g[i] * (half_scale * _fda_ratio(x[i], c_hi, c_lo, m))


    # --- the fused quantizer: an elementwise pass per image, then the noise module over channels

    @_kernel
    def _sign_sin_checked(x, out, zero, coef, bound):  # pragma: no cover - compiled
        """out = sign(x) + coef sin(x) over 1-D x; False where some |x| > bound (or NaN)."""
        ok = True
        for i in range(x.size):
            xv = x[i]
            ok &= abs(xv) <= bound
            s = _F32(1.0) if xv > 0 else (_F32(-1.0) if xv < 0 else zero)
            out[i] = s + coef * _sin(xv)
        return ok

    @_kernel
    def _fda_cos(x, g, out, c_hi, c_lo, m, half_scale, cos_coef, bound):  # pragma: no cover - compiled
        """out = g (fda'(x) + cos_coef cos x) over 1-D x (``out`` may be ``g``); False where some |x| > bound."""
        ok = True
        for i in range(x.size):
            xv = x[i]
            ok &= abs(xv) <= bound
            out[i] = g[i] * (half_scale * _fda_ratio(xv, c_hi, c_lo, m) + cos_coef * _cos(xv))
        return ok

    @_inline
    def _axpy(y, a, x):
        for i in range(y.size):
            y[i] += a * x[i]

    @_sums
    def _plane_sums(xb, gb, hb, dh, acc1, acc2):  # pragma: no cover - compiled
        """NCHW image: acc1[j, c] += sum_p x[c, p] dh[j, p]; acc2[j, c] += sum_p h[j, p] g[c, p]."""
        for c in range(xb.shape[0]):
            for j in range(dh.shape[0]):
                s1 = 0.0
                s2 = 0.0
                for p in range(xb.shape[1]):
                    s1 += np.float64(xb[c, p]) * np.float64(dh[j, p])
                    s2 += np.float64(hb[j, p]) * np.float64(gb[c, p])
                acc1[j, c] += s1
                acc2[j, c] += s2

    @_kernel
    def _forward_nchw(x, w1t, w2, z, h, zero, alpha, coef, bound, b0, b1):  # pragma: no cover - compiled
        """Images b0 .. b1 - 1 of x, z (B, C, P); w1t, w2 (m, C); h (B, m, P)."""
        ok = True
        for b in range(b0, b1):
            ok &= _sign_sin_checked(x[b].reshape(-1), z[b].reshape(-1), zero, coef, bound)
            for j in range(w2.shape[0]):
                hj = h[b, j]
                hj[:] = 0.0
                for c in range(x.shape[1]):
                    _axpy(hj, w1t[j, c], x[b, c])
                for p in range(hj.size):
                    hj[p] = max(hj[p], np.float32(0.0))
                for c in range(x.shape[1]):
                    _axpy(z[b, c], np.float32(alpha * w2[j, c]), hj)
        return ok

    @_kernel
    def _backward_nchw(x, g, h, w1t, w2, dt, acc1, acc2, c_hi, c_lo, m, half_scale, cos_coef, alpha,
                       bound, b0, b1):  # pragma: no cover
        """Images b0 .. b1 - 1 of x, g, dt (B, C, P); h (B, m, P); w1t, w2 (m, C); acc1, acc2 (m, C) float64."""
        ok = True
        dh = np.empty((w2.shape[0], x.shape[2]), np.float32)
        for b in range(b0, b1):
            for j in range(w2.shape[0]):
                dh[j] = 0.0
                for ch in range(x.shape[1]):
                    _axpy(dh[j], w2[j, ch], g[b, ch])
                for p in range(x.shape[2]):
                    if h[b, j, p] <= 0:
                        dh[j, p] = 0.0
            ok &= _fda_cos(x[b].reshape(-1), g[b].reshape(-1), dt[b].reshape(-1), c_hi, c_lo, m,
                           half_scale, cos_coef, bound)
            for ch in range(x.shape[1]):
                for j in range(w2.shape[0]):
                    _axpy(dt[b, ch], np.float32(alpha * w1t[j, ch]), dh[j])
            _plane_sums(x[b], g[b], h[b], dh, acc1, acc2)
        return ok

    @_sums
    def _noise_rows_forward(xb, zb, hb, w1t, w2, alpha):  # pragma: no cover - compiled
        """NHWC image: hb = relu(xb W1) (P, m); zb += alpha hb W2, row (pixel) by row."""
        for p in range(xb.shape[0]):
            for j in range(w2.shape[0]):
                hj = np.float32(0.0)
                for ch in range(xb.shape[1]):
                    hj += xb[p, ch] * w1t[j, ch]
                hj = max(hj, np.float32(0.0))
                hb[p, j] = hj
                a = np.float32(alpha) * hj
                for ch in range(xb.shape[1]):
                    zb[p, ch] += a * w2[j, ch]

    @_sums
    def _noise_rows_backward(xb, gb, hb, db, w1t, w2, alpha, a1, a2):  # pragma: no cover - compiled
        """NHWC image: dh = (gb W2^T) [hb > 0]; db += alpha dh W1^T; a1 += dh^T xb; a2 += hb^T gb.

        Pixel by pixel over flat rows, with the column sums in arrays of the kernel's own: summing into
        a1 / a2 in place through 2-D indexing ran 2x slower for C = 16 (measured on a Zen 3 core; the
        caller's arrays may alias the image, which is presumably what kept LLVM from vectorising)."""
        pixels, c = xb.shape
        x, g, d = xb.reshape(-1), gb.reshape(-1), db.reshape(-1)
        s1, s2, wa = np.empty(c, np.float32), np.empty(c, np.float32), np.empty(c, np.float32)
        for j in range(w2.shape[0]):
            w2j = w2[j]
            s1[:] = 0.0
            s2[:] = 0.0
            for ch in range(c):
                wa[ch] = np.float32(alpha) * w1t[j, ch]
            for p in range(pixels):
                base = p * c
                dh = np.float32(0.0)
                for ch in range(c):
                    dh += g[base + ch] * w2j[ch]
                hj = hb[p, j]
                if hj <= 0:
                    dh = np.float32(0.0)
                for ch in range(c):
                    d[base + ch] += dh * wa[ch]
                    s1[ch] += x[base + ch] * dh
                    s2[ch] += hj * g[base + ch]
            a1[j] += s1
            a2[j] += s2

    @_kernel
    def _forward_nhwc(x, w1t, w2, z, h, zero, alpha, coef, bound, b0, b1):  # pragma: no cover - compiled
        """Images b0 .. b1 - 1 of x, z (B, P, C); w1t, w2 (m, C); h (B, P, m)."""
        ok = True
        for b in range(b0, b1):
            ok &= _sign_sin_checked(x[b].reshape(-1), z[b].reshape(-1), zero, coef, bound)
            _noise_rows_forward(x[b], z[b], h[b], w1t, w2, alpha)
        return ok

    @_kernel
    def _backward_nhwc(x, g, h, w1t, w2, dt, acc1, acc2, c_hi, c_lo, m, half_scale, cos_coef, alpha,
                       bound, b0, b1):  # pragma: no cover
        """Images b0 .. b1 - 1 of x, g, dt (B, P, C); h (B, P, m); sums per image in float32, over images in
        float64."""
        ok = True
        a1 = np.empty(w2.shape, np.float32)
        a2 = np.empty(w2.shape, np.float32)
        for b in range(b0, b1):
            ok &= _fda_cos(x[b].reshape(-1), g[b].reshape(-1), dt[b].reshape(-1), c_hi, c_lo, m,
                           half_scale, cos_coef, bound)
            a1[:] = 0.0
            a2[:] = 0.0
            _noise_rows_backward(x[b], g[b], h[b], dt[b], w1t, w2, alpha, a1, a2)
            acc1 += a1
            acc2 += a2
        return ok

    # --- the team's entry points (omp_team): each takes image ranges (slots) until none is left.
    # Context: [slot counter, slots, B, C, P, m, nhwc, then the arrays' addresses]; x, z, g, dt as (B, C, P)
    # or, nhwc, (B, P, C), h as (B, m, P) or (B, P, m).

    @_inline
    def _team_shapes(ctx):
        """(slots, B, C, m, nhwc, rows shape, h shape) from a context."""
        slots, b, c, p, m, nhwc = ctx[1], ctx[2], ctx[3], ctx[4], ctx[5], ctx[6]
        rows, hidden = ((b, p, c), (b, p, m)) if nhwc else ((b, c, p), (b, m, p))
        return slots, b, c, m, nhwc, rows, hidden

    @cfunc(types.void(types.voidptr), cache=True)
    def _forward_team(data):  # pragma: no cover - compiled
        ctx = omp_team.context(data, 14)
        slots, b, c, m, nhwc, rows, hidden = _team_shapes(ctx)
        x, z = carray(omp_team.f32_ptr(ctx[7]), rows), carray(omp_team.f32_ptr(ctx[10]), rows)
        w1t, w2 = carray(omp_team.f32_ptr(ctx[8]), (m, c)), carray(omp_team.f32_ptr(ctx[9]), (m, c))
        h = carray(omp_team.f32_ptr(ctx[11]), hidden)
        f, ok = carray(omp_team.f64_ptr(ctx[12]), 4), carray(omp_team.i64_ptr(ctx[13]), slots)
        zero, alpha, coef, bound = np.float32(f[0]), f[1], np.float32(f[2]), np.float32(f[3])
        slot = omp_team.next_slot(data)
        while slot < slots:
            b0, b1 = omp_team.image_range(b, slot, slots)
            if nhwc:
                done = _forward_nhwc(x, w1t, w2, z, h, zero, alpha, coef, bound, b0, b1)
            else:
                done = _forward_nchw(x, w1t, w2, z, h, zero, alpha, coef, bound, b0, b1)
            ok[slot] = 1 if done else 0
            slot = omp_team.next_slot(data)

    @cfunc(types.void(types.voidptr), cache=True)
    def _backward_team(data):  # pragma: no cover - compiled
        ctx = omp_team.context(data, 17)
        slots, b, c, m, nhwc, rows, hidden = _team_shapes(ctx)
        x, g = carray(omp_team.f32_ptr(ctx[7]), rows), carray(omp_team.f32_ptr(ctx[8]), rows)
        h = carray(omp_team.f32_ptr(ctx[9]), hidden)
        w1t, w2 = carray(omp_team.f32_ptr(ctx[10]), (m, c)), carray(omp_team.f32_ptr(ctx[11]), (m, c))
        dt = carray(omp_team.f32_ptr(ctx[12]), rows)
        acc1 = carray(omp_team.f64_ptr(ctx[13]), (slots, m, c))
        acc2 = carray(omp_team.f64_ptr(ctx[14]), (slots, m, c))
        f, ok = carray(omp_team.f64_ptr(ctx[15]), 7), carray(omp_team.i64_ptr(ctx[16]), slots)
        c_hi, c_lo, mm, half = np.float32(f[0]), np.float32(f[1]), np.float32(f[2]), np.float32(f[3])
        cos_coef, alpha, bound = np.float32(f[4]), f[5], np.float32(f[6])
        slot = omp_team.next_slot(data)
        while slot < slots:
            b0, b1 = omp_team.image_range(b, slot, slots)
            if nhwc:
                done = _backward_nhwc(x, g, h, w1t, w2, dt, acc1[slot], acc2[slot], c_hi, c_lo, mm, half, cos_coef,
                                      alpha, bound, b0, b1)
            else:
                done = _backward_nchw(x, g, h, w1t, w2, dt, acc1[slot], acc2[slot], c_hi, c_lo, mm, half, cos_coef,
                                      alpha, bound, b0, b1)
            ok[slot] = 1 if done else 0
            slot = omp_team.next_slot(data)
