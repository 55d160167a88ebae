"""The noise adaptation module (Eq. 13) fast, in the input's dtype (the ``numpy`` backend).

The module multiplies along the channel axis of NCHW activations in place (no transposed copy) and uses
einsum where it beats BLAS call patterns; the literal definition is :func:`fdaref.noise.noise_forward`.
"""
from __future__ import annotations

import numpy as np

from fdaref.noise import check_module, from_rows, to_rows


def eta(t: np.ndarray, kind: str, a: float) -> np.ndarray:
    """a*sin(t), a*t or 0, computed in place on one temporary."""
    if kind == "sin":
        out = np.sin(t)
        out *= a
        return out
    if kind == "linear":
        return a * t
    return np.zeros_like(t)


def eta_grad(t: np.ndarray, kind: str, a: float) -> np.ndarray:
    """a*cos(t), a, or 0."""
    if kind == "sin":
        out = np.cos(t)
        out *= a
        return out
    if kind == "linear":
        return np.full_like(t, a)
    return np.zeros_like(t)


def _columns(t: np.ndarray, layout: str) -> np.ndarray:
    """(S, d, P) view of ``t`` whose columns [s, :, p] are its rows of length d (SEMANTICS 3).

    Activations (B, C, H, W) are already in this form as (B, C, H*W): the module then multiplies along the
    channel axis in place, with no transposed copy of the tensor. Every other case is rows(t)^T as (1, d, N).
    """
    if layout == "activation" and t.ndim == 4:
        return t.reshape(t.shape[0], t.shape[1], -1)
    return to_rows(t, layout).T[np.newaxis]


def _uncolumns(cols: np.ndarray, shape: tuple[int, ...], layout: str) -> np.ndarray:
    """Inverse of :func:`_columns`."""
    if layout == "activation" and len(shape) == 4:
        return cols.reshape(shape)
    return from_rows(cols[0].T, shape, layout)


def _mix(w: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """w^T applied to every column: (q, p) and (S, q, P) -> (S, p, P), out[s, :, j] = w^T cols[s, :, j].

    An einsum, not np.matmul: with q = m = 1 (every activation layer up to 127 channels) matmul runs one
    rank-1 BLAS call per sample and is 5x slower than this single loop."""
    return np.einsum("qp,sqj->spj", w, cols)


def _sum_outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over every column pair of a_col b_col^T: (S, p, P), (S, q, P) -> (p, q), i.e. rows(a)^T rows(b)."""
    return np.matmul(a, b.transpose(0, 2, 1)).sum(axis=0)


def noise_forward(t: np.ndarray, w1: np.ndarray, w2: np.ndarray, *, layout: str,
                  eta_kind: str = "sin", a: float = 0.1) -> np.ndarray:
    """Eq. 13: e(t) = relu(t W1) W2 + eta(t), row-wise; returns the shape of ``t``.

    Computed on columns x = t^T (see :func:`_columns`): e = W2^T relu(W1^T x) + eta(x).
    """
    check_module(t, w1, w2, layout, eta_kind, a)
    x = _columns(t, layout)
    fc = _mix(w2, np.maximum(_mix(w1, x), 0))
    out = _uncolumns(fc, t.shape, layout)
    out += eta(t, eta_kind, a)
    return out


def noise_backward(g: np.ndarray, t: np.ndarray, w1: np.ndarray, w2: np.ndarray, *, layout: str,
                   eta_kind: str = "sin", a: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of Eq. 13 for the upstream gradient ``g`` (shape of ``t``).

    With G = rows(g), T = rows(t), h = T W1 and mask = 1[h > 0] (relu'(0) = 0):
    dT = ((G W2^T) * mask) W1^T + G * eta'(T);  dW1 = T^T ((G W2^T) * mask);  dW2 = relu(h)^T G.
    (Eqs. 15-17, computed on columns as in :func:`noise_forward`; the factor alpha of Eq. 14 is applied
    by the quantizer.)
    """
    check_module(t, w1, w2, layout, eta_kind, a)
    if g.shape != t.shape:
        raise ValueError(f"g: expected the shape of t {t.shape}, got {g.shape}")
    x, gx = _columns(t, layout), _columns(g, layout)
    h = _mix(w1, x)
    dh = _mix(w2.T, gx)
    dh *= h > 0
    dt = _uncolumns(_mix(w1.T, dh), t.shape, layout)
    shortcut = eta_grad(t, eta_kind, a)
    shortcut *= g
    dt += shortcut
    return dt, _sum_outer(x, dh), _sum_outer(np.maximum(h, 0), gx)
