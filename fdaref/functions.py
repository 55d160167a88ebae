"""Differentiable layers of the engine: thin adapters from op-table forward/backward pairs to
:class:`fdaref.autodiff.Function` (conv, linear, batch norm, activations, pooling, loss, the FDA quantizer).

Each adapter saves what the op's backward needs and calls only the op table, so it runs on every backend.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from .autodiff import Array, Function, Tensor

class PadChannels(Function):
    """(N, C, H, W) -> (N, before + C + after, H, W) with zero channels (ResNet option-A shortcut)."""

    @staticmethod
    def forward(ctx, x, *, before, after):
        n, c, h, w = x.shape
        ctx.span = slice(before, before + c)
        out = ctx.ops.zeros((n, before + c + after, h, w), like=x)
        out[:, ctx.span] = x
        return out

    @staticmethod
    def backward(ctx, g): return g[:, ctx.span]


def pad_channels(x: Tensor, before: int, after: int) -> Tensor:
    """Zero-pad axis 1 of an NCHW tensor by ``before`` / ``after`` channels."""
    return PadChannels.apply(x, before=before, after=after)


# ---------------------------------------------------------------------------------------------------
# Layers: thin adapters from op-table forward/backward pairs to Functions.

class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, w, b, *, stride, padding, dilation, pad_value):
        ctx.save_for_backward(x, w)
        ctx.kw = dict(has_bias=b is not None, stride=stride, padding=padding, dilation=dilation,
                      pad_value=pad_value)
        return ctx.ops.conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation,
                                      pad_value=pad_value)

    @staticmethod
    def backward(ctx, g): return ctx.ops.conv2d_backward(g, *ctx.saved, **ctx.kw)


def conv2d(x: Tensor, w: Tensor, b: Optional[Tensor] = None, *, stride=(1, 1), padding=(0, 0),
           dilation=(1, 1), pad_value: float = 0.0) -> Tensor:
    """x (N, C_in, H, W), w (C_out, C_in, kh, kw), b (C_out,) -> (N, C_out, Ho, Wo); SEMANTICS 5 pad_value."""
    return Conv2d.apply(x, w, b, stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation),
                        pad_value=pad_value)


class Linear(Function):
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return ctx.ops.linear_forward(x, w, b)

    @staticmethod
    def backward(ctx, g): return ctx.ops.linear_backward(g, *ctx.saved, has_bias=ctx.has_bias)


def linear(x: Tensor, w: Tensor, b: Optional[Tensor] = None) -> Tensor:
    """x (B, in), w (out, in), b (out,) -> x w^T + b, (B, out)."""
    return Linear.apply(x, w, b)


class BatchNorm(Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, *, running_mean, running_var, training, momentum, eps, stats):
        y, mean, invstd, stats["mean"], stats["var"] = ctx.ops.batch_norm_forward(
            x, gamma, beta, running_mean, running_var, training=training, momentum=momentum, eps=eps)
        ctx.save_for_backward(x, gamma, mean, invstd)
        ctx.training = training
        return y

    @staticmethod
    def backward(ctx, g): return ctx.ops.batch_norm_backward(g, *ctx.saved, training=ctx.training)


def batch_norm(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Array, running_var: Array, *,
               training: bool, momentum: float = 0.1, eps: float = 1e-5) -> tuple[Tensor, Array, Array]:
    """Batch norm over axis 1; returns (y, new_running_mean, new_running_var) (the stats are arrays)."""
    stats: dict[str, Array] = {}
    y = BatchNorm.apply(x, gamma, beta, running_mean=running_mean, running_var=running_var,
                        training=training, momentum=momentum, eps=eps, stats=stats)
    return y, stats["mean"], stats["var"]


class OpPair(Function):
    """An op-table pair ``<op>_forward(*arrays, **kw)`` / ``<op>_backward(g, *arrays, **kw)``."""
    op = ""

    @classmethod
    def forward(cls, ctx, *arrays, **kw):
        ctx.save_for_backward(*arrays)
        ctx.kw = kw
        return getattr(ctx.ops, cls.op + "_forward")(*arrays, **kw)

    @classmethod
    def backward(cls, ctx, g): return getattr(ctx.ops, cls.op + "_backward")(g, *ctx.saved, **ctx.kw)


class ReLU(OpPair): op = "relu"
class PReLU(OpPair): op = "prelu"                   # slope (1,) or (C,): (dx, dslope)
class MaxPool2d(OpPair): op = "max_pool2d"
class AvgPool2d(OpPair): op = "avg_pool2d"
class CrossEntropy(OpPair): op = "cross_entropy"    # one gradient: the labels slot stays None


def relu(x: Tensor) -> Tensor:
    return ReLU.apply(x)


def prelu(x: Tensor, slope: Tensor) -> Tensor:
    return PReLU.apply(x, slope)


def max_pool2d(x: Tensor, kernel, stride=None, padding=(0, 0)) -> Tensor:
    """(N, C, H, W) -> (N, C, Ho, Wo); ``stride`` defaults to ``kernel``."""
    return MaxPool2d.apply(x, kernel=tuple(kernel), stride=tuple(kernel if stride is None else stride),
                           padding=tuple(padding))


def avg_pool2d(x: Tensor, kernel, stride=None, padding=(0, 0)) -> Tensor:
    return AvgPool2d.apply(x, kernel=tuple(kernel), stride=tuple(kernel if stride is None else stride),
                           padding=tuple(padding))


def cross_entropy(logits: Tensor, labels: Any, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross entropy (0-d) of logits (B, C) against int64 labels (B,): a numpy array (moved to the
    logits' backend), a backend array or a Tensor."""
    if isinstance(labels, Tensor):
        labels = labels.data
    elif isinstance(labels, np.ndarray):
        labels = logits.ops.from_numpy(labels.astype(np.int64, copy=False), logits.device)
    return CrossEntropy.apply(logits, labels, label_smoothing=label_smoothing)


class Quantize(Function):
    """Eq. 14 / SEMANTICS 4: z = sign(t) + alpha e(t); backward via the surrogate and the noise module."""

    @staticmethod
    def forward(ctx, t, w1, w2, *, alpha, zero, estimator, params, layout, eta_kind, a, training):
        ctx.save_for_backward(t, w1, w2)
        # in eval z = sign(t): the module is not evaluated, so its backward is that of alpha == 0 (SEMANTICS 4)
        ctx.kw = dict(alpha=alpha if training else 0.0, estimator=estimator, params=params, layout=layout,
                      eta_kind=eta_kind, a=a)
        return ctx.ops.quantize_forward(t, w1, w2, alpha=alpha, zero=zero, layout=layout, eta_kind=eta_kind,
                                        a=a, training=training)

    @staticmethod
    def backward(ctx, g): return ctx.ops.quantize_backward(g, *ctx.saved, **ctx.kw)


def quantize(t: Tensor, w1: Optional[Tensor], w2: Optional[Tensor], *, alpha: float, zero: float,
             estimator: str, params: Mapping[str, Any], layout: str, eta_kind: str = "sin", a: float = 0.1,
             training: bool = True) -> Tensor:
    """The FDA quantizer on ``t`` (SEMANTICS 4); ``w1``/``w2`` the noise module (d, m) / (m, d) or None."""
    return Quantize.apply(t, w1, w2, alpha=alpha, zero=zero, estimator=estimator, params=params,
                          layout=layout, eta_kind=eta_kind, a=a, training=training)


def constant(array: Array, like: Tensor) -> Tensor:
    """Wrap a backend array as a graph constant on ``like``'s backend (e.g. the weight scale s, SEMANTICS 5)."""
    return Tensor(array, like.ops, False, like.device)


def weight_scale(w: Tensor, mode: str) -> Tensor:
    """SEMANTICS 5: s from the current weights as a constant: no gradient flows through s."""
    return constant(w.ops.weight_scale(w.data, mode), w)


__all__ = ["conv2d", "linear", "batch_norm", "relu", "prelu", "max_pool2d", "avg_pool2d", "cross_entropy",
           "quantize", "pad_channels", "weight_scale", "constant"]
