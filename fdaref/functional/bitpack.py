"""Bit packing of signs and the exact XNOR conv / linear (SEMANTICS 9), literally.

Layout: the packed axis is moved LAST and stored as ceil(C / 64) uint64 words; bit j of word w holds
element 64 w + j; a set bit means -1; unused high bits of the last word are 0. The XNOR ops unpack to +-1
integers and sum the products (fast backends use a . b = C - 2 popcount(A xor B) instead); only the valid
C bits are read, so stray bits in the last word never change a result.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_int
from ._geometry import Pair, geometry, out_size, pad, pad_value_of, windows

WORD = 64


def words(channels: int) -> int:
    """ceil(channels / 64): the uint64 words that hold ``channels`` packed signs."""
    return -(-channels // WORD)


def check_pack_args(x: Any, axis: Any, zero: Any) -> int:
    """Validate the arguments of :func:`pack_signs` (all but the NaN check); return the axis in [0, x.ndim)."""
    if not isinstance(x, np.ndarray) or x.dtype.type not in (np.float32, np.float64):
        raise TypeError(f"x: expected a float32 or float64 numpy array, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim < 1:
        raise ValueError("x: expected at least 1 dimension to pack along, got a 0-d array")
    ax = check_int(axis, "axis")
    if not -x.ndim <= ax < x.ndim:
        raise ValueError(f"axis: expected an axis of the {x.ndim}-d x (in [{-x.ndim}, {x.ndim})), got {axis}")
    if isinstance(zero, bool) or zero not in (-1, 1):
        raise ValueError(f"zero: expected -1 or +1 (a packed bit holds only two signs), got {zero!r}")
    if x.shape[ax] < 1:
        raise ValueError(f"x: expected at least 1 element along axis {axis}, got shape {x.shape}")
    return ax % x.ndim


def pack_signs(x: np.ndarray, *, axis: int, zero: float) -> np.ndarray:
    """Pack the signs of ``x`` along ``axis`` into uint64 words (SEMANTICS 9).

    x: float32/float64 array, no NaN; ``zero`` (-1 or +1) is sign(0). Returns uint64 of shape
    x.shape without ``axis``, plus a last axis of ceil(C / 64) words, C = x.shape[axis].
    Element k of the axis is bit k % 64 of word k // 64; set means sign -1; unused bits are 0.
    """
    ax = check_pack_args(x, axis, zero)
    if np.isnan(x).any():
        raise ValueError("x: NaN has no sign and cannot be packed")
    negative = np.moveaxis((x < 0) | ((x == 0) & (zero == -1)), ax, -1)
    c, nw = negative.shape[-1], words(negative.shape[-1])
    bits = np.zeros(negative.shape[:-1] + (nw * WORD,), dtype=np.uint64)
    bits[..., :c] = negative
    bits = bits.reshape(negative.shape[:-1] + (nw, WORD))
    return (bits << np.arange(WORD, dtype=np.uint64)).sum(axis=-1, dtype=np.uint64)  # distinct bits: sum = or


def unpack_signs(packed: np.ndarray, channels: int) -> np.ndarray:
    """The +-1 int64 values that :func:`pack_signs` packed: (..., words) -> (..., channels)."""
    bits = (packed[..., None] >> np.arange(WORD, dtype=np.uint64)) & np.uint64(1)
    return 1 - 2 * bits.reshape(packed.shape[:-1] + (-1,))[..., :channels].astype(np.int64)


def check_packed(a: Any, name: str, ndim: int, n_words: int) -> np.ndarray:
    """``a`` unchanged if it is a uint64 array of ``ndim`` dimensions with ``n_words`` words on the last axis."""
    if not isinstance(a, np.ndarray) or a.dtype != np.uint64:
        raise TypeError(f"{name}: expected a uint64 numpy array from pack_signs, got "
                        f"{getattr(a, 'dtype', type(a).__name__)}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {a.shape}")
    if a.shape[-1] != n_words:
        raise ValueError(f"{name}: expected {n_words} words (ceil(channels / 64)) on the last axis, got shape {a.shape}")
    return a


def xnor_conv2d(x_packed: np.ndarray, w_packed: np.ndarray, *, channels: int, stride: Pair, padding: Pair,
                dilation: Pair, pad_value: float) -> np.ndarray:
    """conv2d of the +-1 tensors, exactly, as int32 (N, C_out, Ho, Wo) (SEMANTICS 9).

    x_packed: (N, H, W, words) activations packed along C; w_packed: (C_out, kh, kw, words) weights packed
    along C_in; words = ceil(channels / 64). Padded positions hold ``pad_value`` (0, -1 or +1). Computed by
    unpacking both to +-1 integers and summing the products exactly (SEMANTICS 5's cross-correlation).
    """
    c = check_int(channels, "channels", minimum=1)
    nw = words(c)
    check_packed(x_packed, "x_packed", 4, nw)
    check_packed(w_packed, "w_packed", 4, nw)
    stride, padding, dilation = geometry(stride, padding, dilation)
    pv = int(pad_value_of(pad_value))
    x = np.moveaxis(unpack_signs(x_packed, c), -1, 1)  # (N, C, H, W)
    w = np.moveaxis(unpack_signs(w_packed, c), -1, 1)  # (C_out, C, kh, kw)
    out = out_size(x.shape[2:], w.shape[2:], stride, padding, dilation, "xnor_conv2d")
    win = windows(pad(x, padding, pv), w.shape[2:], stride, dilation, out)
    return np.einsum("ncyxij,ocij->noyx", win, w, optimize=True).astype(np.int32)


def xnor_linear(x_packed: np.ndarray, w_packed: np.ndarray, *, features: int) -> np.ndarray:
    """x @ w.T of the +-1 matrices, exactly, as int32 (B, out). x_packed (B, words), w_packed (out, words),
    both packed along ``features`` (words = ceil(features / 64))."""
    f = check_int(features, "features", minimum=1)
    nw = words(f)
    check_packed(x_packed, "x_packed", 2, nw)
    check_packed(w_packed, "w_packed", 2, nw)
    return (unpack_signs(x_packed, f) @ unpack_signs(w_packed, f).T).astype(np.int32)
