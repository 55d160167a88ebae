"""The FDA quantizer (Eq. 14, SPEC 4): sign in the forward, a surrogate plus the noise module in the backward."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ._validate import check_float_array, check_real
from .estimators import estimator_grad
from .noise import noise_backward, noise_forward
from .binarize import sign


def quantize_forward(t: np.ndarray, w1: np.ndarray | None, w2: np.ndarray | None, *, alpha: float,
                     zero: float = -1.0, layout: str = "weight", eta_kind: str = "sin", a: float = 0.1,
                     training: bool = True) -> np.ndarray:
    """Eq. 14: z = sign(t) + alpha * e(t) while training; z = sign(t) in eval, when alpha == 0 or no module."""
    check_float_array(t, "t")
    check_real(alpha, "alpha")
    z = sign(t, zero)
    if not training or alpha == 0 or w1 is None:
        return z
    z_noise = noise_forward(t, w1, w2, layout=layout, eta_kind=eta_kind, a=a)
    z_noise *= alpha
    z_noise += z
    return z_noise


def quantize_backward(g: np.ndarray, t: np.ndarray, w1: np.ndarray | None, w2: np.ndarray | None, *,
                      alpha: float, estimator: str = "fda", params: Mapping[str, Any] | None = None,
                      layout: str = "weight", eta_kind: str = "sin", a: float = 0.1
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """SPEC 4: dL/dt = g * est'(t) + alpha (de/dt)^T g;  dL/dW1, dL/dW2 = alpha * (chain rule of Eq. 13).

    Returns (dt, dw1, dw2); dw1 and dw2 are None when there is no module, zeros when alpha == 0.
    """
    check_float_array(g, "g")
    check_float_array(t, "t")
    check_real(alpha, "alpha")
    if g.shape != t.shape:
        raise ValueError(f"g: expected the shape of t {t.shape}, got {g.shape}")
    dt = g * estimator_grad(t, estimator, **dict(params or {}))  # not in place: a registered estimator may return a view
    if w1 is None:
        return dt, None, None
    if alpha == 0:
        return dt, np.zeros_like(w1), np.zeros_like(w2)
    dt_e, dw1, dw2 = noise_backward(g, t, w1, w2, layout=layout, eta_kind=eta_kind, a=a)
    dt_e *= alpha
    dt_e += dt
    return dt_e, alpha * dw1, alpha * dw2
