"""The reference op table: SEMANTICS (docs/SEMANTICS.md) transcribed literally, the oracle every backend is
checked against.

Each op is the function of the same name in fdaref's semantic modules, written as the document states it
(window views and einsum for conv and pooling, the surrogates by their formulas, Eq. 13 on explicit rows),
with no blocking and no dtype-specific paths. Every op computes in float64 and returns the dtype it was given.
The fast NumPy kernels are the ``numpy`` backend (``backends/numpy``), checked against this table like any other.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from . import estimators, noise, quantizer, scale
from .binarize import sign as _sign
from .functional import activation, bitpack, conv, linear, loss, norm, pool
from .host import HostArrays


class NumpyReference(HostArrays):
    """fdaref's semantics as an op table (``--backend reference``)."""

    name = "reference"
    version = np.__version__

    # SEMANTICS 1-4
    def sign(self, x: np.ndarray, zero: float = -1.0) -> np.ndarray:
        return _sign(x, zero)

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        return estimators.estimator_grad(x, estimator, **dict(params))

    noise_forward = staticmethod(noise.noise_forward)
    noise_backward = staticmethod(noise.noise_backward)
    quantize_forward = staticmethod(quantizer.quantize_forward)
    quantize_backward = staticmethod(quantizer.quantize_backward)
    weight_scale = staticmethod(scale.weight_scale)

    # SEMANTICS 5 and the float layers
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

    # SEMANTICS 9
    pack_signs = staticmethod(bitpack.pack_signs)
    xnor_conv2d = staticmethod(bitpack.xnor_conv2d)
    xnor_linear = staticmethod(bitpack.xnor_linear)


REFERENCE = NumpyReference()
