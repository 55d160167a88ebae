"""Plumbing shared by op tables whose arrays are host numpy arrays (the reference, the numpy and numba backends)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def sum_to_shape(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Undo numpy broadcasting: sum ``x`` down to ``shape`` (the one place the engine unbroadcasts)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    if lead < 0:
        raise ValueError(f"sum_to_shape: cannot reduce shape {x.shape} to the larger rank of {shape}")
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1)
    out = x.sum(axis=axes, keepdims=True)
    return out.reshape(shape)


class HostArrays:
    """Identity, capabilities and array plumbing of a CPU op table on numpy arrays (float32 and float64)."""

    name = "numpy"
    devices = ("cpu",)
    dtypes = ("float32", "float64")

    def refuses(self, op: str, device: str, dtype: str) -> Optional[str]:
        if device != "cpu":
            return f"the {self.name} backend runs on the CPU only, not on {device!r}"
        if dtype not in self.dtypes:
            return f"the {self.name} backend computes in float32 or float64, not {dtype}"
        return None

    def from_numpy(self, a: np.ndarray, device: str = "cpu") -> np.ndarray:
        if device != "cpu":
            raise ValueError(f"the {self.name} backend has no device {device!r}; it runs on 'cpu'")
        return np.array(a, copy=True)

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    def zeros(self, shape: Sequence[int], like: np.ndarray) -> np.ndarray:
        return np.zeros(tuple(shape), dtype=like.dtype)

    sum_to_shape = staticmethod(sum_to_shape)
