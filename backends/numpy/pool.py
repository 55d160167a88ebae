"""2-D max and average pooling, forward and backward, NCHW (the ``numpy`` backend).

Windows come from a strided view of the padded input; the backward adds each kernel tap's share back
through strided slices (a loop over the kh*kw taps only).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fdaref._validate import check_grad
from fdaref.functional._geometry import Pair, offset_slices
from fdaref.functional.pool import check_pool_args


def _pad(x: np.ndarray, padding: Pair, value: float) -> np.ndarray:
    (ph, pw), (n, c, h, w) = padding, x.shape
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def _windows(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, out: Pair, value: float) -> np.ndarray:
    """(N, C, Ho, Wo, kh*kw) copy of the windows, taps in row-major order."""
    win = sliding_window_view(_pad(x, padding, value), kernel, axis=(2, 3))
    win = win[:, :, ::stride[0], ::stride[1]][:, :, :out[0], :out[1]]
    return win.reshape(win.shape[:4] + (-1,))


def _scatter(parts: np.ndarray, x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, out: Pair) -> np.ndarray:
    """Sum the per-tap gradients ``parts`` (kh*kw, N, C, Ho, Wo) back onto x's positions."""
    (ph, pw), (n, c, h, w) = padding, x.shape
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    for t in range(kernel[0] * kernel[1]):
        rows, cols = offset_slices(t // kernel[1], t % kernel[1], out, stride, (1, 1))
        dxp[:, :, rows, cols] += parts[t]
    return dxp[:, :, ph:ph + h, pw:pw + w].copy()


def max_pool2d_forward(x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Pair) -> np.ndarray:
    """Max over each kh x kw window; padding counts as -inf. x (N, C, H, W) -> (N, C, Ho, Wo), NaN propagates."""
    kernel, stride, padding, out = check_pool_args(x, kernel, stride, padding)
    return _windows(x, kernel, stride, padding, out, -np.inf).max(axis=-1)


def max_pool2d_backward(g: np.ndarray, x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Pair) -> np.ndarray:
    """dx (N, C, H, W): each window's g goes to its FIRST maximal element in row-major window order
    (np.argmax returns the first maximum, so ties are resolved as the contract says)."""
    kernel, stride, padding, out = check_pool_args(x, kernel, stride, padding)
    check_grad(g, x, x.shape[:2] + out)
    arg = _windows(x, kernel, stride, padding, out, -np.inf).argmax(axis=-1)  # (N, C, Ho, Wo)
    taps = np.arange(kernel[0] * kernel[1]).reshape(-1, 1, 1, 1, 1)
    parts = np.where(arg[None] == taps, g[None], x.dtype.type(0))
    return _scatter(parts, x, kernel, stride, padding, out)


def avg_pool2d_forward(x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Pair) -> np.ndarray:
    """Mean over each window with zero padding counted in the divisor kh*kw. (N, C, H, W) -> (N, C, Ho, Wo)."""
    kernel, stride, padding, out = check_pool_args(x, kernel, stride, padding)
    return _windows(x, kernel, stride, padding, out, 0.0).sum(axis=-1) / x.dtype.type(kernel[0] * kernel[1])


def avg_pool2d_backward(g: np.ndarray, x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Pair) -> np.ndarray:
    """dx (N, C, H, W): every element of a window receives g / (kh*kw)."""
    kernel, stride, padding, out = check_pool_args(x, kernel, stride, padding)
    check_grad(g, x, x.shape[:2] + out)
    share = g / x.dtype.type(kernel[0] * kernel[1])
    parts = np.broadcast_to(share, (kernel[0] * kernel[1],) + share.shape)
    return _scatter(parts, x, kernel, stride, padding, out)
