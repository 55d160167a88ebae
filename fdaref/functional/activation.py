"""ReLU (the resnet20 head) and PReLU (SEMANTICS 8: one slope per block, init 0.25), forward and backward,
literally (PReLU in float64 inside; ReLU is exact in any dtype)."""
from __future__ import annotations

import numpy as np

from .._validate import check_float_array, check_grad
from ..precision import as_dtype_of, f64


def relu_forward(x: np.ndarray) -> np.ndarray:
    """max(x, 0), any shape, dtype kept; NaN stays NaN."""
    check_float_array(x, "x")
    return np.maximum(x, x.dtype.type(0))


def relu_backward(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    """g where x > 0, else 0 (relu'(0) = 0); shape and dtype of x."""
    check_float_array(x, "x")
    check_grad(g, x)
    return np.where(x > 0, g, x.dtype.type(0))


def prelu_slope(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """``slope`` (1,) or (C,) reshaped to broadcast along axis 1 of x (B, C, ...)."""
    check_float_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x: expected at least 2 dimensions (B, C, ...), got shape {x.shape}")
    check_float_array(slope, "slope", ndim=1)
    if slope.dtype != x.dtype:
        raise TypeError(f"slope: expected the dtype of x ({x.dtype}), got {slope.dtype}")
    if slope.shape not in ((1,), (x.shape[1],)):
        raise ValueError(f"slope: expected shape (1,) or ({x.shape[1]},) (the channels of x {x.shape}), "
                         f"got {slope.shape}")
    return slope.reshape((1, -1) + (1,) * (x.ndim - 2))


def prelu_forward(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """x where x > 0, else slope * x. x: (B, C, ...); slope: (1,) or (C,) along axis 1. Shape of x."""
    s = f64(prelu_slope(x, slope))
    xf = f64(x)
    return as_dtype_of(np.where(xf > 0, xf, s * xf), x)


def prelu_backward(g: np.ndarray, x: np.ndarray, slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dslope): dx = g where x > 0 else slope * g (so slope at 0); dslope = sum of g * x over x <= 0,
    per channel for a (C,) slope, over everything for a (1,) slope. Shapes of x and slope."""
    s = f64(prelu_slope(x, slope))
    check_grad(g, x)
    xf, gf = f64(x), f64(g)
    dx = np.where(xf > 0, gf, s * gf)
    contribution = np.where(xf > 0, 0.0, gf * xf)
    axes = tuple(range(x.ndim)) if slope.shape[0] == 1 else (0,) + tuple(range(2, x.ndim))
    return as_dtype_of(dx, x), as_dtype_of(contribution.sum(axis=axes).reshape(slope.shape), x)
