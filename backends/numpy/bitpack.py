"""Bit packing of signs and exact XNOR-popcount conv / linear, fast (the ``numpy`` backend; SEMANTICS 9).

Layout: the packed axis is moved LAST and stored as ceil(C / 64) uint64 words; bit j of word w holds
element 64 w + j; a set bit means -1; unused high bits of the last word are 0.
For +-1 vectors a, b of length C with bit masks A, B: a . b = C - 2 popcount(A xor B). The last word is
masked to its C mod 64 valid bits, so stray bits there can never change a result.
"""
from __future__ import annotations

import numpy as np

from fdaref._validate import check_int
from fdaref.functional._geometry import Pair, geometry, out_size, pad_value_of
from fdaref.functional.bitpack import WORD, check_pack_args, check_packed, words

if hasattr(np, "bitwise_count"):  # numpy >= 2.0
    _popcount = np.bitwise_count
else:  # pragma: no cover - numpy 1.x: count the 8 bytes of each word through a table
    _TABLE = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(a: np.ndarray) -> np.ndarray:
        return _TABLE[a[..., None].view(np.uint8)].sum(axis=-1, dtype=np.uint8)


def _mask(channels: int) -> np.ndarray:
    """(words,) uint64 masks of the valid bits of each word."""
    m = np.full(words(channels), np.iinfo(np.uint64).max, dtype=np.uint64)
    rem = channels % WORD
    if rem:
        m[-1] = np.uint64((1 << rem) - 1)
    return m


def pack_signs(x: np.ndarray, *, axis: int, zero: float) -> np.ndarray:
    """Pack the signs of ``x`` along ``axis`` into uint64 words (SEMANTICS 9).

    x: float32/float64 array, no NaN; ``zero`` (-1 or +1) is sign(0). Returns uint64 of shape
    x.shape without ``axis``, plus a last axis of ceil(C / 64) words, C = x.shape[axis].
    Element k of the axis is bit k % 64 of word k // 64; set means sign -1.
    """
    ax = check_pack_args(x, axis, zero)
    if np.isnan(x).any():
        raise ValueError("x: NaN has no sign and cannot be packed")
    c = x.shape[ax]
    neg = (x < 0) | (x == 0) if zero == -1 else (x < 0)
    neg = np.moveaxis(neg, ax, -1)
    nw = words(c)
    bits = np.zeros(neg.shape[:-1] + (nw * WORD,), dtype=bool)
    bits[..., :c] = neg
    # packbits(bitorder="little"): bit b of byte k = element 8k + b; 8 bytes read little-endian form a word.
    packed = np.packbits(bits.reshape(neg.shape[:-1] + (nw, WORD)), axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64).reshape(neg.shape[:-1] + (nw,))


def _dots(xw: np.ndarray, ww: np.ndarray, channels: int) -> np.ndarray:
    """+-1 dot products C - 2 popcount(x xor w): xw (..., words), ww (O, words) -> (..., O) int64."""
    diff = _popcount((xw[..., None, :] ^ ww) & _mask(channels)).sum(axis=-1, dtype=np.int64)
    return channels - 2 * diff


def xnor_conv2d(x_packed: np.ndarray, w_packed: np.ndarray, *, channels: int, stride: Pair, padding: Pair,
                dilation: Pair, pad_value: float) -> np.ndarray:
    """conv2d of the +-1 tensors, exactly, as int32 (N, C_out, Ho, Wo) (SEMANTICS 9).

    x_packed: (N, H, W, words) activations packed along C; w_packed: (C_out, kh, kw, words) weights packed
    along C_in; words = ceil(channels / 64). Padded positions hold ``pad_value``: 0 contributes nothing,
    +-1 contributes pad_value * sum_c w[o, c, i, j] = pad_value * (C - 2 popcount(w)) for each tap.
    """
    c = check_int(channels, "channels", minimum=1)
    nw = words(c)
    check_packed(x_packed, "x_packed", 4, nw)
    check_packed(w_packed, "w_packed", 4, nw)
    stride, padding, dilation = geometry(stride, padding, dilation)
    pv = int(pad_value_of(pad_value))
    n, h, w_, _ = x_packed.shape
    o, kh, kw, _ = w_packed.shape
    out = out_size((h, w_), (kh, kw), stride, padding, dilation, "xnor_conv2d")
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    # Zero words in the padding; a validity mask picks the pad contribution there instead.
    xp = np.zeros((n, h + 2 * ph, w_ + 2 * pw, nw), dtype=np.uint64)
    xp[:, ph:ph + h, pw:pw + w_] = x_packed
    inside = np.zeros((h + 2 * ph, w_ + 2 * pw), dtype=bool)
    inside[ph:ph + h, pw:pw + w_] = True
    wsum = c - 2 * _popcount(w_packed & _mask(c)).sum(axis=-1, dtype=np.int64)  # (O, kh, kw): sum_c w
    acc = np.zeros((n, out[0], out[1], o), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (out[0] - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (out[1] - 1) + 1, sw)
            dots = _dots(xp[:, rows, cols], w_packed[:, i, j], c)  # (N, Ho, Wo, O)
            if pv:
                dots = np.where(inside[rows, cols][None, :, :, None], dots, pv * wsum[:, i, j])
            else:
                dots *= inside[rows, cols][None, :, :, None]
            acc += dots
    return np.ascontiguousarray(acc.transpose(0, 3, 1, 2)).astype(np.int32)


def xnor_linear(x_packed: np.ndarray, w_packed: np.ndarray, *, features: int) -> np.ndarray:
    """x @ w.T of the +-1 matrices, exactly, as int32 (B, out). x_packed (B, words), w_packed (out, words),
    both packed along ``features`` (words = ceil(features / 64))."""
    f = check_int(features, "features", minimum=1)
    nw = words(f)
    check_packed(x_packed, "x_packed", 2, nw)
    check_packed(w_packed, "w_packed", 2, nw)
    b, o = x_packed.shape[0], w_packed.shape[0]
    out = np.empty((b, o), dtype=np.int32)
    step = max(1, (1 << 22) // max(1, o * nw))  # rows per chunk: bounds the (rows, out, words) temporary
    for r in range(0, b, step):
        out[r:r + step] = _dots(x_packed[r:r + step], w_packed, f)
    return out
