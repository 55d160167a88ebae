"""2-D convolution (cross-correlation, groups = 1) with constant padding, literally (SEMANTICS 5).

The forward is one einsum over a window view of the padded input; the backward is the same sum with the
roles exchanged (dw), and dx adds each kernel tap's share back at the input positions that tap read.
Float64 inside, results in the dtype of ``x``.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._validate import check_bias, check_float_array, check_grad
from ..precision import as_dtype_of, f64
from ._geometry import Pair, geometry, offset_slices, out_size, pad, pad_value_of, windows


def check_conv_args(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], stride: Any, padding: Any,
                    dilation: Any, pad_value: Any) -> tuple[Pair, Pair, Pair, float, Pair]:
    """Validate the conv inputs; return (stride, padding, dilation, pad_value, (Ho, Wo))."""
    check_float_array(x, "x", ndim=4)
    check_float_array(w, "w", ndim=4)
    if w.dtype != x.dtype:
        raise TypeError(f"w: expected the dtype of x ({x.dtype}), got {w.dtype}")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w: expected C_in = {x.shape[1]} (the channels of x {x.shape}), got w {w.shape}")
    if min(w.shape) < 1:
        raise ValueError(f"w: expected every dimension >= 1, got shape {w.shape}")
    check_bias(b, x, w.shape[0], "C_out")
    stride, padding, dilation = geometry(stride, padding, dilation)
    pv = pad_value_of(pad_value)
    out = out_size(x.shape[2:], w.shape[2:], stride, padding, dilation, "conv2d")
    return stride, padding, dilation, pv, out


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], *, stride: Pair, padding: Pair,
                   dilation: Pair, pad_value: float) -> np.ndarray:
    """out[n, o, y, x] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, y*sh + i*dh, x*sw + j*dw].

    x: (N, C_in, H, W); w: (C_out, C_in, kh, kw); b: (C_out,) or None; one float dtype (kept). ``xpad`` is
    ``x`` padded by ``padding`` on each side with the constant ``pad_value`` (0, -1 or +1, SEMANTICS 5).
    Returns (N, C_out, Ho, Wo), Ho = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1 (the same for Wo).
    """
    stride, padding, dilation, pv, out = check_conv_args(x, w, b, stride, padding, dilation, pad_value)
    win = windows(pad(f64(x), padding, pv), w.shape[2:], stride, dilation, out)
    y = np.einsum("ncyxij,ocij->noyx", win, f64(w), optimize=True)
    if b is not None:
        y = y + f64(b).reshape(1, -1, 1, 1)
    return as_dtype_of(y, x)


def conv2d_backward(g: np.ndarray, x: np.ndarray, w: np.ndarray, *, has_bias: bool, stride: Pair,
                    padding: Pair, dilation: Pair, pad_value: float
                    ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(dx, dw, db) of :func:`conv2d_forward` for the upstream gradient g (N, C_out, Ho, Wo).

    dw[o, c, i, j] = sum_{n,y,x} g[n, o, y, x] xpad[n, c, y*sh + i*dh, x*sw + j*dw];  db[o] = sum_{n,y,x} g;
    dxpad[n, c, y*sh + i*dh, x*sw + j*dw] += sum_o g[n, o, y, x] w[o, c, i, j], and dx is the interior of
    dxpad: the padding is a constant, so it receives no gradient (but enters dw when ``pad_value`` != 0).
    db is None unless ``has_bias``. Results in the dtype of x; shapes of x, w and (C_out,).
    """
    stride, padding, dilation, pv, out = check_conv_args(x, w, None, stride, padding, dilation, pad_value)
    check_grad(g, x, (x.shape[0], w.shape[0]) + out)
    gf, wf, xp = f64(g), f64(w), pad(f64(x), padding, pv)
    dw = np.einsum("noyx,ncyxij->ocij", gf, windows(xp, w.shape[2:], stride, dilation, out), optimize=True)
    dxp = np.zeros_like(xp)
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            rows, cols = offset_slices(i, j, out, stride, dilation)
            dxp[:, :, rows, cols] += np.einsum("noyx,oc->ncyx", gf, wf[:, :, i, j])
    (ph, pw), (h, wd) = padding, x.shape[2:]
    dx = dxp[:, :, ph:ph + h, pw:pw + wd]
    return as_dtype_of(dx, x), as_dtype_of(dw, x), (as_dtype_of(gf.sum(axis=(0, 2, 3)), x) if has_bias else None)
