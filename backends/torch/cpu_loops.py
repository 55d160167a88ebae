"""Fused CPU loops (numba) for the elementwise work of the float32 activation quantizer.

In torch eager every operation is one pass over memory and every sin / cos costs about 1 ns per element
(a pass costs 0.1 ns), so the in-place kernels of :mod:`.fused` spend most of their time on passes and
transcendentals. Here each quantity is one loop with everything in registers, vectorised by LLVM:

- :func:`sign_sin_into`: ``out = sign(x) + coef sin(x)`` (Eq. 14 forward without the fc term; sign(0) =
  ``zero``).
- :func:`fda_cos_into`: ``out = g (fda'(x) + cos_coef cos x)`` (SEMANTICS 4 backward without the fc term).

The math is float64 (fastmath only for "contract": a * b + c may round once, as an FMA) and says what the
reference says. Every sine is taken in units of pi: for u = y / pi,
j = rint(u) and w = u - j (exact, |w| <= 1/2), sin(y) = (-1)^j sin(pi w) and cos(y) = (-1)^j cos(pi w), and
sin(pi w), cos(pi w) are Taylor polynomials to degree 15 / 16 (|pi w| <= pi/2: truncation below 1e-11).
FDA (SEMANTICS 2, closed form): u = x omega / pi, k = rint(u), v = u - k, so r = omega x - k pi = pi v and
M r = pi M v; the value is (4 omega / pi) (-1)^k sin(pi M v) / (2 sin(pi v)), with its limit
(4 omega / pi)(n + 1) at v = 0.

Coverage: |x| <= COVER_X and |x omega / pi| <= COVER_X, checked once per call (:func:`covers`). There the
reductions lose at most |u| 2^-53 <= 2^-37 to rounding; NaN, inf and larger values take the torch kernels.
numba is optional: without it :func:`covers` is False everywhere. ``FDAREF_TORCH_LOOPS=0`` turns the loops
off (the torch kernels run), for comparisons.
"""
from __future__ import annotations

import math
import os
from typing import Any

import torch

Tensor = torch.Tensor
COVER_X = 2.0 ** 16

try:
    import numpy as np
    from numba import njit
except ImportError:  # pragma: no cover - depends on the environment
    njit = None


def enabled() -> bool:
    """Whether the loops can run here (numba importable, not turned off by FDAREF_TORCH_LOOPS=0)."""
    return njit is not None and os.environ.get("FDAREF_TORCH_LOOPS", "1") != "0"


def covers(x: Tensor, omega: float = 1.0) -> bool:
    """Whether the loops serve ``x``: enabled, a contiguous float32 CPU tensor, every |x| <= COVER_X and
    |x omega / pi| <= COVER_X (False where x holds NaN or inf)."""
    if not enabled() or x.dtype != torch.float32 or x.device.type != "cpu" or not x.is_contiguous():
        return False
    if x.numel() == 0:
        return False
    bound = COVER_X * min(1.0, math.pi / omega)
    lo, hi = torch.aminmax(x)
    return bool(lo.item() >= -bound) and bool(hi.item() <= bound)   # NaN compares False


def _flat(t: Tensor) -> Any:
    return t.detach().reshape(-1).numpy()


def sign_sin_into(out: Tensor, x: Tensor, zero: float, coef: float) -> Tensor:
    """out = sign(x) + coef sin(x) for float32 ``x`` with :func:`covers`; ``out`` float32, contiguous, the
    shape of ``x`` (it may be ``x`` itself)."""
    _sign_sin(_flat(x), _flat(out), float(zero), float(coef))
    return out


def fda_cos_into(out: Tensor, x: Tensor, g: Tensor, n: int, omega: float, cos_coef: float = 0.0) -> Tensor:
    """out = g (fda'(x) + cos_coef cos x) for float32 ``x`` with ``covers(x, omega)``; ``g`` and ``out``
    float32 and contiguous, the shape of ``x`` (``out`` may be ``g``)."""
    m, half_scale = 2.0 * (n + 1), 2.0 * omega / math.pi   # (4 omega / pi) / 2: the 2 of 2 sin r folded in
    if cos_coef == 0:
        _fda(_flat(x), _flat(g), _flat(out), omega / math.pi, m, half_scale)
    else:
        _fda_cos(_flat(x), _flat(g), _flat(out), omega / math.pi, m, half_scale, float(cos_coef))
    return out


if njit is not None:
    _PI, _INV_PI = math.pi, 1.0 / math.pi
    # (-1)^i / (2i+1)! and (-1)^i / (2i)!, highest first for Horner
    _SIN = tuple((-1.0) ** i / math.factorial(2 * i + 1) for i in range(7, -1, -1))
    _COS = tuple((-1.0) ** i / math.factorial(2 * i) for i in range(8, -1, -1))
    _kernel = njit(cache=True, error_model="numpy", boundscheck=False, fastmath={"contract"})   # error_model: 0/0 is NaN, no raise
    _inline = njit(cache=True, error_model="numpy", inline="always", fastmath={"contract"})

    @_inline
    def _parity(j: float) -> float:
        """(-1)^j for integer-valued j (exact below 2^52)."""
        return 1.0 - 2.0 * (j - 2.0 * np.floor(0.5 * j))

    @_inline
    def _horner(z: float, coeffs: tuple) -> float:
        p = coeffs[0]
        for c in coeffs[1:]:
            p = p * z + c
        return p

    @_inline
    def _sin_pi(w: float) -> float:
        """sin(pi w) for |w| <= 1/2."""
        y = _PI * w
        return _horner(y * y, _SIN) * y

    @_inline
    def _cos_pi(w: float) -> float:
        """cos(pi w) for |w| <= 1/2."""
        y = _PI * w
        return _horner(y * y, _COS)

    @_inline
    def _fda_ratio(xv: float, c: float, m: float) -> float:
        """sin(M r) / sin(r) (-1)^k for r = omega x - k pi, with c = omega / pi; M at r = 0."""
        u = xv * c
        k = np.rint(u)
        v = u - k
        mv = m * v
        j = np.rint(mv)
        ratio = _parity(k + j) * _sin_pi(mv - j) / _sin_pi(v)
        return m if v == 0.0 else ratio

    @_inline
    def _cos(xv: float) -> float:
        u = xv * _INV_PI
        j = np.rint(u)
        return _parity(j) * _cos_pi(u - j)

    @_kernel
    def _sign_sin(x, out, zero, coef):  # pragma: no cover - compiled
        for i in range(x.size):
            xv = np.float64(x[i])
            s = 1.0 if xv > 0.0 else (-1.0 if xv < 0.0 else zero)
            u = xv * _INV_PI
            j = np.rint(u)
            out[i] = np.float32(s + coef * (_parity(j) * _sin_pi(u - j)))

    @_kernel
    def _fda(x, g, out, c, m, half_scale):  # pragma: no cover - compiled
        for i in range(x.size):
            out[i] = np.float32(np.float64(g[i]) * (half_scale * _fda_ratio(np.float64(x[i]), c, m)))

    @_kernel
    def _fda_cos(x, g, out, c, m, half_scale, cos_coef):  # pragma: no cover - compiled
        for i in range(x.size):
            xv = np.float64(x[i])
            out[i] = np.float32(np.float64(g[i]) * (half_scale * _fda_ratio(xv, c, m) + cos_coef * _cos(xv)))
