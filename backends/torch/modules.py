"""Idiomatic PyTorch modules for FDA binary networks (for people who train in plain torch).

- :func:`.quantize.quantize`: the quantizer of Eq. 14 (sign forward; the fused surrogate plus the noise
  module's chain rule backward, SEMANTICS 4): on the CPU two custom ops around the op table's fused kernels
  (eager and under ``torch.compile``), on GPUs pure tensor math (zero graph breaks, no host synchronisation).
- :class:`NoiseAdaptation`: Eq. 13's module e(t) = relu(t W1) W2 + eta(t), parameters (d, m) and (m, d).
- :class:`FDAQuantizer`: a module holding the options, alpha and the estimator parameters (n) for one tensor.
- :class:`FDAConv2d`, :class:`FDALinear`: the binary layers of SEMANTICS 5.
- :class:`FDASchedule`: the SEMANTICS 6 schedules (n_e, alpha_e) as a small per-epoch callback.
- :func:`resnet20`, :func:`vgg_small`: SEMANTICS 8's models, with the same module names as ``fdaref.nn.models``.
- The surrogate registry: :func:`register_surrogate` / :func:`surrogate_names` (shared with the op table).

Every parameter exists from construction on. :func:`reference_state_dict` and
:func:`load_reference_state_dict` convert to and from the state dicts of the fdaref reference models
(host numpy arrays keyed by the reference's names), so weights move both ways.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fdaref.noise import noise_width
from fdaref.presets import BinaryOptions

from .ops import backend as _ops
from .ops import register_surrogate, surrogate_names
from .quantize import params_json, quantize

__all__ = ["NoiseAdaptation", "FDAQuantizer", "FDAConv2d", "FDALinear", "FDASchedule",
           "BasicBlock", "ResNet20", "GlobalAvgPool", "MODELS", "resnet20", "vgg_small", "tiny",
           "register_surrogate", "surrogate_names",
           "fda_layers", "reference_state_dict", "load_reference_state_dict"]


def _uniform(shape: tuple[int, ...], bound: float, generator: Optional[torch.Generator],
             device: Any = None, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """U(-bound, bound) drawn in float64 on the CPU (one stream for every device and dtype), then moved."""
    values = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1).mul_(bound)
    return values.to(device=device, dtype=dtype or torch.get_default_dtype())


class NoiseAdaptation(nn.Module):
    """Eq. 13 on rows of length ``d``: e(t) = relu(t W1) W2 + eta(t), m = max(1, d // k) (SEMANTICS 3).

    Zero-mean init U(+-1/sqrt(fan_in)) (fan_in d for W1, m for W2). ``forward(t, layout)`` is plain torch
    autograd (for standalone use); the quantizer calls the fused op-table kernels with ``w1``/``w2``.
    """

    def __init__(self, d: int, k: int = 64, eta: str = "sin", a: float = 0.1,
                 generator: Optional[torch.Generator] = None, device: Any = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.d, self.m, self.eta, self.a = d, noise_width(d, k), eta, a
        self.w1 = nn.Parameter(_uniform((d, self.m), 1 / math.sqrt(d), generator, device, dtype))
        self.w2 = nn.Parameter(_uniform((self.m, d), 1 / math.sqrt(self.m), generator, device, dtype))

    def forward(self, t: torch.Tensor, layout: str = "weight") -> torch.Tensor:
        if layout == "activation" and t.dim() == 4:
            # pixels as rows without a permute: (m, C) x (B, C, H W) -> (B, m, H W), then back to (B, C, H W)
            b = t.shape[0]
            h = torch.matmul(self.w1.T, t.reshape(b, self.d, -1))
            fc = torch.matmul(self.w2.T, torch.relu(h)).reshape(t.shape)
        else:
            fc = (torch.relu(t.reshape(-1, self.d) @ self.w1) @ self.w2).reshape(t.shape)
        if self.eta == "sin":
            return fc + self.a * torch.sin(t)
        if self.eta == "linear":
            return fc + self.a * t
        return fc

    def extra_repr(self) -> str:
        return f"d={self.d}, m={self.m}, eta={self.eta}, a={self.a}"


class FDAQuantizer(nn.Module):
    """The FDA quantizer of one tensor (weights or activations): sign forward, SEMANTICS 4 backward (:mod:`.quantize`).

    ``alpha`` (0-d, the model's float dtype) and ``n`` (0-d int64, the estimator's n) are buffers: in the
    state dict, on the module's device, and changed in place by :meth:`set_schedule` (SEMANTICS 6), so a
    compiled model sees new values, not new constants. ``params`` mirrors the schedule's estimator
    parameters on the host (for logging; the computation reads the buffers).
    """

    def __init__(self, d: int, layout: str, options: BinaryOptions = BinaryOptions(),
                 generator: Optional[torch.Generator] = None, device: Any = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        if layout not in ("weight", "activation"):
            raise ValueError(f"layout: expected 'weight' or 'activation', got {layout!r}")
        self.layout, self.options = layout, options
        self.noise = (NoiseAdaptation(d, options.k, options.eta, options.a, generator, device, dtype)
                      if options.noise else None)
        params = dict(options.params_at(0, 1))
        params.pop("n", None)
        self._static_params = tuple(sorted(params.items()))   # everything but n: fixed for the run
        self._static_params_json = params_json(self._static_params)
        self._n_max = max(options.n_start, options.n_end) if options.uses_n else 0
        start_alpha = options.alpha0 if options.noise else 0.0
        self.register_buffer("alpha", torch.tensor(start_alpha, device=device,
                                                   dtype=dtype or torch.get_default_dtype()))
        self.register_buffer("n", torch.tensor(options.n_start if options.uses_n else 0, device=device))
        self._set_host(dict(options.params_at(0, 1), **({"n": options.n_start} if options.uses_n else {})),
                       start_alpha)

    def _set_host(self, params: dict[str, Any], alpha: float) -> None:
        self.params, self.alpha_value = params, alpha

    def set_schedule(self, epoch: int, epochs: int) -> None:
        params = dict(self.options.params_at(epoch, epochs))
        alpha = self.options.alpha_at(epoch, epochs)
        self.alpha.fill_(alpha)
        if "n" in params:
            self.n.fill_(int(params["n"]))
        self._set_host(params, alpha)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        o = self.options
        w1, w2 = (self.noise.w1, self.noise.w2) if self.noise is not None else (None, None)
        return quantize(t, w1, w2, self.alpha, self.n, zero=float(o.zero), estimator=o.estimator,
                        params=self._static_params, params_json=self._static_params_json, layout=self.layout,
                        eta=o.eta, a=float(o.a), training=self.training, n_max=self._n_max)

    def extra_repr(self) -> str:
        return (f"layout={self.layout}, estimator={self.options.estimator}, alpha={self.alpha_value:.4g}, "
                f"params={self.params}")


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _FDALayer(nn.Module):
    """Shared part of the binary layers: weight, optional bias, the two quantizers, the weight scale."""

    def _init_fda(self, weight_shape: tuple[int, ...], bias: bool, options: BinaryOptions,
                  generator: Optional[torch.Generator], device: Any, dtype: Optional[torch.dtype]) -> None:
        self.options = options
        fan_in = int(np.prod(weight_shape[1:]))
        self.weight = nn.Parameter(_uniform(weight_shape, math.sqrt(6.0 / fan_in), generator, device, dtype))
        self.bias = (nn.Parameter(_uniform((weight_shape[0],), 1 / math.sqrt(fan_in), generator, device, dtype))
                     if bias else None)
        self.w_quant = FDAQuantizer(fan_in, "weight", options, generator, device, dtype)
        self.a_quant = FDAQuantizer(weight_shape[1], "activation", options, generator, device, dtype)

    def binary_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q_a(x), Q_w(W) * s); no gradient flows through the scale s (SEMANTICS 5)."""
        s = _ops.weight_scale(self.weight.detach(), self.options.scale)
        return self.a_quant(x), self.w_quant(self.weight) * s

    def set_schedule(self, epoch: int, epochs: int) -> None:
        self.w_quant.set_schedule(epoch, epochs)
        self.a_quant.set_schedule(epoch, epochs)


class FDAConv2d(_FDALayer):
    """Binary conv (SEMANTICS 5): conv2d(Q_a(x), Q_w(W) * s) + bias, the input padded with ``options.pad_value``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, bias: bool = False, *,
                 options: BinaryOptions = BinaryOptions(), generator: Optional[torch.Generator] = None,
                 device: Any = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        kh, kw = _pair(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self._init_fda((out_channels, in_channels, kh, kw), bias, options, generator, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, wq = self.binary_inputs(x)
        padding = self.padding
        if self.options.pad_value != 0 and any(padding):
            xq = F.pad(xq, (padding[1], padding[1], padding[0], padding[0]), value=float(self.options.pad_value))
            padding = (0, 0)
        return F.conv2d(xq, wq, self.bias, self.stride, padding, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}")


class FDALinear(_FDALayer):
    """Binary linear (SEMANTICS 5): linear(Q_a(x), Q_w(W) * s) + bias; (B, in) -> (B, out)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 options: BinaryOptions = BinaryOptions(), generator: Optional[torch.Generator] = None,
                 device: Any = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_fda((out_features, in_features), bias, options, generator, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, wq = self.binary_inputs(x)
        return F.linear(xq, wq, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


def fda_layers(model: nn.Module) -> list[_FDALayer]:
    return [m for m in model.modules() if isinstance(m, _FDALayer)]


class FDASchedule:
    """SEMANTICS 6 as a callback: call ``on_epoch_start(epoch)`` before each epoch of ``epochs``; it sets n_e and
    alpha_e in every FDA layer of ``model`` and returns them (``{"n": ..., "alpha": ...}``) for logging."""

    def __init__(self, model: nn.Module, epochs: int) -> None:
        self.model, self.epochs = model, epochs

    def on_epoch_start(self, epoch: int) -> dict[str, Any]:
        layers = fda_layers(self.model)
        for m in layers:
            m.set_schedule(epoch, self.epochs)
        if not layers:
            return {}
        q = layers[0].w_quant
        return {"n": q.params.get("n"), "alpha": q.alpha_value}


# ---------------------------------------------------------------------------------------------------
# Models (SEMANTICS 8), with the module names of fdaref.nn.models.

def _factory(device: Any, dtype: Optional[torch.dtype]) -> dict[str, Any]:
    return {"device": device, "dtype": dtype}


def _conv3x3(binary: bool, options: BinaryOptions, gen: Optional[torch.Generator], c_in: int, c_out: int,
             stride: int = 1, **fk: Any) -> nn.Module:
    if binary:
        return FDAConv2d(c_in, c_out, 3, stride, 1, bias=False, options=options, generator=gen, **fk)
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False, **fk)


def _prelu(**fk: Any) -> nn.PReLU:
    return nn.PReLU(1, init=0.25, **fk)


class BasicBlock(nn.Module):
    """out = BN(PReLU(Conv(x))); out = BN(PReLU(Conv(out))); out + shortcut(x) (option A)."""

    def __init__(self, in_planes: int, planes: int, stride: int, *, binary: bool, options: BinaryOptions,
                 generator: Optional[torch.Generator] = None, device: Any = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        fk = _factory(device, dtype)
        self.conv1 = _conv3x3(binary, options, generator, in_planes, planes, stride, **fk)
        self.act1, self.bn1 = _prelu(**fk), nn.BatchNorm2d(planes, **fk)
        self.conv2 = _conv3x3(binary, options, generator, planes, planes, **fk)
        self.act2, self.bn2 = _prelu(**fk), nn.BatchNorm2d(planes, **fk)
        self.stride, self.in_planes, self.planes = stride, in_planes, planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.in_planes == self.planes:
            return x
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        extra = self.planes - self.in_planes
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.act1(self.conv1(x)))
        out = self.bn2(self.act2(self.conv2(out)))
        return out + self.shortcut(x)


class ResNet20(nn.Module):
    """SEMANTICS 8 ResNet-20: FP stem + BN, 3 x 3 basic blocks at 16/32/64, ReLU, global average pool, FP linear."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, *, binary: bool = True,
                 options: Optional[BinaryOptions] = None, generator: Optional[torch.Generator] = None,
                 device: Any = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        options = options or BinaryOptions()
        fk = _factory(device, dtype)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False, **fk)
        self.bn1 = nn.BatchNorm2d(16, **fk)
        blocks, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1, binary=binary,
                                         options=options, generator=generator, **fk))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes, **fk)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.bn1(self.conv1(x)))
        return self.fc(self.pool(self.relu(out)).flatten(1))


def _generator(seed: Optional[int]) -> Optional[torch.Generator]:
    return torch.Generator().manual_seed(seed) if seed is not None else None


def resnet20(in_channels: int = 3, num_classes: int = 10, options: Optional[BinaryOptions] = None,
             binary: bool = True, seed: Optional[int] = None, device: Any = None,
             dtype: Optional[torch.dtype] = None) -> ResNet20:
    """SEMANTICS 8 ResNet-20 (binary=False: the same architecture in float)."""
    return ResNet20(in_channels, num_classes, binary=binary, options=options, generator=_generator(seed),
                    device=device, dtype=dtype)


def vgg_small(in_channels: int = 3, num_classes: int = 10, options: Optional[BinaryOptions] = None,
              binary: bool = True, image_size: int = 32, seed: Optional[int] = None, device: Any = None,
              dtype: Optional[torch.dtype] = None) -> nn.Sequential:
    """SEMANTICS 8 VGG-small: 128, 128, M, 256, 256, M, 512, 512, M, FC; conv [pool] BN PReLU per stage, first conv
    and FC full precision (the layer order and indices of ``fdaref.nn.models.vgg_small``)."""
    options = options or BinaryOptions()
    gen, fk = _generator(seed), _factory(device, dtype)
    layers: list[nn.Module] = []
    c_in = in_channels
    for i, (c, pool) in enumerate([(128, False), (128, True), (256, False), (256, True), (512, False), (512, True)]):
        layers.append(nn.Conv2d(c_in, c, 3, 1, 1, bias=False, **fk) if i == 0
                      else _conv3x3(binary, options, gen, c_in, c, **fk))
        if pool:
            layers.append(nn.MaxPool2d(2))
        layers += [nn.BatchNorm2d(c, **fk), _prelu(**fk)]
        c_in = c
    side = image_size // 8
    layers += [nn.Flatten(), nn.Linear(512 * side * side, num_classes, **fk)]
    return nn.Sequential(*layers)


class GlobalAvgPool(nn.Module):
    """(N, C, H, W) -> (N, C): the mean of each feature map (``fdaref.nn.GlobalAvgPool``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def tiny(in_channels: int = 1, num_classes: int = 10, options: Optional[BinaryOptions] = None,
         binary: bool = True, width: int = 16, seed: Optional[int] = None, device: Any = None,
         dtype: Optional[torch.dtype] = None) -> nn.Sequential:
    """``fdaref.nn.models.tiny`` (the small test convnet) with the same layer indices."""
    options = options or BinaryOptions()
    gen, fk, w = _generator(seed), _factory(device, dtype), width
    return nn.Sequential(
        nn.Conv2d(in_channels, w, 3, 1, 1, bias=False, **fk), nn.BatchNorm2d(w, **fk), _prelu(**fk),
        nn.MaxPool2d(2),
        _conv3x3(binary, options, gen, w, 2 * w, **fk), _prelu(**fk), nn.BatchNorm2d(2 * w, **fk), nn.MaxPool2d(2),
        _conv3x3(binary, options, gen, 2 * w, 2 * w, **fk), _prelu(**fk), nn.BatchNorm2d(2 * w, **fk),
        GlobalAvgPool(), nn.Linear(2 * w, num_classes, **fk))


# The builders by the names of fdaref.train's --model.
MODELS = {"resnet20": resnet20, "vgg_small": vgg_small, "tiny": tiny}


# ---------------------------------------------------------------------------------------------------
# State dicts to and from the fdaref reference models.

_TO_REF = [(re.compile(r"(^|\.)w_quant\.noise\.w([12])$"), r"\1w_noise\2"),
           (re.compile(r"(^|\.)a_quant\.noise\.w([12])$"), r"\1a_noise\2")]
_TO_TORCH = [(re.compile(r"(^|\.)w_noise([12])$"), r"\1w_quant.noise.w\2"),
             (re.compile(r"(^|\.)a_noise([12])$"), r"\1a_quant.noise.w\2")]


def _rename(key: str, rules: Iterable[tuple[re.Pattern, str]]) -> str:
    for pattern, repl in rules:
        new, count = pattern.subn(repl, key)
        if count:
            return new
    return key


_TORCH_ONLY = re.compile(r"(^|\.)(num_batches_tracked|[wa]_quant\.(alpha|n))$")


def _torch_only(key: str) -> bool:
    return _TORCH_ONLY.search(key) is not None


def torch_name(reference_key: str) -> str:
    """The torch modules' name of the reference model's parameter or buffer ``reference_key``."""
    return _rename(reference_key, _TO_TORCH)


def reference_state_dict(model: nn.Module) -> "OrderedDict[str, np.ndarray]":
    """``model``'s state as host numpy arrays under the reference's names (``fdaref.nn`` models load it).

    The noise modules' ``w_quant.noise.w1`` become ``w_noise1`` (and so on); batch norm's
    ``num_batches_tracked`` and the quantizers' schedule buffers ``alpha`` / ``n`` (torch-side state with
    no reference counterpart: the reference derives them from the epoch) are left out.
    """
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for key, value in model.state_dict().items():
        if _torch_only(key):
            continue
        out[_rename(key, _TO_REF)] = value.detach().cpu().numpy().copy()
    return out


def load_reference_state_dict(model: nn.Module, state: Mapping[str, np.ndarray], strict: bool = True) -> None:
    """Load a reference model's state dict (``fdaref.nn`` ``Module.state_dict()``) into ``model``.

    Values are cast to each parameter's dtype and device; missing or unexpected keys raise (when ``strict``).
    """
    own = model.state_dict()
    converted = {}
    for key, value in state.items():
        name = _rename(key, _TO_TORCH)
        ref = own.get(name)
        if ref is None:
            converted[name] = torch.as_tensor(np.asarray(value))
        else:
            converted[name] = torch.as_tensor(np.asarray(value)).to(dtype=ref.dtype, device=ref.device)
    for key, value in own.items():  # torch-only bookkeeping keeps its current value
        if _torch_only(key) and key not in converted:
            converted[key] = value
    missing = [k for k in own if k not in converted]
    unexpected = [k for k in converted if k not in own]
    if strict and (missing or unexpected):
        raise KeyError(f"load_reference_state_dict: missing keys {missing}, unexpected keys {unexpected}")
    model.load_state_dict(converted, strict=strict)
