"""Models (SEMANTICS 8): resnet20 and vgg_small as in the paper, and a tiny convnet for tests.

Each builder takes ``seed`` and draws every parameter from ONE ``np.random.default_rng(seed)`` in
construction order, so a seed names one set of initial weights on every backend and dtype.
``binary=False`` builds the same architecture with float Conv2d / Linear in place of the binary layers
(a full-precision baseline; the first and last layers are full precision in both, Sec. 3).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..autodiff import Tensor

from ..functions import pad_channels
from ..presets import BinaryOptions
from .layers import (BatchNorm, BinaryConv2d, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool2d, PReLU, ReLU,
                     Sequential)
from .module import Module


def _conv3x3(binary: bool, options: BinaryOptions, rng: np.random.Generator, dtype: Any, c_in: int, c_out: int,
             stride: int = 1) -> Module:
    """3x3, padding 1, no bias (a batch norm follows): binary (SEMANTICS 5) or float."""
    if binary:
        return BinaryConv2d(c_in, c_out, 3, stride, 1, bias=False, options=options, rng=rng, dtype=dtype)
    return Conv2d(c_in, c_out, 3, stride, 1, bias=False, rng=rng, dtype=dtype)


class BasicBlock(Module):
    """SEMANTICS 8: out = BN(PReLU(Conv(x))); out = BN(PReLU(Conv(out))); out + shortcut(x).

    Shortcut option A (no parameters): identity, or when the block downsamples, x[:, :, ::2, ::2] with
    (planes - in_planes) zero channels split evenly before and after the existing ones.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, *, binary: bool, options: BinaryOptions,
                 rng: np.random.Generator, dtype: Any):
        super().__init__()
        self.conv1 = _conv3x3(binary, options, rng, dtype, in_planes, planes, stride)
        self.act1 = PReLU(dtype=dtype)
        self.bn1 = BatchNorm(planes, dtype=dtype)
        self.conv2 = _conv3x3(binary, options, rng, dtype, planes, planes)
        self.act2 = PReLU(dtype=dtype)
        self.bn2 = BatchNorm(planes, dtype=dtype)
        self.stride, self.in_planes, self.planes = stride, in_planes, planes

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride == 1 and self.in_planes == self.planes:
            return x
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        extra = self.planes - self.in_planes
        return pad_channels(x, extra // 2, extra - extra // 2)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.act1(self.conv1(x)))
        out = self.bn2(self.act2(self.conv2(out)))
        return out + self.shortcut(x)


class ResNet20(Module):
    """(N, C_in, H, W) -> (N, num_classes) logits; SEMANTICS 8 (the official release's structure)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, *, binary: bool = True,
                 options: Optional[BinaryOptions] = None, seed: int = 0, dtype: Any = np.float64):
        super().__init__()
        options = options or BinaryOptions()
        rng = np.random.default_rng(seed)
        self.conv1 = Conv2d(in_channels, 16, 3, 1, 1, bias=False, rng=rng, dtype=dtype)  # FP stem
        self.bn1 = BatchNorm(16, dtype=dtype)
        blocks, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1, binary=binary,
                                         options=options, rng=rng, dtype=dtype))
                in_planes = planes
        self.layers = Sequential(*blocks)
        self.relu = ReLU()
        self.pool = GlobalAvgPool()
        self.fc = Linear(64, num_classes, rng=rng, dtype=dtype)  # FP head

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(self.bn1(self.conv1(x)))
        return self.fc(self.pool(self.relu(out)))


def resnet20(in_channels: int = 3, num_classes: int = 10, options: Optional[BinaryOptions] = None,
             seed: int = 0, dtype: Any = np.float64, binary: bool = True) -> ResNet20:
    """ResNet-20 for 32x32 inputs (any H, W divisible by 4 works)."""
    return ResNet20(in_channels, num_classes, binary=binary, options=options, seed=seed, dtype=dtype)


def vgg_small(in_channels: int = 3, num_classes: int = 10, options: Optional[BinaryOptions] = None,
              seed: int = 0, dtype: Any = np.float64, binary: bool = True, image_size: int = 32) -> Sequential:
    """VGG-small (SEMANTICS 8): 128, 128, M, 256, 256, M, 512, 512, M, FC.

    Each conv is 3x3 / padding 1 followed by [max pool], BN and PReLU (the pool before BN, as in the
    binary VGG-small of LQ-Nets / IR-Net). The first conv and the FC are full precision. PReLU rather than
    ReLU keeps negative values, so the next layer's sign still sees both signs under every zero convention.
    """
    options = options or BinaryOptions()
    rng = np.random.default_rng(seed)
    layers: list[Module] = []
    c_in = in_channels
    for i, (c, pool) in enumerate([(128, False), (128, True), (256, False), (256, True), (512, False), (512, True)]):
        if i == 0:
            layers.append(Conv2d(c_in, c, 3, 1, 1, bias=False, rng=rng, dtype=dtype))
        else:
            layers.append(_conv3x3(binary, options, rng, dtype, c_in, c))
        if pool:
            layers.append(MaxPool2d(2))
        layers += [BatchNorm(c, dtype=dtype), PReLU(dtype=dtype)]
        c_in = c
    side = image_size // 8
    layers += [Flatten(), Linear(512 * side * side, num_classes, rng=rng, dtype=dtype)]
    return Sequential(*layers)


def tiny(in_channels: int = 1, num_classes: int = 10, options: Optional[BinaryOptions] = None, seed: int = 0,
         dtype: Any = np.float64, binary: bool = True, width: int = 16) -> Sequential:
    """A small convnet for tests (28x28 Fashion-MNIST sized inputs; any H, W >= 4 works):
    FP conv(C_in -> w) BN PReLU, pool 2, BinConv(w -> 2w) PReLU BN, pool 2, BinConv(2w -> 2w) PReLU BN,
    global average pool, FP linear."""
    options = options or BinaryOptions()
    rng = np.random.default_rng(seed)
    w = width
    return Sequential(
        Conv2d(in_channels, w, 3, 1, 1, bias=False, rng=rng, dtype=dtype), BatchNorm(w, dtype=dtype),
        PReLU(dtype=dtype), MaxPool2d(2),
        _conv3x3(binary, options, rng, dtype, w, 2 * w), PReLU(dtype=dtype), BatchNorm(2 * w, dtype=dtype),
        MaxPool2d(2),
        _conv3x3(binary, options, rng, dtype, 2 * w, 2 * w), PReLU(dtype=dtype), BatchNorm(2 * w, dtype=dtype),
        GlobalAvgPool(),
        Linear(2 * w, num_classes, rng=rng, dtype=dtype),
    )
