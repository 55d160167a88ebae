"""The FDA quantizer (Eq. 14, SEMANTICS 4): sign in the forward, a surrogate plus the noise module in the backward."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ._validate import check_float_array, check_real
from .estimators import estimator_grad
from .noise import noise_backward, noise_forward
from .binarize import sign
from .precision import as_dtype_of, f64


def check_quantize_args(t: np.ndarray, alpha: float, g: np.ndarray | None = None) -> None:
    """The quantizer's argument checks, shared by every NumPy implementation of it: float arrays, a real
    alpha, and (backward) an upstream gradient of t's shape."""
    if g is not None:
        check_float_array(g, "g")
    check_float_array(t, "t")
    check_real(alpha, "alpha")
    if g is not None and g.shape != t.shape:
        raise ValueError(f"g: expected the shape of t {t.shape}, got {g.shape}")


def quantize_forward(t: np.ndarray, w1: np.ndarray | None, w2: np.ndarray | None, *, alpha: float,
                     zero: float = -1.0, layout: str = "weight", eta_kind: str = "sin", a: float = 0.1,
                     training: bool = True) -> np.ndarray:
    """Eq. 14: z = sign(t) + alpha * e(t) while training; z = sign(t) in eval, when alpha == 0 or no module."""
    check_quantize_args(t, alpha)
    z = sign(t, zero)
    if not training or alpha == 0 or w1 is None:
        return z
    e = noise_forward(f64(t), f64(w1), f64(w2), layout=layout, eta_kind=eta_kind, a=a)
    return as_dtype_of(f64(z) + alpha * e, t)


def quantize_backward(g: np.ndarray, t: np.ndarray, w1: np.ndarray | None, w2: np.ndarray | None, *,
                      alpha: float, estimator: str = "fda", params: Mapping[str, Any] | None = None,
                      layout: str = "weight", eta_kind: str = "sin", a: float = 0.1
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """SEMANTICS 4: dL/dt = g * est'(t) + alpha (de/dt)^T g;  dL/dW1, dL/dW2 = alpha * (chain rule of Eq. 13).

    Returns (dt, dw1, dw2); dw1 and dw2 are None when there is no module, zeros when alpha == 0.
    """
    check_quantize_args(t, alpha, g)
    dt = f64(g) * f64(estimator_grad(t, estimator, **dict(params or {})))  # t in its dtype: the clip compares there
    if w1 is None:
        return as_dtype_of(dt, t), None, None
    if alpha == 0:
        return as_dtype_of(dt, t), np.zeros_like(w1), np.zeros_like(w2)
    dt_e, dw1, dw2 = noise_backward(f64(g), f64(t), f64(w1), f64(w2), layout=layout, eta_kind=eta_kind, a=a)
    return as_dtype_of(dt + alpha * dt_e, t), as_dtype_of(alpha * dw1, w1), as_dtype_of(alpha * dw2, w2)
