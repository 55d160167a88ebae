"""Fully connected layer y = x w^T + b (SEMANTICS 5: the float part of the binary linear layer, and the FP head);
float64 inside, results in the dtype of ``x``."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .._validate import check_bias, check_float_array, check_grad
from ..precision import as_dtype_of, f64


def check_linear_args(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray]) -> None:
    check_float_array(x, "x", ndim=2)
    check_float_array(w, "w", ndim=2)
    if w.dtype != x.dtype:
        raise TypeError(f"w: expected the dtype of x ({x.dtype}), got {w.dtype}")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w: expected (out, {x.shape[1]}) to match x {x.shape} (in = {x.shape[1]}), got {w.shape}")
    check_bias(b, x, w.shape[0], "out")


def linear_forward(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray]) -> np.ndarray:
    """y = x @ w.T + b. x: (B, in); w: (out, in); b: (out,) or None; one float dtype. Returns (B, out)."""
    check_linear_args(x, w, b)
    y = f64(x) @ f64(w).T
    if b is not None:
        y = y + f64(b)
    return as_dtype_of(y, x)


def linear_backward(g: np.ndarray, x: np.ndarray, w: np.ndarray, *, has_bias: bool
                    ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(dx, dw, db) for g (B, out): dx = g w (B, in), dw = g^T x (out, in), db = sum_B g (out,) or None."""
    check_linear_args(x, w, None)
    check_grad(g, x, (x.shape[0], w.shape[0]))
    gf = f64(g)
    return as_dtype_of(gf @ f64(w), x), as_dtype_of(gf.T @ f64(x), x), (as_dtype_of(gf.sum(axis=0), x) if has_bias else None)
