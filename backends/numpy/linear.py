"""Fully connected layer in the input's dtype (the ``numpy`` backend): y = x w^T + b by one GEMM each way."""
from __future__ import annotations

from typing import Optional

import numpy as np

from fdaref._validate import check_grad
from fdaref.functional.linear import check_linear_args


def linear_forward(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray]) -> np.ndarray:
    """y = x @ w.T + b. x: (B, in); w: (out, in); b: (out,) or None. Returns (B, out)."""
    check_linear_args(x, w, b)
    y = x @ w.T
    if b is not None:
        y += b
    return y


def linear_backward(g: np.ndarray, x: np.ndarray, w: np.ndarray, *, has_bias: bool
                    ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(dx, dw, db) for g (B, out): dx = g w, dw = g^T x, db = sum_B g or None."""
    check_linear_args(x, w, None)
    check_grad(g, x, (x.shape[0], w.shape[0]))
    return g @ w, g.T @ x, (g.sum(axis=0) if has_bias else None)
