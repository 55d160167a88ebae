"""Bit packing and XNOR-popcount kernels (SPEC 9 layout: uint64 words, bit j of word w = element 64 w + j,
a set bit means -1, unused bits 0).

For ``a, b`` in {-1, +1}^K packed as bits, a . b = K - 2 popcount(a XOR b).

The binary conv packs each output pixel's receptive field into one bit string ("bit im2col"): tap t = i*kw + j
contributes its C channel bits at bit offset t*C. For C < 64 this fills words that per-tap packing would leave
mostly empty (C = 16, 3x3: 3 words instead of 9). Padding:
- pad value -1 / +1: padded taps are ordinary bits (all set / all clear), the result is exact as is;
- pad value 0: padded taps are packed as +1 (clear bits), which adds sum_c w[co, c, tap] per padded tap; that
  correction (C - 2 popcount(w tap), precomputed per (co, tap)) is subtracted again, so the result equals the
  float conv with zeros in the padding exactly.
The inner loop runs over output channels with the weights transposed (words, C_out), so it vectorises
(AVX-512 VPOPCNTQ where the CPU has it).
"""
from __future__ import annotations

import os

import numpy as np
from numba import njit, prange, types
from numba.core.extending import intrinsic

_CACHE = os.environ.get("FDAREF_NUMBA_NOCACHE") != "1"
_JIT = dict(cache=_CACHE, error_model="numpy")

_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_U6 = np.uint64(6)
_U63 = np.uint64(63)
_U64 = np.uint64(64)


@intrinsic
def popcount(typingctx, v):
    """Number of set bits of an unsigned 64-bit integer (llvm.ctpop), as int64."""
    if v != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.int64(types.uint64), codegen


@njit(inline="always", **_JIT)
def _low_mask(nbits):
    """The lowest ``nbits`` (1..64) bits set."""
    if nbits >= 64:
        return _ALL
    return (_ONE << np.uint64(nbits)) - _ONE


@njit(inline="always", **_JIT)
def _append(dst, off, v, nbits):
    """OR the low ``nbits`` bits of ``v`` (already masked) into ``dst`` at bit offset ``off``."""
    sh = np.uint64(off) & _U63
    wi = off >> 6
    dst[wi] |= v << sh
    if sh != _ZERO and sh + np.uint64(nbits) > _U64:
        dst[wi + 1] |= v >> (_U64 - sh)


# ------------------------------------------------------------------------------------------------------
# pack_signs on a (outer, C, inner) view -> (outer, inner, words)

@njit(parallel=True, **_JIT)
def pack_axis(x, zero_neg, out):
    """Set bit c of (o, i) where x[o, c, i] < 0, or == 0 when ``zero_neg``. ``out`` starts zeroed."""
    n_o, n_c, n_i = x.shape
    for o in prange(n_o):
        for c in range(n_c):
            word = c >> 6
            bit = _ONE << np.uint64(c & 63)
            for i in range(n_i):
                v = x[o, c, i]
                if v < 0 or (zero_neg and v == 0):
                    out[o, i, word] |= bit


@njit(**_JIT)
def any_nan(x):
    for v in x.ravel():
        if v != v:
            return True
    return False


# ------------------------------------------------------------------------------------------------------
# XNOR conv2d

@njit(**_JIT)
def pack_weight_patches(w_packed, channels):
    """(C_out, kh, kw, words) -> (KW, C_out) patch words (tap-major bit order) and (C_out, taps) tap sums
    sum_c w = C - 2 popcount(tap)."""
    co_n, kh, kw, nw = w_packed.shape
    taps = kh * kw
    k_bits = channels * taps
    kw_words = (k_bits + 63) // 64
    wt = np.zeros((kw_words, co_n), dtype=np.uint64)
    tsum = np.zeros((co_n, taps), dtype=np.int64)
    row = np.zeros(kw_words, dtype=np.uint64)
    for co in range(co_n):
        row[:] = 0
        for i in range(kh):
            for j in range(kw):
                t = i * kw + j
                cnt = 0
                for wi in range(nw):
                    nb = min(64, channels - 64 * wi)
                    v = w_packed[co, i, j, wi] & _low_mask(nb)
                    cnt += popcount(v)
                    _append(row, t * channels + 64 * wi, v, nb)
                tsum[co, t] = channels - 2 * cnt
        for k in range(kw_words):
            wt[k, co] = row[k]
    return wt, tsum


@njit(parallel=True, **_JIT)
def xnor_conv_kernel(x_packed, wt, tsum, channels, kh, kw, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, out):
    """out[n, co, ho, wo] = sum over taps and channels of x_pad * w (exact, int32)."""
    n_b, h_n, w_n, nw = x_packed.shape
    kw_words, co_n = wt.shape
    k_bits = channels * kh * kw
    pad_bits = _ALL if pad_value < 0 else _ZERO
    zero_pad = pad_value == 0
    for nh in prange(n_b * ho_n):
        n = nh // ho_n
        ho = nh - n * ho_n
        patch = np.empty(kw_words, dtype=np.uint64)
        acc = np.empty(co_n, dtype=np.int64)
        corr = np.empty(co_n, dtype=np.int64)
        for wo in range(wo_n):
            patch[:] = 0
            any_pad = False
            for i in range(kh):
                h = ho * sh - ph + i * dh
                for j in range(kw):
                    w = wo * sw - pw + j * dw
                    t = i * kw + j
                    inside = h >= 0 and h < h_n and w >= 0 and w < w_n
                    if not inside:
                        if zero_pad:
                            if not any_pad:
                                corr[:] = 0
                                any_pad = True
                            for co in range(co_n):
                                corr[co] += tsum[co, t]
                            continue
                    for wi in range(nw):
                        nb = min(64, channels - 64 * wi)
                        if inside:
                            v = x_packed[n, h, w, wi] & _low_mask(nb)
                        else:
                            v = pad_bits & _low_mask(nb)
                        _append(patch, t * channels + 64 * wi, v, nb)
            acc[:] = 0
            for k in range(kw_words):
                pk = patch[k]
                for co in range(co_n):
                    acc[co] += popcount(pk ^ wt[k, co])
            if any_pad:
                for co in range(co_n):
                    out[n, co, ho, wo] = k_bits - 2 * acc[co] - corr[co]
            else:
                for co in range(co_n):
                    out[n, co, ho, wo] = k_bits - 2 * acc[co]


@njit(parallel=True, **_JIT)
def xnor_linear_kernel(x_packed, wt, features, out):
    """out[b, o] = features - 2 popcount(x[b] XOR w[o]) summed over words; ``wt`` is (words, out)."""
    b_n, nw = x_packed.shape
    o_n = wt.shape[1]
    last = _low_mask(features - 64 * (nw - 1)) if nw > 0 else _ZERO
    for b in prange(b_n):
        acc = np.zeros(o_n, dtype=np.int64)
        for k in range(nw):
            xv = x_packed[b, k]
            if k == nw - 1:
                xv &= last
                for o in range(o_n):
                    acc[o] += popcount(xv ^ (wt[k, o] & last))
            else:
                for o in range(o_n):
                    acc[o] += popcount(xv ^ wt[k, o])
        for o in range(o_n):
            out[b, o] = features - 2 * acc[o]
