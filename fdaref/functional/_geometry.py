"""Window geometry shared by conv, pooling and XNOR conv: output sizes, padding and the offset slices."""
from __future__ import annotations

from typing import Any

import numpy as np

from numpy.lib.stride_tricks import sliding_window_view

from .._validate import check_choice, pair

Pair = tuple[int, int]
PAD_VALUES = (0.0, -1.0, 1.0)  # SEMANTICS 5: the padding of a binarized input


def geometry(stride: Any, padding: Any, dilation: Any = 1) -> tuple[Pair, Pair, Pair]:
    """Validated (stride, padding, dilation): stride >= 1, padding >= 0, dilation >= 1."""
    return (pair(stride, "stride", minimum=1), pair(padding, "padding", minimum=0),
            pair(dilation, "dilation", minimum=1))


def pad_value_of(value: Any) -> float:
    """SEMANTICS 5: the constant padding is 0, -1 or +1."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"pad_value: expected one of 0, -1, +1, got {value!r}")
    return float(check_choice(float(value), "pad_value", PAD_VALUES))


def out_size(size: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, what: str) -> Pair:
    """(Ho, Wo) = floor((H + 2p - d (k - 1) - 1) / s) + 1; an error if the kernel exceeds the padded input."""
    out = []
    for axis, n, k, s, p, d in zip(("height", "width"), size, kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        if span > n + 2 * p:
            raise ValueError(f"{what}: the (dilated) kernel {axis} {span} is larger than the padded input "
                             f"{axis} {n} + 2*{p} = {n + 2 * p}")
        out.append((n + 2 * p - span) // s + 1)
    return out[0], out[1]


def offset_slices(i: int, j: int, out: Pair, stride: Pair, dilation: Pair) -> tuple[slice, slice]:
    """Rows and columns of the padded input that kernel tap (i, j) reads, one per output pixel."""
    h0, w0 = i * dilation[0], j * dilation[1]
    return (slice(h0, h0 + stride[0] * (out[0] - 1) + 1, stride[0]),
            slice(w0, w0 + stride[1] * (out[1] - 1) + 1, stride[1]))


def pad(x: np.ndarray, padding: Pair, value: float) -> np.ndarray:
    """(N, C, H + 2 ph, W + 2 pw): ``x`` (N, C, H, W) surrounded by the constant ``value``."""
    (ph, pw) = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def windows(xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out: Pair) -> np.ndarray:
    """The (N, C, Ho, Wo, kh, kw) view of a padded input whose [n, c, y, x, i, j] is
    xp[n, c, y*sh + i*dh, x*sw + j*dw]: the element kernel tap (i, j) meets at output pixel (y, x)."""
    span = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    win = sliding_window_view(xp, span, axis=(2, 3))[..., ::dilation[0], ::dilation[1]]
    return win[:, :, ::stride[0], ::stride[1]][:, :, :out[0], :out[1]]
