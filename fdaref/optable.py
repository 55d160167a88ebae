"""The op table: the one contract between the fdaref engine, the backends and the conformance suite.

A backend is any object with the attributes below. Each op is a pure function on the backend's arrays
(numpy.ndarray, torch.Tensor, cupy.ndarray, ...): it never mutates its inputs and never keeps state.
The engine (:mod:`fdaref.autodiff`) calls only these ops and Python's array operators, so one training loop
serves every backend. An op a backend does not have is simply absent (``getattr(backend, op, None) is None``);
the conformance suite reports it as "not provided by <backend>". A backend may also define the optional
``supports(op, option, value) -> Optional[str]`` to decline single option values (None: supported, else
the reason); the option names are listed in ``fdaref.conformance.capabilities``.

Arrays a backend receives and returns must support ``+ - * / @``, unary ``-``, ``**`` with a float,
``.shape``, ``.dtype``, ``.reshape(shape)``, basic slicing (``x[:, :, ::2, ::2]``) and slice assignment.

Conventions shared by every op:
- Geometry arguments ``stride``, ``padding``, ``dilation``, ``kernel`` are pairs of ints (height, width).
- Images are NCHW, conv weights (C_out, C_in, kh, kw), linear weights (out, in), linear inputs (B, in).
- Backward ops take the upstream gradient ``g`` first and return gradients for the array inputs in order;
  an optional input that was None (a bias, a noise module) gets None.
- ``params`` of a surrogate is a mapping of its parameters (``n``, ``omega``, ``clip`` for ``fda``).
- Dtypes are never changed by an op except where stated (bit packing, XNOR counts).

The reference implementation is :data:`fdaref.reference.REFERENCE` (pure NumPy, a literal transcription of
docs/SEMANTICS.md computing in float64 and returning the dtype it is given; SEMANTICS 11 restates these
conventions). ``OP_NAMES`` below lists every op by name; :class:`OpTable` documents each one.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

Array = Any  # the backend's array type
Pair = tuple[int, int]


@runtime_checkable
class OpTable(Protocol):
    # -- identity and capabilities --------------------------------------------------------------------
    name: str                     # e.g. "numpy", "torch"
    version: str                  # the backend's own version string
    devices: tuple[str, ...]      # e.g. ("cpu",) or ("cpu", "cuda")
    dtypes: tuple[str, ...]       # e.g. ("float32", "float64")

    def refuses(self, op: str, device: str, dtype: str) -> Optional[str]:
        """None if the backend runs ``op`` on ``device`` in ``dtype``, else the reason why not."""

    # -- moving arrays --------------------------------------------------------------------------------
    def from_numpy(self, a: np.ndarray, device: str = "cpu") -> Array:
        """A backend array with the values and dtype of ``a`` on ``device``."""

    def to_numpy(self, x: Array) -> np.ndarray:
        """A host numpy copy of ``x`` (same dtype; uint64 for packed bits)."""

    def zeros(self, shape: Sequence[int], like: Array) -> Array:
        """Zeros of ``shape`` with the dtype and device of ``like``."""

    def sum_to_shape(self, x: Array, shape: Sequence[int]) -> Array:
        """Sum ``x`` over the axes numpy broadcasting added or stretched to reach ``x.shape`` from ``shape``."""

    # -- SEMANTICS 1-4: sign, surrogates, noise module, quantizer ------------------------------------------
    def sign(self, x: Array, zero: float = -1.0) -> Array:
        """SEMANTICS 1 / Eq. 1: +1 for x > 0, -1 for x < 0, ``zero`` (-1, 0 or +1) at 0, NaN stays NaN."""

    def surrogate(self, x: Array, estimator: str, params: Mapping[str, Any]) -> Array:
        """SEMANTICS 2: d sign / dx at ``x`` under the estimator ``estimator`` (e.g. "fda", "ste")."""

    def noise_forward(self, t: Array, w1: Array, w2: Array, *, layout: str, eta_kind: str,
                      a: float) -> Array:
        """Eq. 13 on the rows of ``t`` (SEMANTICS 3 layouts "weight" / "activation"); shape of ``t``."""

    def noise_backward(self, g: Array, t: Array, w1: Array, w2: Array, *, layout: str, eta_kind: str,
                       a: float) -> tuple[Array, Array, Array]:
        """(dt, dw1, dw2): the vector-Jacobian product of Eq. 13 with relu'(0) = 0."""

    def quantize_forward(self, t: Array, w1: Optional[Array], w2: Optional[Array], *, alpha: float,
                         zero: float, layout: str, eta_kind: str, a: float, training: bool) -> Array:
        """Eq. 14: sign(t) + alpha * e(t) while training with a module and alpha != 0; else sign(t)."""

    def quantize_backward(self, g: Array, t: Array, w1: Optional[Array], w2: Optional[Array], *,
                          alpha: float, estimator: str, params: Mapping[str, Any], layout: str,
                          eta_kind: str, a: float) -> tuple[Array, Optional[Array], Optional[Array]]:
        """SEMANTICS 4: (g * est'(t) + alpha (de/dt)^T g, alpha dW1, alpha dW2); None for an absent module."""

    # -- SEMANTICS 5: binary and float layers ----------------------------------------------------------------
    def weight_scale(self, w: Array, mode: str) -> Array:
        """Mean |W| per output channel ("channel", shape (C_out, 1, ...)), per tensor ("layer", shape
        (1, ...)) or ones ("none"). Treated as a constant by the engine (no gradient)."""

    def conv2d_forward(self, x: Array, w: Array, b: Optional[Array], *, stride: Pair, padding: Pair,
                       dilation: Pair, pad_value: float) -> Array:
        """Cross-correlation, groups = 1, ``x`` padded with the constant ``pad_value``; (N, C_out, Ho, Wo)."""

    def conv2d_backward(self, g: Array, x: Array, w: Array, *, has_bias: bool, stride: Pair, padding: Pair,
                        dilation: Pair, pad_value: float) -> tuple[Array, Array, Optional[Array]]:
        """(dx, dw, db) of :meth:`conv2d_forward`; the padding is a constant, so no gradient flows into it."""

    def linear_forward(self, x: Array, w: Array, b: Optional[Array]) -> Array:
        """x @ w.T + b; (B, out)."""

    def linear_backward(self, g: Array, x: Array, w: Array, *, has_bias: bool
                        ) -> tuple[Array, Array, Optional[Array]]:
        """(dx, dw, db) of :meth:`linear_forward`."""

    # -- float layers ---------------------------------------------------------------------------------
    def batch_norm_forward(self, x: Array, gamma: Array, beta: Array, running_mean: Array,
                           running_var: Array, *, training: bool, momentum: float, eps: float
                           ) -> tuple[Array, Array, Array, Array, Array]:
        """Batch norm over axis 1 of (B, C) or (B, C, H, W). Returns (y, mean, invstd, new_running_mean,
        new_running_var). Training: batch statistics (biased variance for y, unbiased for the running
        update new = (1 - momentum) old + momentum batch). Eval: the running statistics, returned as is."""

    def batch_norm_backward(self, g: Array, x: Array, gamma: Array, mean: Array, invstd: Array, *,
                            training: bool) -> tuple[Array, Array, Array]:
        """(dx, dgamma, dbeta); in eval mode mean / invstd are constants."""

    def relu_forward(self, x: Array) -> Array:
        """max(x, 0)."""

    def relu_backward(self, g: Array, x: Array) -> Array:
        """g where x > 0, else 0."""

    def prelu_forward(self, x: Array, slope: Array) -> Array:
        """x where x > 0, else slope * x; ``slope`` has shape (1,) or (C,) along axis 1."""

    def prelu_backward(self, g: Array, x: Array, slope: Array) -> tuple[Array, Array]:
        """(dx, dslope); dslope has the shape of ``slope``."""

    def max_pool2d_forward(self, x: Array, *, kernel: Pair, stride: Pair, padding: Pair) -> Array:
        """Max over windows; padding counts as -inf."""

    def max_pool2d_backward(self, g: Array, x: Array, *, kernel: Pair, stride: Pair, padding: Pair) -> Array:
        """Each window's gradient goes to its FIRST maximal element in row-major window order (ties)."""

    def avg_pool2d_forward(self, x: Array, *, kernel: Pair, stride: Pair, padding: Pair) -> Array:
        """Mean over windows; zero padding counts in the divisor (kh * kw)."""

    def avg_pool2d_backward(self, g: Array, x: Array, *, kernel: Pair, stride: Pair, padding: Pair) -> Array:
        """dx of :meth:`avg_pool2d_forward`."""

    def cross_entropy_forward(self, logits: Array, labels: Array, *, label_smoothing: float) -> Array:
        """Mean over the batch of -sum_c q_c log softmax(logits)_c, q = (1 - s) onehot + s / C; 0-d array.
        ``labels`` are int64 class indices of shape (B,)."""

    def cross_entropy_backward(self, g: Array, logits: Array, labels: Array, *, label_smoothing: float
                               ) -> Array:
        """d loss / d logits times the 0-d upstream gradient ``g``: g (softmax - q) / B."""

    # -- SEMANTICS 9: bit packing and XNOR-popcount --------------------------------------------------------
    def pack_signs(self, x: Array, *, axis: int, zero: float) -> Array:
        """uint64 words; the packed axis becomes the LAST axis, of ceil(C / 64) words. Bit j of word w
        holds element 64 w + j; a set bit means sign -1 (``zero`` must be -1 or +1); unused bits are 0."""

    def xnor_conv2d(self, x_packed: Array, w_packed: Array, *, channels: int, stride: Pair, padding: Pair,
                    dilation: Pair, pad_value: float) -> Array:
        """The float conv2d of the +-1 tensors, exactly, as int32 (N, C_out, Ho, Wo). ``x_packed``
        (N, H, W, words) packs the activations' C axis, ``w_packed`` (C_out, kh, kw, words) the weights'
        C_in axis; ``channels`` is the unpacked C; padding holds ``pad_value`` (0, -1 or +1)."""

    def xnor_linear(self, x_packed: Array, w_packed: Array, *, features: int) -> Array:
        """x @ w.T of the +-1 matrices, exactly, as int32 (B, out); both packed along ``features``."""


# Every op of the table by name, in the order above; the conformance suite iterates over this.
OP_NAMES: tuple[str, ...] = (
    "sign", "surrogate", "noise_forward", "noise_backward", "quantize_forward", "quantize_backward",
    "weight_scale", "conv2d_forward", "conv2d_backward", "linear_forward", "linear_backward",
    "batch_norm_forward", "batch_norm_backward", "relu_forward", "relu_backward",
    "prelu_forward", "prelu_backward", "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward", "cross_entropy_forward", "cross_entropy_backward",
    "pack_signs", "xnor_conv2d", "xnor_linear",
)
PLUMBING: tuple[str, ...] = ("from_numpy", "to_numpy", "zeros", "sum_to_shape")
# What the conformance suite checks op by op: the table, and the plumbing op that computes values (the
# engine's only unbroadcast, so a wrong one breaks every gradient of a broadcast operand). from_numpy and
# to_numpy carry every case, and zeros every layer check.
CHECKED_OPS: tuple[str, ...] = OP_NAMES + ("sum_to_shape",)


def missing_ops(backend: Any) -> list[str]:
    """Names of the ops (and plumbing) that ``backend`` does not provide."""
    return [name for name in PLUMBING + OP_NAMES if not callable(getattr(backend, name, None))]
