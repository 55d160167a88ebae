"""Host-side shape and launch logic of the CuPy backend (pure Python; no array module needed).

Convolution and pooling are written as sums over the kh * kw kernel offsets: for offset (i, j) the input
positions that meet the outputs form one strided slice of the padded input. ``im2col`` copies those slices
into the column matrix and ``col2im`` adds them back (a deterministic scatter: no atomics, no index arrays).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

Pair = tuple[int, int]


def as_pair(value: Any, name: str, *, minimum: int = 0) -> Pair:
    """An int or a pair of ints (height, width), each an int >= ``minimum``; clear errors otherwise."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int) and not hasattr(v, "__index__"):
            raise TypeError(f"{name}: expected integers, got {value!r}")
        v = int(v)
        if v < minimum:
            raise ValueError(f"{name}: expected integers >= {minimum}, got {value!r}")
        out.append(v)
    return out[0], out[1]


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution / pooling along one axis (floor mode)."""
    span = dilation * (kernel - 1) + 1
    return (size + 2 * padding - span) // stride + 1


@dataclass(frozen=True)
class Window:
    """Geometry of a 2-D sliding window over an (H, W) image."""
    height: int
    width: int
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair = (1, 1)

    @property
    def out_shape(self) -> Pair:
        """(Ho, Wo); raises ValueError when the window does not fit."""
        ho = conv_output_size(self.height, self.kernel[0], self.stride[0], self.padding[0], self.dilation[0])
        wo = conv_output_size(self.width, self.kernel[1], self.stride[1], self.padding[1], self.dilation[1])
        if ho < 1 or wo < 1:
            raise ValueError(f"window {self.kernel} (stride {self.stride}, padding {self.padding}, dilation "
                             f"{self.dilation}) does not fit an input of {self.height}x{self.width}")
        return ho, wo

    @property
    def padded_shape(self) -> Pair:
        return self.height + 2 * self.padding[0], self.width + 2 * self.padding[1]

    def offsets(self) -> Iterator[tuple[int, int, slice, slice]]:
        """(i, j, rows, cols) per kernel offset in row-major order: ``padded[..., rows, cols]`` is the
        (Ho, Wo) grid of input positions that offset (i, j) of the window meets."""
        ho, wo = self.out_shape
        (sh, sw), (dh, dw) = self.stride, self.dilation
        for i in range(self.kernel[0]):
            r0 = i * dh
            rows = slice(r0, r0 + sh * (ho - 1) + 1, sh)
            for j in range(self.kernel[1]):
                c0 = j * dw
                yield i, j, rows, slice(c0, c0 + sw * (wo - 1) + 1, sw)

    def source_index(self, oy: int, ox: int, i: int, j: int) -> Pair:
        """Unpadded input position (may lie in the padding, i.e. < 0 or >= size) for output (oy, ox),
        offset (i, j): the scalar formula the raw kernels use."""
        return (oy * self.stride[0] - self.padding[0] + i * self.dilation[0],
                ox * self.stride[1] - self.padding[1] + j * self.dilation[1])


def im2col(xp: Any, padded: Any, win: Window) -> Any:
    """Columns of a padded (N, C, Hp, Wp) array: (N, C * kh * kw, Ho * Wo), C-major then (i, j)
    (the order of ``w.reshape(C_out, -1)``)."""
    n, c = padded.shape[:2]
    ho, wo = win.out_shape
    kh, kw = win.kernel
    cols = xp.empty((n, c, kh, kw, ho, wo), dtype=padded.dtype)
    for i, j, rows, cs in win.offsets():
        cols[:, :, i, j] = padded[:, :, rows, cs]
    return cols.reshape(n, c * kh * kw, ho * wo)


def col2im(xp: Any, cols: Any, channels: int, win: Window) -> Any:
    """Adjoint of :func:`im2col`: (N, C * kh * kw, Ho * Wo) -> padded (N, C, Hp, Wp), overlaps summed in
    a fixed order (deterministic)."""
    n = cols.shape[0]
    ho, wo = win.out_shape
    kh, kw = win.kernel
    hp, wp = win.padded_shape
    cols = cols.reshape(n, channels, kh, kw, ho, wo)
    out = xp.zeros((n, channels, hp, wp), dtype=cols.dtype)
    for i, j, rows, cs in win.offsets():
        out[:, :, rows, cs] += cols[:, :, i, j]
    return out


def words_for(channels: int) -> int:
    """uint64 words holding ``channels`` bits: ceil(C / 64)."""
    return -(-int(channels) // 64)


def launch_config(total: int, block: int = 256, max_blocks: int = 65535 * 4) -> tuple[tuple[int], tuple[int]]:
    """(grid, block) for a 1-D grid-stride kernel over ``total`` items: enough blocks to cover ``total``
    once, capped at ``max_blocks`` (the kernels loop), and at least one block."""
    if total < 0:
        raise ValueError(f"launch_config: total must be >= 0, got {total}")
    if block < 1 or block > 1024:
        raise ValueError(f"launch_config: block must be in 1..1024, got {block}")
    blocks = max(1, min(max_blocks, math.ceil(total / block)))
    return (blocks,), (block,)


def reduction_axes(ndim: int, channel_axis: int = 1) -> tuple[int, ...]:
    """All axes but ``channel_axis`` (batch-norm statistics, per-channel PReLU slopes)."""
    return tuple(a for a in range(ndim) if a != channel_axis)


def sum_to_shape_axes(have: Sequence[int], want: Sequence[int]) -> tuple[int, ...]:
    """Axes to sum (keepdims) so that an array of shape ``have`` reduces to the broadcast source ``want``."""
    have, want = tuple(have), tuple(want)
    lead = len(have) - len(want)
    if lead < 0:
        raise ValueError(f"sum_to_shape: cannot reduce shape {have} to the larger rank of {want}")
    for i, n in enumerate(want):
        if n != 1 and have[lead + i] != n:
            raise ValueError(f"sum_to_shape: shape {want} does not broadcast to {have}")
    return tuple(range(lead)) + tuple(lead + i for i, n in enumerate(want) if n == 1 and have[lead + i] != 1)
