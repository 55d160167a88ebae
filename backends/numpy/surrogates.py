"""The built-in surrogates (SEMANTICS 2) fast, in the input's dtype (the ``numpy`` backend).

The literal definitions are :mod:`fdaref.estimators`; these give the same values (checked by ``fdaref conform
--backend numpy``). :func:`fda` evaluates the closed form in cache-sized blocks with a float64 range
reduction and, for float32 inputs, float32 sines.
"""
from __future__ import annotations

import numpy as np

from fdaref.estimators import fda_peak


def ste(x: np.ndarray) -> np.ndarray:
    """Straight-through estimator: 1 everywhere."""
    return np.ones_like(x)


def clipped_ste(x: np.ndarray) -> np.ndarray:
    """BNN / hardtanh STE: 1 where |x| <= 1 (boundary included), else 0."""
    return (np.abs(x) <= 1).astype(x.dtype)


def approx_sign(x: np.ndarray) -> np.ndarray:
    """Bi-Real ApproxSign: 2 - 2|x| where |x| <= 1, else 0."""
    ax = np.abs(x)
    return np.where(ax <= 1, 2 - 2 * ax, 0).astype(x.dtype)


def sign_swish(x: np.ndarray, beta: float = 5.0) -> np.ndarray:
    """BNN+ SignSwish: beta (2 - beta x tanh(beta x / 2)) / (1 + cosh(beta x))."""
    bx = beta * x
    # cosh overflows to inf far from 0, where the gradient is 0; at +-inf the ratio is inf / inf = NaN
    # (SEMANTICS 10), computed without a warning
    with np.errstate(over="ignore", invalid="ignore"):
        return (beta * (2 - bx * np.tanh(bx / 2)) / (1 + np.cosh(bx))).astype(x.dtype)


def tanh(x: np.ndarray, beta: float = 2.0) -> np.ndarray:
    """DSQ / IR-Net style: beta (1 - tanh(beta x)^2)."""
    return (beta * (1 - np.tanh(beta * x) ** 2)).astype(x.dtype)


# ---------------------------------------------------------------------------------------------------
# FDA (Eq. 10).

def _clip_mask(x: np.ndarray, grad: np.ndarray, clip: float | None) -> np.ndarray:
    """Zero the gradient where |x| > clip; |x| == clip keeps it (SEMANTICS 2)."""
    if clip is None:
        return grad
    return np.where(np.abs(x) > clip, 0, grad).astype(x.dtype)


# Elements per block of :func:`fda`: its dozen temporaries then stay in the L2 cache (2x faster than
# whole-array passes at resnet20's activation sizes); every element is computed on its own, so the
# blocking changes no value.
FDA_BLOCK = 1 << 16


def fda(x: np.ndarray, n: int = 9, omega: float = 0.1, clip: float | None = None) -> np.ndarray:
    """Eq. 10 in closed form (SEMANTICS 2): (4 omega / pi) sin(2(n+1) t) / (2 sin t), t = omega x.

    The identity sum_{i=0}^{n} cos((2i+1) t) = sin(2(n+1) t) / (2 sin t) makes the cost independent of n.
    With M = 2(n+1) even, t = k pi + r (|r| <= pi/2) gives the same value (-1)^k sin(M r) / (2 sin r):
    evaluating on the reduced r keeps numerator and denominator consistent (evaluating sin(M t) and sin t
    separately loses ~1e-11 near t = k pi). Where |M r| < 1e-3 the 0/0 is replaced by its Taylor expansion
    (n+1)(1 - (M^2 - 1) r^2 / 6), whose next term is below (n+1)(M r)^4 / 120 < 1e-14 (n+1).
    t and the reduction are computed in float64. float64 inputs take float64 sines; float32 inputs take
    float32 sines (SIMD, ~20x faster) of r rounded to float32, with an error below 3e-7 of the peak (n + 1)
    (tests/test_numpy_backend.py).
    """
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    for start in range(0, flat.size, FDA_BLOCK):
        block = slice(start, start + FDA_BLOCK)
        out[block] = _fda_block(flat[block], n, omega)
    return _clip_mask(x, out.reshape(x.shape), clip)


def _fda_block(x: np.ndarray, n: int, omega: float) -> np.ndarray:
    """:func:`fda` (without the clip) on a 1-D block, in the dtype of x."""
    m = 2.0 * (n + 1)
    work = x.dtype.type
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN and inf inputs give NaN, as the series does
        t = np.multiply(x, omega, dtype=np.float64)
        if t.size and np.abs(t).max() < np.pi / 2:
            r, odd = t.astype(work, copy=False), None  # k = 0 everywhere: the reduction would give r = t
        else:
            k = np.rint(t * (1.0 / np.pi))
            r = (t - k * np.pi).astype(work, copy=False)
            odd = np.isfinite(k)
            odd[odd] = (k[odd].astype(np.int64) & 1).astype(bool)
        mr = r * work(m)
        ratio = np.sin(mr)
        ratio *= work(2.0 * omega / np.pi)  # (4 omega / pi) / 2
        ratio /= np.sin(r)
        near = np.abs(mr) < 1e-3
        if near.any():
            r_near = r[near].astype(np.float64)
            ratio[near] = fda_peak(n, omega) * (1.0 - (m * m - 1.0) / 6.0 * r_near ** 2)
        if odd is not None:
            np.negative(ratio, out=ratio, where=odd)  # (-1)^k
    return ratio


# The fast kernel of each of fdaref's built-in estimators, by registry name (``fda_series``, the literal series
# kept for checking, is the reference's: its float64 phase matters at large |omega x|).
FAST = {"ste": ste, "clipped_ste": clipped_ste, "approx_sign": approx_sign, "sign_swish": sign_swish, "tanh": tanh,
        "fda": fda}
