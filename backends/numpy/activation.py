"""ReLU and PReLU forward and backward in the input's dtype (the ``numpy`` backend): masks built arithmetically."""
from __future__ import annotations

import numpy as np

from fdaref._validate import check_float_array, check_grad
# relu is exact in any dtype and has no faster form, so the backend serves the reference's own.
from fdaref.functional.activation import prelu_slope, relu_backward, relu_forward  # noqa: F401


def _slope_where_negative(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """1 where x > 0, else the slope s (broadcast along axis 1): d prelu / dx, and y / x off zero.

    Built arithmetically, (1 - pos) * s + pos with pos in {0, 1}, which is exactly 1 or s: np.where on a
    random mask costs ~5 ns per element (branch mispredictions), these four passes well under 1.
    """
    pos = (x > 0).astype(x.dtype)
    factor = np.subtract(x.dtype.type(1), pos)
    factor *= s
    factor += pos
    return factor


def prelu_forward(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """x where x > 0, else slope * x. x: (B, C, ...); slope: (1,) or (C,) along axis 1. Shape of x."""
    factor = _slope_where_negative(x, prelu_slope(x, slope))
    factor *= x
    return factor


def prelu_backward(g: np.ndarray, x: np.ndarray, slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dslope): dx = g where x > 0 else slope * g (so slope at 0); dslope = sum g * x over x <= 0,
    per channel for a (C,) slope, over everything for a (1,) slope. Shapes of x and slope."""
    s = prelu_slope(x, slope)
    check_grad(g, x)
    dx = _slope_where_negative(x, s)
    dx *= g
    negative_part = np.minimum(x, x.dtype.type(0))  # x where x <= 0, else 0
    if slope.shape[0] == 1:
        dslope = np.vdot(g, negative_part).reshape(1)
    else:
        negative_part *= g
        dslope = negative_part.sum(axis=(0,) + tuple(range(2, x.ndim)))
    return dx, dslope.astype(x.dtype, copy=False)
