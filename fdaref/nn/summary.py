"""Model summary: parameters by precision, MACs by precision, float32 memory and 1-bit packed size.

Precision classes: ``binary`` (the weights of BinaryConv2d / BinaryLinear, 1 bit each after packing),
``noise`` (the noise adaptation modules of SEMANTICS 3: used in training only, dropped at inference, where
z = sign(t)), ``float`` (everything else: first / last layer, biases, batch norm, PReLU).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..autodiff import Tensor, no_grad
from . import module as module_mod
from .layers import Conv2d, Linear, _Binary, BinaryConv2d, BinaryLinear
from .module import Module

NOISE_NAMES = ("w_noise1", "w_noise2", "a_noise1", "a_noise2")


@dataclass
class Summary:
    params: dict[str, int]                        # binary / float / noise counts
    macs: dict[str, int]                          # binary / float multiply-accumulates per sample
    scale_floats: int                             # one float per output channel (or layer) of binary layers
    rows: list[tuple[str, str, tuple, tuple, int, int]] = field(default_factory=list)  # per compute layer

    @property
    def float32_bytes(self) -> int:
        """Training-time size: every parameter (noise modules included) as float32."""
        return 4 * sum(self.params.values())

    @property
    def packed_bytes(self) -> int:
        """Inference size: binary weights at 1 bit (rounded up to bytes), float parameters and the weight
        scales as float32; the noise modules are not needed at inference (SEMANTICS 4)."""
        return (self.params["binary"] + 7) // 8 + 4 * (self.params["float"] + self.scale_floats)

    def table(self) -> str:
        lines = [f"{'layer':<28}{'kind':<8}{'in':<20}{'out':<20}{'params':>10}{'MACs':>14}"]
        for name, kind, shp_in, shp_out, n, macs in self.rows:
            lines.append(f"{name:<28}{kind:<8}{str(shp_in):<20}{str(shp_out):<20}{n:>10,}{macs:>14,}")
        lines.append("")
        for k in ("binary", "float", "noise"):
            lines.append(f"{k + ' parameters':<24}{self.params[k]:>14,}   MACs {self.macs.get(k, 0):>14,}")
        lines.append(f"{'float32 size':<24}{self.float32_bytes:>14,} bytes")
        lines.append(f"{'packed size':<24}{self.packed_bytes:>14,} bytes "
                     f"({self.float32_bytes / max(self.packed_bytes, 1):.1f}x smaller)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def count_params(model: Module) -> dict[str, int]:
    """Parameter counts by precision class (see the module docstring)."""
    counts = {"binary": 0, "float": 0, "noise": 0}
    binary_ids = set()
    for m in model.modules():
        if isinstance(m, _Binary):
            binary_ids.add(id(m.weight))
            counts["binary"] += int(np.prod(m.weight.shape))
            for n in NOISE_NAMES:
                t = getattr(m, n)
                if t is not None:
                    binary_ids.add(id(t))
                    counts["noise"] += int(np.prod(t.shape))
    counts["float"] = sum(int(np.prod(p.shape)) for p in model.parameters() if id(p) not in binary_ids)
    return counts


def summary(model: Module, input_shape: Sequence[int]) -> Summary:
    """Trace one eval-mode forward pass on zeros of ``input_shape`` (N, C, H, W) (or (N, in)) and count
    MACs per sample: conv C_out*Ho*Wo*C_in*kh*kw, linear in*out; binary layers count as binary MACs."""
    names = {id(m): n for n, m in model.named_modules()}
    first = model.parameters()[0]
    x = Tensor.from_numpy(np.zeros(tuple(input_shape), first.numpy().dtype), first.ops, first.device)
    was_training = model.training
    model.eval()
    module_mod._trace = trace = []
    try:
        with no_grad():
            model(x)
    finally:
        module_mod._trace = None
        model.train(was_training)
    macs = {"binary": 0, "float": 0}
    rows, scale_floats = [], 0
    for m, shp_in, shp_out in trace:
        if not isinstance(m, (Conv2d, Linear, BinaryConv2d, BinaryLinear)):
            continue
        w = m.weight.shape
        per_out = int(np.prod(w[1:]))
        n = per_out * int(np.prod(shp_out[1:]))
        kind = "binary" if isinstance(m, _Binary) else "float"
        macs[kind] += n
        if kind == "binary":
            scale_floats += w[0] if m.options.scale == "channel" else 1
        n_params = sum(int(np.prod(p.shape)) for p in m.parameters())
        rows.append((names[id(m)], kind, tuple(shp_in), tuple(shp_out), n_params, n))
    return Summary(count_params(model), macs, scale_floats, rows)
