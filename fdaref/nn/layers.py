"""Layers: float ones, binary ones (SEMANTICS 4-5) and containers.

Every layer with parameters takes ``rng`` (a numpy Generator) and ``dtype`` and draws its parameters in
numpy, in a fixed order, at construction; they start on the default op table (the fast ``numpy`` backend,
:func:`fdaref.autodiff.default_ops`) and move with
``Module.to(ops, device)``. So a model built with one seed starts from identical weights on every backend.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import functions as F
from ..autodiff import Tensor
from ..noise import init_noise_params
from ..presets import BinaryOptions
from .module import Module

IntOrPair = int | tuple[int, int]


def _pair(v: IntOrPair) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def parameter(array: np.ndarray) -> Tensor:
    """A trainable tensor on the default op table (move the model with ``.to``)."""
    return Tensor.from_numpy(array, requires_grad=True)


def buffer(array: np.ndarray) -> Tensor:
    """A non-trainable state tensor (running statistics)."""
    return Tensor.from_numpy(array, requires_grad=False)


def kaiming_uniform(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """He-uniform: U(+-sqrt(6 / fan_in)), fan_in = prod(shape[1:]) (variance 2 / fan_in, for ReLU nets)."""
    bound = math.sqrt(6.0 / int(np.prod(shape[1:])))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _bias(rng: np.random.Generator, fan_in: int, n: int, dtype: Any) -> Tensor:
    bound = 1.0 / math.sqrt(fan_in)
    return parameter(rng.uniform(-bound, bound, size=(n,)).astype(dtype))


# ---------------------------------------------------------------------------------------------------
# Float layers.

class Conv2d(Module):
    """Full-precision conv: (N, C_in, H, W) -> (N, C_out, Ho, Wo)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, dilation: IntOrPair = 1, bias: bool = True, *,
                 rng: np.random.Generator, dtype: Any = np.float64):
        super().__init__()
        kh, kw = _pair(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.weight = parameter(kaiming_uniform(rng, (out_channels, in_channels, kh, kw), dtype))
        self.bias = _bias(rng, in_channels * kh * kw, out_channels, dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                         dilation=self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}")


class Linear(Module):
    """Full-precision linear: (B, in) -> (B, out)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 rng: np.random.Generator, dtype: Any = np.float64):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = parameter(kaiming_uniform(rng, (out_features, in_features), dtype))
        self.bias = _bias(rng, in_features, out_features, dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


# ---------------------------------------------------------------------------------------------------
# Binary layers (SEMANTICS 4-5): out = layer(Q_a(x), Q_w(W) * s) + bias.

class _Binary(Module):
    """Shared part of the binary layers: options, the two noise modules and the current schedule.

    Parameters in creation order: weight, bias (optional), then when ``options.noise`` the weight module
    (``w_noise1`` (d_w, m), ``w_noise2`` (m, d_w)) and the activation module (``a_noise1`` (C_in, m_a),
    ``a_noise2``), all drawn at construction (SEMANTICS 3: the optimizer must see them from the start).
    """

    def _init_binary(self, options: BinaryOptions, weight_shape: tuple[int, ...], bias: bool,
                     rng: np.random.Generator, dtype: Any) -> None:
        self.options = options
        self.weight = parameter(kaiming_uniform(rng, weight_shape, dtype))
        fan_in = int(np.prod(weight_shape[1:]))
        self.bias = _bias(rng, fan_in, weight_shape[0], dtype) if bias else None
        self.w_noise1 = self.w_noise2 = self.a_noise1 = self.a_noise2 = None
        if options.noise:
            # SEMANTICS 3 rows: weights -> d = C_in*kh*kw (or in); activations -> d = C_in (per pixel) or in.
            w1, w2 = init_noise_params(fan_in, options.k, rng, dtype)
            self.w_noise1, self.w_noise2 = parameter(w1), parameter(w2)
            a1, a2 = init_noise_params(weight_shape[1], options.k, rng, dtype)
            self.a_noise1, self.a_noise2 = parameter(a1), parameter(a2)
        # Until set_schedule() runs, the schedule's starting values (n_start, alpha0).
        self.params = dict(options.params_at(0, 1))
        if options.uses_n:
            self.params["n"] = options.n_start
        self.alpha = options.alpha0 if options.noise else 0.0

    def _quantize(self, t: Tensor, w1: Optional[Tensor], w2: Optional[Tensor], layout: str) -> Tensor:
        o = self.options
        return F.quantize(t, w1, w2, alpha=self.alpha, zero=o.zero, estimator=o.estimator, params=self.params,
                           layout=layout, eta_kind=o.eta, a=o.a, training=self.training)

    def binary_inputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(Q_a(x), Q_w(W) * s): the +-1 (plus alpha * noise while training) operands of the layer."""
        xq = self._quantize(x, self.a_noise1, self.a_noise2, "activation")
        wq = self._quantize(self.weight, self.w_noise1, self.w_noise2, "weight")
        return xq, wq * F.weight_scale(self.weight, self.options.scale)

    def set_schedule(self, epoch: int, epochs: int) -> None:
        """SEMANTICS 6: n_e for the estimator and alpha_e for Eq. 14 at ``epoch`` of ``epochs``."""
        self.params = dict(self.options.params_at(epoch, epochs))
        self.alpha = self.options.alpha_at(epoch, epochs)


class BinaryConv2d(_Binary):
    """SEMANTICS 5: conv2d(Q_a(x), Q_w(W) * s) + bias, the input padded with ``options.pad_value``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, dilation: IntOrPair = 1, bias: bool = False, *,
                 options: BinaryOptions = BinaryOptions(), rng: np.random.Generator, dtype: Any = np.float64):
        super().__init__()
        kh, kw = _pair(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self._init_binary(options, (out_channels, in_channels, kh, kw), bias, rng, dtype)

    def forward(self, x: Tensor) -> Tensor:
        xq, wq = self.binary_inputs(x)
        return F.conv2d(xq, wq, self.bias, stride=self.stride, padding=self.padding, dilation=self.dilation,
                         pad_value=self.options.pad_value)

    extra_repr = Conv2d.extra_repr


class BinaryLinear(_Binary):
    """SEMANTICS 5: linear(Q_a(x), Q_w(W) * s) + bias; (B, in) -> (B, out)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 options: BinaryOptions = BinaryOptions(), rng: np.random.Generator, dtype: Any = np.float64):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_binary(options, (out_features, in_features), bias, rng, dtype)

    def forward(self, x: Tensor) -> Tensor:
        xq, wq = self.binary_inputs(x)
        return F.linear(xq, wq, self.bias)

    extra_repr = Linear.extra_repr


def binary_layers(model: Module) -> list[_Binary]:
    return [m for m in model.modules() if isinstance(m, _Binary)]


def set_schedule(model: Module, epoch: int, epochs: int) -> dict[str, Any]:
    """Set every binary layer's estimator parameters (n) and alpha for ``epoch`` (SEMANTICS 6).

    Returns the values of the first binary layer ({"n": ..., "alpha": ...}) for logging; {} if none.
    """
    layers = binary_layers(model)
    for m in layers:
        m.set_schedule(epoch, epochs)
    return {"n": layers[0].params.get("n"), "alpha": layers[0].alpha} if layers else {}


# ---------------------------------------------------------------------------------------------------
# Normalisation, activations, pooling, containers.

class BatchNorm(Module):
    """Batch norm over axis 1 of (B, C) or (B, C, H, W); running statistics are buffers."""

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5, *, dtype: Any = np.float64):
        super().__init__()
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.weight = parameter(np.ones(num_features, dtype))
        self.bias = parameter(np.zeros(num_features, dtype))
        self.running_mean = buffer(np.zeros(num_features, dtype))
        self.running_var = buffer(np.ones(num_features, dtype))

    def forward(self, x: Tensor) -> Tensor:
        y, mean, var = F.batch_norm(x, self.weight, self.bias, self.running_mean.data, self.running_var.data,
                                     training=self.training, momentum=self.momentum, eps=self.eps)
        if self.training:
            self.running_mean.data, self.running_var.data = mean, var
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}"


class PReLU(Module):
    """x where x > 0, else slope * x; one slope shared by all channels, init 0.25 (SEMANTICS 8)."""

    def __init__(self, init: float = 0.25, *, dtype: Any = np.float64):
        super().__init__()
        self.weight = parameter(np.full((1,), init, dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x, self.weight)


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class MaxPool2d(Module):
    def __init__(self, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0):
        super().__init__()
        self.kernel = _pair(kernel_size)
        self.stride = self.kernel if stride is None else _pair(stride)
        self.padding = _pair(padding)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}"


class AvgPool2d(MaxPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel, self.stride, self.padding)


class GlobalAvgPool(Module):
    """(N, C, H, W) -> (N, C): the mean over each feature map."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, x.shape[2:], x.shape[2:]).reshape(x.shape[0], x.shape[1])


class Flatten(Module):
    """(N, ...) -> (N, prod(...))."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


class Sequential(Module):
    """Calls its layers in order; they are named "0", "1", ... in the state dict."""

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)
        self._n = len(layers)

    def __getitem__(self, i: int) -> Module:
        return getattr(self, str(range(self._n)[i]))

    def __len__(self) -> int:
        return self._n

    def __iter__(self):
        return (self[i] for i in range(self._n))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self:
            x = layer(x)
        return x
