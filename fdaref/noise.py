"""The noise adaptation module (Eq. 13, SEMANTICS 3): e(t) = relu(t W1) W2 + eta(t) on row vectors t.

A tensor is viewed as rows of length d before the module is applied (SEMANTICS 3):
- ``layout="weight"``: (C_out, C_in, kh, kw) or (out, in) -> C_out rows of d = C_in*kh*kw (or in);
- ``layout="activation"``: (B, C, H, W) -> B*H*W rows of d = C (one per pixel), or (B, in) -> B rows.
"""
from __future__ import annotations

import numpy as np

from ._validate import check_choice, check_float_array, check_int, check_real
from .precision import as_dtype_of, f64

LAYOUTS = ("weight", "activation")
ETAS = ("sin", "linear", "none")
DEFAULT_K = 64


def noise_width(d: int, k: int = DEFAULT_K) -> int:
    """Hidden width m = max(1, d // k) (SEMANTICS 3; never a zero-width layer)."""
    check_int(d, "d", minimum=1)
    check_int(k, "k", minimum=1)
    return max(1, d // k)


def row_length(shape: tuple[int, ...], layout: str) -> int:
    """d, the length of one row for a tensor of ``shape`` under ``layout``."""
    check_choice(layout, "layout", LAYOUTS)
    if layout == "weight":
        if len(shape) not in (2, 4):
            raise ValueError(f"weight layout expects a 2-D or 4-D tensor, got shape {shape}")
        return int(np.prod(shape[1:]))
    if len(shape) not in (2, 4):
        raise ValueError(f"activation layout expects (B, in) or (B, C, H, W), got shape {shape}")
    return int(shape[1])


def to_rows(t: np.ndarray, layout: str) -> np.ndarray:
    """The (rows, d) view of ``t`` under ``layout``."""
    d = row_length(t.shape, layout)
    if layout == "activation" and t.ndim == 4:
        return np.moveaxis(t, 1, -1).reshape(-1, d)
    return t.reshape(-1, d)


def from_rows(rows: np.ndarray, shape: tuple[int, ...], layout: str) -> np.ndarray:
    """Inverse of :func:`to_rows`."""
    if layout == "activation" and len(shape) == 4:
        b, c, h, w = shape
        return np.moveaxis(rows.reshape(b, h, w, c), -1, 1)
    return rows.reshape(shape)


def eta(t: np.ndarray, kind: str = "sin", a: float = 0.1) -> np.ndarray:
    """The shortcut of Eq. 13 (Table 4): a*sin(t), a*t or 0."""
    check_choice(kind, "eta", ETAS)
    if kind == "sin":
        return a * np.sin(t)
    if kind == "linear":
        return a * t
    return np.zeros_like(t)


def eta_grad(t: np.ndarray, kind: str = "sin", a: float = 0.1) -> np.ndarray:
    """d eta / dt: a*cos(t), a, or 0."""
    check_choice(kind, "eta", ETAS)
    if kind == "sin":
        return a * np.cos(t)
    if kind == "linear":
        return np.full_like(t, a)
    return np.zeros_like(t)


def check_module(t: np.ndarray, w1: np.ndarray, w2: np.ndarray, layout: str, kind: str, a: float) -> int:
    """Validate the inputs of the noise module (Eq. 13); return the row length d."""
    check_float_array(t, "t")
    check_float_array(w1, "w1", ndim=2)
    check_float_array(w2, "w2", ndim=2)
    check_choice(kind, "eta", ETAS)
    check_real(a, "a")
    d = row_length(t.shape, layout)
    m = w1.shape[1]
    if w1.shape[0] != d or w2.shape != (m, d):
        raise ValueError(f"noise module for rows of length d={d} expects w1 (d, m) and w2 (m, d); "
                         f"got w1 {w1.shape}, w2 {w2.shape}")
    return d


def noise_forward(t: np.ndarray, w1: np.ndarray, w2: np.ndarray, *, layout: str,
                  eta_kind: str = "sin", a: float = 0.1) -> np.ndarray:
    """Eq. 13 on the rows T of ``t`` (SEMANTICS 3): e(T) = relu(T W1) W2 + eta(T); the shape and dtype of ``t``."""
    check_module(t, w1, w2, layout, eta_kind, a)
    rows = to_rows(f64(t), layout)
    e = np.maximum(rows @ f64(w1), 0.0) @ f64(w2) + eta(rows, eta_kind, a)
    return as_dtype_of(from_rows(e, t.shape, layout), t)


def noise_backward(g: np.ndarray, t: np.ndarray, w1: np.ndarray, w2: np.ndarray, *, layout: str,
                   eta_kind: str = "sin", a: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of Eq. 13 for the upstream gradient ``g`` (shape of ``t``): (dt, dw1, dw2).

    With G = rows(g), T = rows(t), H = T W1 and mask = 1[H > 0] (relu'(0) = 0), dH = (G W2^T) * mask:
    dT = dH W1^T + G * eta'(T);  dW1 = T^T dH;  dW2 = relu(H)^T G  (Eqs. 15-17; the factor alpha of Eq. 14
    is applied by the quantizer).
    """
    check_module(t, w1, w2, layout, eta_kind, a)
    if g.shape != t.shape:
        raise ValueError(f"g: expected the shape of t {t.shape}, got {g.shape}")
    rows, grows, w1f, w2f = to_rows(f64(t), layout), to_rows(f64(g), layout), f64(w1), f64(w2)
    h = rows @ w1f
    dh = (grows @ w2f.T) * (h > 0)
    dt = dh @ w1f.T + grows * eta_grad(rows, eta_kind, a)
    return (as_dtype_of(from_rows(dt, t.shape, layout), t), as_dtype_of(rows.T @ dh, w1),
            as_dtype_of(np.maximum(h, 0.0).T @ grows, w2))


def init_noise_params(d: int, k: int, rng: np.random.Generator,
                      dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean init (Sec. 2.3): W1 ~ U(+-1/sqrt(d)) of shape (d, m), W2 ~ U(+-1/sqrt(m)) of shape (m, d)."""
    m = noise_width(d, k)
    w1 = rng.uniform(-1, 1, size=(d, m)) / np.sqrt(d)
    w2 = rng.uniform(-1, 1, size=(m, d)) / np.sqrt(m)
    return w1.astype(dtype), w2.astype(dtype)
