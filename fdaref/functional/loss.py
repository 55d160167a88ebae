"""Cross-entropy with label smoothing on logits (the training loss), forward and backward; float64 inside,
results in the dtype of the logits."""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_float_array, check_real
from ..precision import as_dtype_of, f64


def check_cross_entropy_args(logits: np.ndarray, labels: Any, label_smoothing: Any) -> float:
    check_float_array(logits, "logits", ndim=2)
    b, k = logits.shape
    if b < 1 or k < 1:
        raise ValueError(f"logits: expected a non-empty (B, C) array, got shape {logits.shape}")
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu":
        raise TypeError(f"labels: expected an int64 numpy array of class indices, got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)}")
    if labels.shape != (b,):
        raise ValueError(f"labels: expected shape ({b},) (the batch of logits {logits.shape}), got {labels.shape}")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels: expected class indices in [0, {k}), got values in [{labels.min()}, {labels.max()}]")
    s = check_real(label_smoothing, "label_smoothing")
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"label_smoothing: expected a number in [0, 1], got {s}")
    return s


def check_scalar_grad(g: Any) -> np.ndarray:
    """The upstream gradient of a scalar loss: a float 0-d array (returned as one)."""
    g = np.asarray(g)
    if g.shape != ():
        raise ValueError(f"g: expected a 0-d upstream gradient (the loss is a scalar), got shape {g.shape}")
    if g.dtype.kind != "f":
        raise TypeError(f"g: expected a float 0-d array, got dtype {g.dtype}")
    return g


def smoothed_targets(logits: np.ndarray, labels: np.ndarray, s: float) -> np.ndarray:
    """q = (1 - s) onehot(labels) + s / C, (B, C) in the logits' dtype."""
    b, k = logits.shape
    q = np.full((b, k), s / k, dtype=logits.dtype)
    q[np.arange(b), labels] += logits.dtype.type(1 - s)
    return q


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Stable log softmax along axis 1: shift by the row max so exp never overflows."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy_forward(logits: np.ndarray, labels: np.ndarray, *, label_smoothing: float) -> np.ndarray:
    """loss = mean_b -sum_c q_bc log softmax(logits_b)_c, q = (1 - s) onehot + s / C.

    logits: (B, C) float; labels: (B,) integer class indices in [0, C); s in [0, 1]. Returns a 0-d array
    of the logits' dtype.
    """
    s = check_cross_entropy_args(logits, labels, label_smoothing)
    z = f64(logits)
    loss = -(smoothed_targets(z, labels, s) * log_softmax(z)).sum() / z.shape[0]
    return np.asarray(loss, dtype=logits.dtype)


def cross_entropy_backward(g: Any, logits: np.ndarray, labels: np.ndarray, *, label_smoothing: float) -> np.ndarray:
    """d loss / d logits times the 0-d upstream gradient g: g (softmax(logits) - q) / B, shape (B, C)."""
    s = check_cross_entropy_args(logits, labels, label_smoothing)
    g = check_scalar_grad(g)
    z = f64(logits)
    return as_dtype_of(float(g) * (np.exp(log_softmax(z)) - smoothed_targets(z, labels, s)) / z.shape[0], logits)
