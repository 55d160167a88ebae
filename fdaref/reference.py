"""The reference op table (pure NumPy): the semantics every backend is checked against.

Each op delegates to the function of the same name in fdaref's semantic modules; this class only adapts
them to the :class:`fdaref.optable.OpTable` contract. It computes in the dtype it is given (float32 or float64).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from . import estimators, noise, quantizer, scale
from .binarize import sign as _sign
from ._validate import check_float_array
from .functional import activation, bitpack, conv, linear, loss, norm, pool


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
    """Plumbing shared by op tables whose arrays are host numpy arrays (the reference, the numba backend)."""

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


class NumpyReference(HostArrays):
    """fdaref's semantics as an op table (the ``numpy`` backend)."""

    name = "numpy"
    version = np.__version__

    # SPEC 1-4
    def sign(self, x: np.ndarray, zero: float = -1.0) -> np.ndarray:
        return _sign(x, zero)

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        return estimators.estimator_grad(x, estimator, **dict(params))

    noise_forward = staticmethod(noise.noise_forward)
    noise_backward = staticmethod(noise.noise_backward)
    quantize_forward = staticmethod(quantizer.quantize_forward)
    quantize_backward = staticmethod(quantizer.quantize_backward)
    weight_scale = staticmethod(scale.weight_scale)

    # SPEC 5 and the float layers
    conv2d_forward = staticmethod(conv.conv2d_forward)
    conv2d_backward = staticmethod(conv.conv2d_backward)
    linear_forward = staticmethod(linear.linear_forward)
    linear_backward = staticmethod(linear.linear_backward)
    batch_norm_forward = staticmethod(norm.batch_norm_forward)
    batch_norm_backward = staticmethod(norm.batch_norm_backward)
    relu_forward = staticmethod(activation.relu_forward)
    relu_backward = staticmethod(activation.relu_backward)
    prelu_forward = staticmethod(activation.prelu_forward)
    prelu_backward = staticmethod(activation.prelu_backward)
    max_pool2d_forward = staticmethod(pool.max_pool2d_forward)
    max_pool2d_backward = staticmethod(pool.max_pool2d_backward)
    avg_pool2d_forward = staticmethod(pool.avg_pool2d_forward)
    avg_pool2d_backward = staticmethod(pool.avg_pool2d_backward)
    cross_entropy_forward = staticmethod(loss.cross_entropy_forward)
    cross_entropy_backward = staticmethod(loss.cross_entropy_backward)

    # SPEC 9
    pack_signs = staticmethod(bitpack.pack_signs)
    xnor_conv2d = staticmethod(bitpack.xnor_conv2d)
    xnor_linear = staticmethod(bitpack.xnor_linear)


REFERENCE = NumpyReference()
