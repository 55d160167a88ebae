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


@intrinsic
def xorpop(typingctx, a, b):
    """popcount(a XOR b) as int32 for two unsigned integers of the same width (8, 16, 32 or 64 bits), computed
    at that width: with 16-bit lanes a 512-bit vector holds 32 of them (VPOPCNTW) instead of 8 64-bit ones."""
    if not (isinstance(a, types.Integer) and not a.signed and a == b):
        return None

    def codegen(context, builder, signature, args):
        import llvmlite.ir as ir
        v = builder.ctpop(builder.xor(args[0], args[1]))
        i32 = ir.IntType(32)
        width = args[0].type.width
        if width < 32:
            return builder.zext(v, i32)
        if width > 32:
            return builder.trunc(v, i32)
        return v
    return types.int32(a, b), codegen


@intrinsic
def xorpop_n(typingctx, a, b):
    """popcount(a XOR b) in the width of the operands (uint8 / 16 / 32 / 64), so that sums of a few of them stay
    in narrow SIMD lanes (numba would widen a Python-level sum of small integers to 64 bits)."""
    if not (isinstance(a, types.Integer) and not a.signed and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(builder.xor(args[0], args[1]))
    return a(a, b), codegen


@intrinsic
def add_n(typingctx, a, b):
    """a + b (wrapping) in the width of the operands, without numba's widening of small integers."""
    if not (isinstance(a, types.Integer) and not a.signed and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.add(args[0], args[1])
    return a(a, b), codegen


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

@njit(**_JIT)
def pack_axis_range(x, zero_neg, out, start, stop):
    """Outer indices [start, stop): bit c of out[o, i] is set where x[o, c, i] < 0 (or == 0 when ``zero_neg``).
    ``out`` starts zeroed. Returns the number of NaNs seen (the caller refuses to pack NaN), counted in the same
    pass."""
    n_o, n_c, n_i = x.shape
    zn = _ONE if zero_neg else _ZERO
    nans = 0
    for o in range(start, stop):
        for c in range(n_c):
            word = c >> 6
            sh = np.uint64(c & 63)
            for i in range(np.uint64(0), np.uint64(n_i)):   # branch-free, unsigned: vectorises
                v = x[o, c, i]
                neg = np.uint64(v < 0) | (zn & np.uint64(v == 0))
                out[o, i, word] |= neg << sh
                nans += np.int64(v != v)
    return nans


@njit(parallel=True, **_JIT)
def pack_axis_par(x, zero_neg, out, chunks):
    n_o = x.shape[0]
    nans = 0
    for c in prange(chunks):
        nans += pack_axis_range(x, zero_neg, out, c * n_o // chunks, (c + 1) * n_o // chunks)
    return nans


@njit(**_JIT)
def any_nan(x):
    for v in x.ravel():
        if v != v:
            return True
    return False


# ------------------------------------------------------------------------------------------------------
# XNOR conv2d

@njit(**_JIT)
def prepare_weights(w_packed, channels, lane):
    """(C_out, kh, kw, words) -> the weights with unused bits cleared, in the lane dtype of ``lane`` (uint8 / 16 /
    32 when C fits, else uint64), and the per-tap sums sum_c w[co, c, tap] = C - 2 popcount(tap) as
    (C_out, kh * kw) int64 (the zero-padding correction)."""
    co_n, kh, kw, nw = w_packed.shape
    wm = np.empty((co_n, kh, kw, nw), dtype=lane.dtype)
    tsum = np.zeros((co_n, kh * kw), dtype=np.int64)
    for co in range(co_n):
        for i in range(kh):
            for j in range(kw):
                cnt = 0
                for k in range(nw):
                    v = w_packed[co, i, j, k] & _low_mask(channels - 64 * k)
                    wm[co, i, j, k] = v
                    cnt += popcount(v)
                tsum[co, i * kw + j] = channels - 2 * cnt
    return wm, tsum


@njit(**_JIT)
def pad_input_rows(x_packed, channels, ph, pw, sh, sw, pad_word_set, hp_n, wp_n, hq_n, wq_n, xflat, start, stop):
    """Rows [start, stop) of the N * Hp padded input rows into the polyphase planes ``xflat``
    (N, words, sh * sw, Hq * Wq + tail): padded pixel (hp, wp) goes to phase (hp % sh, wp % sw) at flat position
    (hp // sh) * Wq + wp // sw. With stride 1 that is the plain padded plane. Padding holds all-set bits (pad -1)
    or clear bits (pad 0 / +1); unused bits of the last word are cleared."""
    n_b, h_n, w_n, nw = x_packed.shape
    for r in range(start, stop):
        n = r // hp_n
        hp = r - n * hp_n
        h = hp - ph
        prow = (hp % sh) * sw
        base = (hp // sh) * wq_n
        inside_row = h >= 0 and h < h_n
        for k in range(nw):
            mask = _low_mask(channels - 64 * k)
            padw = mask if pad_word_set else _ZERO
            if sw == 1:
                if not inside_row:
                    for wp in range(wp_n):
                        xflat[n, k, prow, base + wp] = padw
                    continue
                for wp in range(pw):
                    xflat[n, k, prow, base + wp] = padw
                for w in range(w_n):
                    xflat[n, k, prow, base + pw + w] = x_packed[n, h, w, k] & mask
                for wp in range(pw + w_n, wp_n):
                    xflat[n, k, prow, base + wp] = padw
                continue
            pc = 0          # wp % sw and wp // sw, kept incrementally (no integer division per pixel)
            qc = 0
            for wp in range(wp_n):
                w = wp - pw
                if inside_row and w >= 0 and w < w_n:
                    v = x_packed[n, h, w, k] & mask
                else:
                    v = padw
                xflat[n, k, prow + pc, base + qc] = v
                pc += 1
                if pc == sw:
                    pc = 0
                    qc += 1


@njit(inline="always", **_JIT)
def _finish_plane(acc, n, co, k_bits, wq_n, bh, bw, corr, out):
    """out[n, co] from the extended accumulator (Ho x Wq; columns >= Wo are discarded), minus the zero-padding
    correction ``corr[b, co]`` at the border pixels (bh[b], bw[b])."""
    ho_n, wo_n = out.shape[2], out.shape[3]
    for ho in range(ho_n):
        base = np.uint64(ho * wq_n)
        for wo in range(np.uint64(0), np.uint64(wo_n)):
            out[n, co, ho, wo] = k_bits - 2 * acc[base + wo]
    for b in range(bh.shape[0]):
        out[n, co, bh[b], bw[b]] -= corr[b, co]


@njit(**_JIT)
def xnor_conv_planes(xflat, wm, k_bits, wq_n, sh, sw, dh, dw, bh, bw, corr, out, start, stop):
    """(n, co) planes [start, stop) of the output: out = K - 2 sum_taps popcount(x_pad XOR w) (- the correction).

    Every tap is ONE contiguous run over a polyphase plane ("extended rows" of width Wq; the Wq - Wo extra
    columns per row are computed and discarded), so the innermost loop is long and vectorises whatever the
    stride. 3x3 at stride 1 sums its nine taps in one pass."""
    n_b, nw, _, _ = xflat.shape
    co_n, kh, kw, _ = wm.shape
    ho_n = out.shape[2]
    run = ho_n * wq_n
    acc = np.empty(run, dtype=np.int32)
    acc_n = np.empty(run, dtype=xflat.dtype)          # the lane-width partial sums (see ``narrow``)
    narrow = xflat.itemsize <= 4                      # 9 taps x <= 32 bits fit the lane
    for pair in range(start, stop):
        n = pair // co_n
        co = pair - n * co_n
        for q in range(run):
            acc[q] = 0
        if sh == 1 and sw == 1 and kh == 3 and kw == 3:
            for k in range(nw):
                w0, w1, w2 = wm[co, 0, 0, k], wm[co, 0, 1, k], wm[co, 0, 2, k]
                w3, w4, w5 = wm[co, 1, 0, k], wm[co, 1, 1, k], wm[co, 1, 2, k]
                w6, w7, w8 = wm[co, 2, 0, k], wm[co, 2, 1, k], wm[co, 2, 2, k]
                r1 = np.uint64(dh * wq_n)
                r2 = np.uint64(2 * dh * wq_n)
                c1 = np.uint64(dw)
                c2 = np.uint64(2 * dw)
                # unsigned indices: no negative-index wraparound, so the loads stay contiguous vectors. With
                # one word of <= 32 bits the nine counts are summed in the lane's own width (9 * 8 < 2^8, ...).
                xr = xflat[n, k, 0]
                if narrow:
                    for q in range(np.uint64(0), np.uint64(run)):
                        t = add_n(add_n(add_n(xorpop_n(xr[q], w0), xorpop_n(xr[q + c1], w1)),
                                        add_n(xorpop_n(xr[q + c2], w2), xorpop_n(xr[q + r1], w3))),
                                  add_n(add_n(xorpop_n(xr[q + r1 + c1], w4), xorpop_n(xr[q + r1 + c2], w5)),
                                        add_n(add_n(xorpop_n(xr[q + r2], w6), xorpop_n(xr[q + r2 + c1], w7)),
                                              xorpop_n(xr[q + r2 + c2], w8))))
                        acc_n[q] = t
                    for q in range(np.uint64(0), np.uint64(run)):
                        acc[q] += np.int32(acc_n[q])
                else:
                    for q in range(np.uint64(0), np.uint64(run)):
                        acc[q] += (xorpop(xr[q], w0) + xorpop(xr[q + c1], w1)
                                   + xorpop(xr[q + c2], w2) + xorpop(xr[q + r1], w3)
                                   + xorpop(xr[q + r1 + c1], w4) + xorpop(xr[q + r1 + c2], w5)
                                   + xorpop(xr[q + r2], w6) + xorpop(xr[q + r2 + c1], w7)
                                   + xorpop(xr[q + r2 + c2], w8))
        elif sh == 2 and sw == 2 and kh == 3 and kw == 3 and dh == 1 and dw == 1 and narrow:
            # 3x3 / stride 2 (the downsampling convs): the nine taps over the four polyphase planes, one pass
            q1 = np.uint64(1)
            qw = np.uint64(wq_n)
            for k in range(nw):
                w00, w01, w02 = wm[co, 0, 0, k], wm[co, 0, 1, k], wm[co, 0, 2, k]
                w10, w11, w12 = wm[co, 1, 0, k], wm[co, 1, 1, k], wm[co, 1, 2, k]
                w20, w21, w22 = wm[co, 2, 0, k], wm[co, 2, 1, k], wm[co, 2, 2, k]
                e0 = xflat[n, k, 0]    # phase (even row, even col)
                e1 = xflat[n, k, 1]    # (even, odd)
                e2 = xflat[n, k, 2]    # (odd, even)
                e3 = xflat[n, k, 3]    # (odd, odd)
                for q in range(np.uint64(0), np.uint64(run)):
                    t = add_n(add_n(add_n(xorpop_n(e0[q], w00), xorpop_n(e0[q + q1], w02)),
                                    add_n(xorpop_n(e0[q + qw], w20), xorpop_n(e0[q + qw + q1], w22))),
                              add_n(add_n(xorpop_n(e1[q], w01), xorpop_n(e1[q + qw], w21)),
                                    add_n(add_n(xorpop_n(e2[q], w10), xorpop_n(e2[q + q1], w12)),
                                          xorpop_n(e3[q], w11))))
                    acc_n[q] = t
                for q in range(np.uint64(0), np.uint64(run)):
                    acc[q] += np.int32(acc_n[q])
        else:
            for i in range(kh):
                for j in range(kw):
                    row, col = i * dh, j * dw
                    phase = (row % sh) * sw + col % sw
                    off = np.uint64((row // sh) * wq_n + col // sw)
                    for k in range(nw):
                        wv = wm[co, i, j, k]
                        for q in range(np.uint64(0), np.uint64(run)):
                            acc[q] += xorpop(xflat[n, k, phase, q + off], wv)
        _finish_plane(acc, n, co, k_bits, wq_n, bh, bw, corr, out)


@njit(**_JIT)
def _taps_outside(out, s, d, p, n):
    """out[o, i] = whether tap i of output o (input index o*s + i*d - p) falls in the padding of a length-n axis."""
    for o in range(out.shape[0]):
        for i in range(out.shape[1]):
            v = o * s + i * d - p
            out[o, i] = v < 0 or v >= n


@njit(**_JIT)
def _patterns(rows):
    """(ids, patterns, count): the distinct rows of the bool matrix ``rows`` in order of first appearance
    (patterns[:count]) and, for each row, the index of its pattern."""
    n, k = rows.shape
    ids = np.empty(n, dtype=np.int64)
    pats = np.empty((n, k), dtype=np.bool_)
    count = 0
    for r in range(n):
        found = -1
        for a in range(count):
            same = True
            for i in range(k):
                same = same and pats[a, i] == rows[r, i]
            if same:
                found = a
                break
        if found < 0:
            for i in range(k):
                pats[count, i] = rows[r, i]
            found = count
            count += 1
        ids[r] = found
    return ids, pats, count


@njit(**_JIT)
def conv_setup(x_packed, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane):
    """Everything one XNOR conv call needs, allocated in one compiled call (Python overhead matters at batch 1)."""
    n_b, h_n, w_n, nw = x_packed.shape
    co_n, kh, kw, _ = w_packed.shape
    wm, tsum = prepare_weights(w_packed, channels, lane)
    hp_n, wp_n = h_n + 2 * ph, w_n + 2 * pw
    hq_n, wq_n = (hp_n + sh - 1) // sh, (wp_n + sw - 1) // sw
    tail = ((kw - 1) * dw) // sw + 1
    xflat = np.zeros((n_b, nw, sh * sw, hq_n * wq_n + tail), dtype=lane.dtype)
    # Zero padding: the padded taps were packed as +1, which added sum_c w[co, c, tap] for each; the border
    # pixels (bh[b], bw[b]) get corr[b, co] = the sum of those tap sums, computed once per call.
    row_out = np.zeros((ho_n, kh), dtype=np.bool_)
    col_out = np.zeros((wo_n, kw), dtype=np.bool_)
    nb = 0
    if pad_value == 0:
        _taps_outside(row_out, sh, dh, ph, h_n)
        _taps_outside(col_out, sw, dw, pw, w_n)
    rb = np.zeros(ho_n, dtype=np.bool_)       # rows / columns with a padded tap (taps are monotone in i, j)
    cb = np.zeros(wo_n, dtype=np.bool_)
    ncb = 0
    if pad_value == 0:
        for ho in range(ho_n):
            rb[ho] = row_out[ho, 0] or row_out[ho, kh - 1]
        for wo in range(wo_n):
            cb[wo] = col_out[wo, 0] or col_out[wo, kw - 1]
            ncb += cb[wo]
        for ho in range(ho_n):
            nb += wo_n if rb[ho] else ncb
    bh = np.empty(nb, dtype=np.int64)
    bw = np.empty(nb, dtype=np.int64)
    corr = np.zeros((nb, co_n), dtype=np.int32)
    if nb:
        # Border pixels share few padding patterns (3x3, pad 1: top / none / bottom rows x left / none / right
        # columns): one correction vector per (row pattern, column pattern), then a lookup per border pixel.
        rp, row_pats, nrp = _patterns(row_out)
        cp, col_pats, ncp = _patterns(col_out)
        table = np.zeros((nrp, ncp, co_n), dtype=np.int32)
        for a in range(nrp):
            for c in range(ncp):
                for i in range(kh):
                    for j in range(kw):
                        if row_pats[a, i] or col_pats[c, j]:
                            for co in range(co_n):
                                table[a, c, co] += tsum[co, i * kw + j]
        cols = np.empty(ncb, dtype=np.int64)
        c = 0
        for wo in range(wo_n):
            if cb[wo]:
                cols[c] = wo
                c += 1
        b = 0
        for ho in range(ho_n):
            if rb[ho]:
                for wo in range(wo_n):
                    bh[b] = ho
                    bw[b] = wo
                    b += 1
            else:
                for wo in cols:
                    bh[b] = ho
                    bw[b] = wo
                    b += 1
        for b in range(nb):
            a, c = rp[bh[b]], cp[bw[b]]
            for co in range(co_n):
                corr[b, co] = table[a, c, co]
    out = np.empty((n_b, co_n, ho_n, wo_n), dtype=np.int32)
    return wm, xflat, bh, bw, corr, out, hp_n, wp_n, hq_n, wq_n


@njit(**_JIT)
def sign_pack_rows(x, zero_neg, channels, ph, pw, sh, sw, pad_word_set, hp_n, wp_n, hq_n, wq_n, xflat, start, stop):
    """Like :func:`pad_input_rows`, but straight from the float activations x (N, C, H, W): the signs are packed
    (set bit = negative, or zero when ``zero_neg``) into the padded polyphase planes with no intermediate
    SPEC 9 array. Returns the number of NaNs seen."""
    n_b, c_n, h_n, w_n = x.shape
    nw = xflat.shape[1]
    buf = np.empty(wp_n, dtype=np.uint64)
    zn = _ONE if zero_neg else _ZERO
    nans = 0
    for r in range(start, stop):
        n = r // hp_n
        hp = r - n * hp_n
        h = hp - ph
        prow = (hp % sh) * sw
        base = (hp // sh) * wq_n
        inside_row = h >= 0 and h < h_n
        for k in range(nw):
            mask = _low_mask(channels - 64 * k)
            padw = mask if pad_word_set else _ZERO
            for wp in range(wp_n):
                buf[wp] = padw
            if inside_row:
                for w in range(w_n):
                    buf[pw + w] = _ZERO
                for c in range(64 * k, min(channels, 64 * k + 64)):
                    shift = np.uint64(c - 64 * k)
                    for w in range(np.uint64(0), np.uint64(w_n)):
                        v = x[n, c, h, w]
                        neg = np.uint64(v < 0) | (zn & np.uint64(v == 0))
                        buf[np.uint64(pw) + w] |= neg << shift
                        nans += np.int64(v != v)
            pc = 0
            qc = 0
            for wp in range(wp_n):
                xflat[n, k, prow + pc, base + qc] = buf[wp]
                pc += 1
                if pc == sw:
                    pc = 0
                    qc += 1
    return nans


@njit(**_JIT)
def sign_conv_serial(x, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane, zero_neg):
    """sign(x) packed and XNOR-convolved in one call: (N, C_out, Ho, Wo) int32 and the NaN count."""
    xs = np.empty((x.shape[0], x.shape[2], x.shape[3], w_packed.shape[3]), dtype=np.uint64)   # shape only
    wm, xflat, bh, bw, corr, out, hp_n, wp_n, hq_n, wq_n = conv_setup(
        xs, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane)
    k_bits = channels * w_packed.shape[1] * w_packed.shape[2]
    nans = sign_pack_rows(x, zero_neg, channels, ph, pw, sh, sw, pad_value < 0, hp_n, wp_n, hq_n, wq_n, xflat, 0,
                          x.shape[0] * hp_n)
    xnor_conv_planes(xflat, wm, k_bits, wq_n, sh, sw, dh, dw, bh, bw, corr, out, 0, out.shape[0] * out.shape[1])
    return out, nans


@njit(parallel=True, **_JIT)
def sign_conv_parallel(x, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane, zero_neg, chunks):
    """:func:`sign_conv_serial` with the packing and the (n, co) planes split into ``chunks`` parallel parts."""
    xs = np.empty((x.shape[0], x.shape[2], x.shape[3], w_packed.shape[3]), dtype=np.uint64)
    wm, xflat, bh, bw, corr, out, hp_n, wp_n, hq_n, wq_n = conv_setup(
        xs, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane)
    k_bits = channels * w_packed.shape[1] * w_packed.shape[2]
    in_rows = x.shape[0] * hp_n
    nans = 0
    for c in prange(chunks):
        nans += sign_pack_rows(x, zero_neg, channels, ph, pw, sh, sw, pad_value < 0, hp_n, wp_n, hq_n, wq_n, xflat,
                               c * in_rows // chunks, (c + 1) * in_rows // chunks)
    planes = out.shape[0] * out.shape[1]
    for c in prange(chunks):
        xnor_conv_planes(xflat, wm, k_bits, wq_n, sh, sw, dh, dw, bh, bw, corr, out, c * planes // chunks,
                         (c + 1) * planes // chunks)
    return out, nans


@njit(**_JIT)
def xnor_conv_serial(x_packed, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane):
    """The whole XNOR conv in one thread: (N, C_out, Ho, Wo) int32."""
    wm, xflat, bh, bw, corr, out, hp_n, wp_n, hq_n, wq_n = conv_setup(
        x_packed, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane)
    k_bits = channels * w_packed.shape[1] * w_packed.shape[2]
    pad_input_rows(x_packed, channels, ph, pw, sh, sw, pad_value < 0, hp_n, wp_n, hq_n, wq_n, xflat, 0,
                   x_packed.shape[0] * hp_n)
    xnor_conv_planes(xflat, wm, k_bits, wq_n, sh, sw, dh, dw, bh, bw, corr, out, 0, out.shape[0] * out.shape[1])
    return out


@njit(parallel=True, **_JIT)
def xnor_conv_parallel(x_packed, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane, chunks):
    """The XNOR conv with the padding and the (n, co) planes split into ``chunks`` parallel parts."""
    wm, xflat, bh, bw, corr, out, hp_n, wp_n, hq_n, wq_n = conv_setup(
        x_packed, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane)
    k_bits = channels * w_packed.shape[1] * w_packed.shape[2]
    in_rows = x_packed.shape[0] * hp_n
    for c in prange(chunks):
        pad_input_rows(x_packed, channels, ph, pw, sh, sw, pad_value < 0, hp_n, wp_n, hq_n, wq_n, xflat,
                       c * in_rows // chunks, (c + 1) * in_rows // chunks)
    planes = out.shape[0] * out.shape[1]
    for c in prange(chunks):
        xnor_conv_planes(xflat, wm, k_bits, wq_n, sh, sw, dh, dw, bh, bw, corr, out, c * planes // chunks,
                         (c + 1) * planes // chunks)
    return out


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
