"""The FDA quantizer (Eq. 14) with the noise module's terms added in place (the ``numpy`` backend)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from fdaref._validate import check_float_array
from fdaref.binarize import check_zero
from fdaref.quantizer import check_quantize_args

from .noise import noise_backward, noise_forward


def sign(x: np.ndarray, zero: float = -1.0) -> np.ndarray:
    """Eq. 1 in two passes: numpy's sign, then ``zero`` written where x == 0 (-0.0 included); NaN stays NaN."""
    check_float_array(x, "x")
    zero = check_zero(zero)
    out = np.sign(x)
    out[x == 0] = zero
    return out


def quantize_forward(t: np.ndarray, w1: np.ndarray | None, w2: np.ndarray | None, *, alpha: float,
                     zero: float = -1.0, layout: str = "weight", eta_kind: str = "sin", a: float = 0.1,
                     training: bool = True) -> np.ndarray:
    """Eq. 14: z = sign(t) + alpha * e(t) while training; z = sign(t) in eval, when alpha == 0 or no module."""
    check_quantize_args(t, alpha)
    z = sign(t, zero)
    if not training or alpha == 0 or w1 is None:
        return z
    z_noise = noise_forward(t, w1, w2, layout=layout, eta_kind=eta_kind, a=a)
    z_noise *= alpha
    z_noise += z
    return z_noise


def quantize_backward(g: np.ndarray, t: np.ndarray, w1: np.ndarray | None, w2: np.ndarray | None, *,
                      alpha: float, surrogate: Callable[[np.ndarray], np.ndarray], layout: str = "weight",
                      eta_kind: str = "sin", a: float = 0.1
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """dL/dt = g * surrogate(t) + alpha (de/dt)^T g;  dL/dW1, dL/dW2 = alpha * (chain rule of Eq. 13).

    Returns (dt, dw1, dw2); dw1 and dw2 are None when there is no module, zeros when alpha == 0.
    """
    check_quantize_args(t, alpha, g)
    dt = g * surrogate(t)  # not in place: a registered estimator may return a view
    if w1 is None:
        return dt, None, None
    if alpha == 0:
        return dt, np.zeros_like(w1), np.zeros_like(w2)
    dt_e, dw1, dw2 = noise_backward(g, t, w1, w2, layout=layout, eta_kind=eta_kind, a=a)
    dt_e *= alpha
    dt_e += dt
    return dt_e, alpha * dw1, alpha * dw2
