"""An independent bit packer (SEMANTICS 9) used to build the packed inputs of the XNOR ops.

Written separately from the reference's ``pack_signs`` on purpose: if the two ever disagree, the
``pack_signs`` record of the reference itself fails. Bit j of word w holds element 64 w + j of the packed
axis; a set bit means sign -1; unused high bits are 0; the packed axis becomes the last axis.
"""
from __future__ import annotations

import numpy as np


def pack_signs_independent(x: np.ndarray, axis: int, zero: float = -1.0) -> np.ndarray:
    """uint64 words of the signs of ``x`` along ``axis`` (moved last): bit set where sign(x) == -1."""
    moved = np.moveaxis(np.asarray(x), axis, -1)
    negative = (moved < 0) | ((moved == 0) & (zero < 0))
    count = moved.shape[-1]
    words = -(-count // 64)
    out = np.zeros(moved.shape[:-1] + (words,), dtype=np.uint64)
    for j in range(count):
        w, b = divmod(j, 64)
        out[..., w] |= negative[..., j].astype(np.uint64) << np.uint64(b)
    return out


def unpack_signs_independent(words: np.ndarray, count: int) -> np.ndarray:
    """The +-1 float64 values packed in ``words`` (last axis), ``count`` of them."""
    out = np.empty(words.shape[:-1] + (count,), dtype=np.float64)
    for j in range(count):
        w, b = divmod(j, 64)
        bit = (words[..., w] >> np.uint64(b)) & np.uint64(1)
        out[..., j] = np.where(bit == 1, -1.0, 1.0)
    return out


def with_stray_bits(words: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``words`` (``count`` elements packed along the last axis) with random bits set beyond
    ``count`` in the last word: SEMANTICS 11 says they never change a result, so a kernel that popcounts
    whole words without masking them differs. Unchanged where ``count`` fills its last word."""
    out = np.array(words, dtype=np.uint64, copy=True)
    used = count % 64
    if used:
        stray = rng.integers(0, 2**63, size=out.shape[:-1], dtype=np.uint64) << np.uint64(1)
        stray |= rng.integers(0, 2, size=out.shape[:-1], dtype=np.uint64)
        out[..., -1] |= stray & ~np.uint64((1 << used) - 1)
    return out
