"""A worked third-party backend: plugs into fdaref by ``module:object`` and passes the conformance suite.

Written in a different style from the reference: a plain module-level object built from functions, with its
own implementations of the elementwise ops, the weight scale and the linear layer (einsum), and everything
else delegated to the reference op table. Run it with::

    PYTHONPATH=examples/third_party_backend fdaref conform --backend tiny_backend:backend --profile quick
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

import numpy as np

from fdaref.reference import REFERENCE


def _sign(x: np.ndarray, zero: float = -1.0) -> np.ndarray:
    out = np.where(x > 0, 1.0, -1.0).astype(x.dtype)
    out[x == 0] = zero
    out[np.isnan(x)] = np.nan
    return out


def _relu_forward(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0, np.zeros_like(x), x)   # NaN <= 0 is False: NaN stays NaN (SEMANTICS 10)


def _relu_backward(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, g, np.zeros_like(g))


def _weight_scale(w: np.ndarray, mode: str) -> np.ndarray:
    if mode == "channel":
        return np.abs(w).reshape(w.shape[0], -1).mean(axis=1).reshape((w.shape[0],) + (1,) * (w.ndim - 1))
    if mode == "layer":
        return np.abs(w).mean().reshape((1,) * w.ndim).astype(w.dtype)
    return np.ones((1,) * w.ndim, dtype=w.dtype)


def _linear_forward(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray]) -> np.ndarray:
    y = np.einsum("bi,oi->bo", x, w)
    return y if b is None else y + b


def _linear_backward(g, x, w, *, has_bias):
    return np.einsum("bo,oi->bi", g, w), np.einsum("bo,bi->oi", g, x), (g.sum(axis=0) if has_bias else None)


def _refuses(op: str, device: str, dtype: str) -> Optional[str]:
    if device != "cpu":
        return "tiny_backend runs on the CPU only"
    return None if dtype in ("float32", "float64") else f"tiny_backend has no {dtype}"


_OWN = {"sign": _sign, "relu_forward": _relu_forward, "relu_backward": _relu_backward,
        "weight_scale": _weight_scale, "linear_forward": _linear_forward, "linear_backward": _linear_backward}
_DELEGATED = ("from_numpy", "to_numpy", "zeros", "sum_to_shape", "surrogate", "noise_forward", "noise_backward",
              "quantize_forward", "quantize_backward", "conv2d_forward", "conv2d_backward", "batch_norm_forward",
              "batch_norm_backward", "prelu_forward", "prelu_backward", "max_pool2d_forward", "max_pool2d_backward",
              "avg_pool2d_forward", "avg_pool2d_backward", "cross_entropy_forward", "cross_entropy_backward",
              "pack_signs", "xnor_conv2d", "xnor_linear")

backend = SimpleNamespace(name="tiny_backend", version="0.1", devices=("cpu",), dtypes=("float32", "float64"),
                          refuses=_refuses, **_OWN, **{op: getattr(REFERENCE, op) for op in _DELEGATED})
