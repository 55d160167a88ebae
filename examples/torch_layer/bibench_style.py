"""A BiBench-style FDA binary conv layer in plain PyTorch, written for this example.

It follows the conventions BiBench's FDA layer uses (see paper-notes.md, section 9), not fdaref's defaults:
- sign is torch.sign, so sign(0) = 0 (and sign(NaN) = 0);
- backward: (4 omega / pi) * sum_{i=0}^{n} cos((2i + 1) omega x) with omega = 0.1 (n + 1 cosines), set to 0
  where |x| > 1;
- noise modules: two bias-free nn.Linear layers and a 0.1 sin shortcut, one row per output filter for the
  weight and one per pixel for the activation; both are added with weight alpha in the forward pass, in
  training AND in eval (BiBench has no eval branch);
- the weight is scaled by its detached mean |W| per output channel, which multiplies the noise term too.
Three deliberate departures from BiBench: the hidden width is max(1, d // 64) (BiBench's d // 64 is a
zero-width layer for d < 64), the activation module is built in __init__ (BiBench builds it lazily in
the first forward, after the optimizer was made, so it is never trained), and the modules are skipped at
alpha = 0, where fdaref wants sign(t) exactly (BiBench's 0 * e(t) is NaN for an input of +-inf).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

OMEGA = 0.1


class FDASign(torch.autograd.Function):
    """sign forward; the truncated Fourier series' derivative, clipped to |x| <= 1, backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, n: int) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.n = n
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        terms = sum(torch.cos((2 * i + 1) * OMEGA * x) for i in range(ctx.n + 1))
        g = grad * (4 * OMEGA / math.pi) * terms
        return g.masked_fill((x > 1) | (x < -1), 0.0), None


class Noise(nn.Module):
    """e(t) = relu(t W1) W2 + 0.1 sin(t) on rows of length d."""

    def __init__(self, d: int, k: int = 64) -> None:
        super().__init__()
        m = max(1, d // k)
        self.fc1 = nn.Linear(d, m, bias=False)
        self.fc2 = nn.Linear(m, d, bias=False)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(rows))) + 0.1 * torch.sin(rows)


class FDAConv2d(nn.Conv2d):
    """conv2d(Q(x), Q(W) * s) + bias with Q(t) = sign(t) + alpha * e(t)."""

    sign = FDASign

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.noise_w = Noise(in_channels * self.kernel_size[0] * self.kernel_size[1])
        self.noise_a = Noise(in_channels)
        self.n = 9
        self.register_buffer("alpha", torch.tensor(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        bw, ba = self.sign.apply(w, self.n), self.sign.apply(x, self.n)
        if self.alpha != 0:
            bw = bw + self.alpha * self.noise_w(w.reshape(w.shape[0], -1)).reshape(w.shape)
            ba = ba + self.alpha * self.noise_a(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        scale = w.abs().mean(dim=(1, 2, 3), keepdim=True).detach()
        return F.conv2d(ba, bw * scale, self.bias, self.stride, self.padding)


class WrongFDASign(FDASign):
    """The classic porting bug: n cosine terms instead of n + 1 (range(n))."""

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        terms = sum(torch.cos((2 * i + 1) * OMEGA * x) for i in range(ctx.n))
        g = grad * (4 * OMEGA / math.pi) * terms
        return g.masked_fill((x > 1) | (x < -1), 0.0), None


class WrongFDAConv2d(FDAConv2d):
    """FDAConv2d with the n-terms bug in its sign's backward."""

    sign = WrongFDASign
