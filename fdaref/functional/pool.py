"""2-D max and average pooling (vgg_small's M layers), forward and backward, NCHW, literally.

Windows come from a view of the padded input; the backward adds each kernel tap's share back at the
positions that tap read (a loop over the kh*kw taps). Float64 inside, results in the dtype of ``x``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_float_array, check_grad, pair
from ..precision import as_dtype_of, f64
from ._geometry import Pair, offset_slices, out_size, pad, windows


def check_pool_args(x: np.ndarray, kernel: Any, stride: Any, padding: Any) -> tuple[Pair, Pair, Pair, Pair]:
    """Validated (kernel, stride, padding, (Ho, Wo)); padding at most half the kernel (no all-pad window)."""
    check_float_array(x, "x", ndim=4)
    kernel, stride = pair(kernel, "kernel", minimum=1), pair(stride, "stride", minimum=1)
    padding = pair(padding, "padding", minimum=0)
    for k, p in zip(kernel, padding):
        if 2 * p > k:
            raise ValueError(f"padding: expected at most half the kernel {kernel}, got {padding}")
    out = out_size(x.shape[2:], kernel, stride, padding, (1, 1), "pool2d")
    return kernel, stride, padding, out


def _scatter(parts: np.ndarray, x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, out: Pair) -> np.ndarray:
    """dx: the per-tap gradients ``parts`` (kh, kw, N, C, Ho, Wo) added back at the positions each tap read."""
    (ph, pw), (h, w) = padding, x.shape[2:]
    dxp = np.zeros(x.shape[:2] + (h + 2 * ph, w + 2 * pw))
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            rows, cols = offset_slices(i, j, out, stride, (1, 1))
            dxp[:, :, rows, cols] += parts[i, j]
    return dxp[:, :, ph:ph + h, pw:pw + w]


def _windows(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, out: Pair, value: float) -> np.ndarray:
    """(N, C, Ho, Wo, kh, kw) windows of ``x`` in float64, padded with ``value``."""
    return windows(pad(f64(x), padding, value), kernel, stride, (1, 1), out)


def max_pool2d_forward(x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Pair) -> np.ndarray:
    """Max over each kh x kw window; padding counts as -inf. x (N, C, H, W) -> (N, C, Ho, Wo); NaN propagates."""
    kernel, stride, padding, out = check_pool_args(x, kernel, stride, padding)
    return as_dtype_of(_windows(x, kernel, stride, padding, out, -np.inf).max(axis=(4, 5)), x)


def max_pool2d_backward(g: np.ndarray, x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Pair) -> np.ndarray:
    """dx (N, C, H, W): each window's g goes to its FIRST maximal element in row-major window order."""
    kernel, stride, padding, out = check_pool_args(x, kernel, stride, padding)
    check_grad(g, x, x.shape[:2] + out)
    win = _windows(x, kernel, stride, padding, out, -np.inf)
    first = np.argmax(win.reshape(win.shape[:4] + (-1,)), axis=-1)  # argmax returns the first maximum
    parts = np.zeros(kernel + g.shape)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            parts[i, j] = np.where(first == i * kernel[1] + j, f64(g), 0.0)
    return as_dtype_of(_scatter(parts, x, kernel, stride, padding, out), x)


def avg_pool2d_forward(x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Pair) -> np.ndarray:
    """Mean over each window with zero padding counted in the divisor kh*kw. (N, C, H, W) -> (N, C, Ho, Wo)."""
    kernel, stride, padding, out = check_pool_args(x, kernel, stride, padding)
    return as_dtype_of(_windows(x, kernel, stride, padding, out, 0.0).sum(axis=(4, 5)) / (kernel[0] * kernel[1]), x)


def avg_pool2d_backward(g: np.ndarray, x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Pair) -> np.ndarray:
    """dx (N, C, H, W): every element of a window receives g / (kh*kw)."""
    kernel, stride, padding, out = check_pool_args(x, kernel, stride, padding)
    check_grad(g, x, x.shape[:2] + out)
    share = f64(g) / (kernel[0] * kernel[1])
    parts = np.broadcast_to(share, kernel + share.shape)
    return as_dtype_of(_scatter(parts, x, kernel, stride, padding, out), x)
