"""The ``numpy`` backend: fdaref's op table with fast NumPy kernels, checked against the literal reference.

What is fast here and why (each file says more): the closed-form fda in cache-sized blocks with float32 sines
for float32 inputs (:mod:`.surrogates`); the noise module on NCHW activations without a transposed copy, by
einsum (:mod:`.noise`); the quantizer adding its terms in place (:mod:`.quantizer`); conv as a chunked im2col
+ one GEMM per chunk, "flat mode" for stride 1 (:mod:`.conv`); batch norm with contiguous channel sums
(:mod:`.norm`); PReLU with arithmetic masks (:mod:`.activation`); pooling by window views (:mod:`.pool`); the
XNOR conv by popcount (:mod:`.bitpack`). Every op computes in the dtype it is given. Argument checks, the
host-array plumbing and the small ops (weight scale, cross entropy) are the reference's, so the
errors are the reference's. A surrogate registered by a third party is evaluated by
:func:`fdaref.estimators.estimator_grad`.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import numpy as np

from fdaref import estimators as _est
from fdaref._validate import check_float_array
from fdaref.functional import loss as _loss
from fdaref.host import HostArrays
from fdaref.scale import weight_scale as _weight_scale

from . import activation, bitpack, conv, linear, norm, pool, quantizer
from . import noise as _noise
from .surrogates import FAST


def fast_surrogate(estimator: str, params: Optional[Mapping[str, Any]]) -> Callable[[np.ndarray], np.ndarray]:
    """x -> d sign / dx for ``estimator``: this backend's kernel for one of fdaref's built-ins (unless a third
    party replaced it in the registry), else the registered function."""
    est = _est.get_estimator(estimator)
    p = est.resolve(params)
    if est.grad is getattr(_est, estimator, None) and estimator in FAST:
        kernel = FAST[estimator]
        return lambda x: kernel(x, **p)
    return lambda x: _est.estimator_grad(x, estimator, **p)


class NumpyBackend(HostArrays):
    """The fast NumPy op table (see the module docstring)."""

    name = "numpy"
    version = np.__version__

    sign = staticmethod(quantizer.sign)

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        check_float_array(x, "x")
        return fast_surrogate(estimator, params)(x)

    def noise_forward(self, t, w1, w2, *, layout, eta_kind="sin", a=0.1):
        return _noise.noise_forward(t, w1, w2, layout=layout, eta_kind=eta_kind, a=a)

    def noise_backward(self, g, t, w1, w2, *, layout, eta_kind="sin", a=0.1):
        return _noise.noise_backward(g, t, w1, w2, layout=layout, eta_kind=eta_kind, a=a)

    quantize_forward = staticmethod(quantizer.quantize_forward)

    def quantize_backward(self, g, t, w1, w2, *, alpha, estimator="fda", params=None, layout="weight",
                          eta_kind="sin", a=0.1):
        return quantizer.quantize_backward(g, t, w1, w2, alpha=alpha, surrogate=fast_surrogate(estimator, params),
                                           layout=layout, eta_kind=eta_kind, a=a)

    weight_scale = staticmethod(_weight_scale)
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
    cross_entropy_forward = staticmethod(_loss.cross_entropy_forward)
    cross_entropy_backward = staticmethod(_loss.cross_entropy_backward)
    pack_signs = staticmethod(bitpack.pack_signs)
    xnor_conv2d = staticmethod(bitpack.xnor_conv2d)
    xnor_linear = staticmethod(bitpack.xnor_linear)


BACKEND = NumpyBackend()
