"""Bit packing and XNOR-popcount kernels (SPEC 9 layout: uint64 words, bit j of word w = element 64 w + j,
a set bit means -1, unused bits 0).

For ``a, b`` in {-1, +1}^K packed as bits, a . b = K - 2 popcount(a XOR b).

The binary conv works on padded "polyphase planes" of the packed input in a lane dtype just wide enough for
C (uint8 / 16 / 32 / 64; see :func:`pad_input_rows`): each output plane (n, co) is one long vectorised loop
over extended rows that sums the tap popcounts (:func:`xnor_plane`). The inference path
(:func:`sign_conv_serial` / :func:`sign_conv_parallel`) packs the float activations straight into those
planes, image by image, and convolves each image while it is in cache. Padding:
- pad value -1 / +1: padded taps are ordinary bits (all set / all clear), the result is exact as is;
- pad value 0: padded taps are packed as +1 (clear bits), which adds sum_c w[co, c, tap] per padded tap; that
  correction (C - 2 popcount(w tap), precomputed per (co, tap)) is subtracted again at the border pixels, so
  the result equals the float conv with zeros in the padding exactly.
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


@intrinsic
def or_bit(typingctx, word, flag, shift):
    """word | (flag << shift) in the width of the unsigned ``word`` (flag a bool, 0 <= shift < width): packing
    signs into uint8 / 16 / 32 lanes then vectorises at that width (numba would widen it to 64 bits)."""
    if not (isinstance(word, types.Integer) and not word.signed and isinstance(flag, types.Boolean)
            and isinstance(shift, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        w, f, s = args
        ty = w.type
        if s.type.width > ty.width:
            s = builder.trunc(s, ty)
        elif s.type.width < ty.width:
            s = builder.zext(s, ty)
        return builder.or_(w, builder.shl(builder.zext(f, ty), s))
    return word(word, flag, shift), codegen


@intrinsic
def dot_of(typingctx, k_bits, count):
    """k_bits - 2 count as int32 (the +-1 dot product from a popcount), computed in 32 bits: ``count`` (an
    unsigned lane-width sum of popcounts) is zero-extended, not widened to 64 bits as numba would."""
    if not (k_bits == types.int32 and isinstance(count, types.Integer) and not count.signed):
        return None

    def codegen(context, builder, signature, args):
        import llvmlite.ir as ir
        k, c = args
        i32 = ir.IntType(32)
        if c.type.width > 32:
            c = builder.trunc(c, i32)
        elif c.type.width < 32:
            c = builder.zext(c, i32)
        return builder.sub(k, builder.shl(c, ir.Constant(i32, 1)))
    return types.int32(k_bits, count), codegen


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
def _finish_plane(ext, wq_n, bh, bw, corr, co, o):
    """o (Ho, Wo) = the dot products of the extended plane ``ext`` (Ho x Wq, int32; columns >= Wo are
    discarded), minus the zero-padding correction ``corr[b, co]`` at the border pixels (bh[b], bw[b])."""
    ho_n, wo_n = o.shape
    for ho in range(ho_n):
        orow = o[ho]
        erow = ext[ho * wq_n:]
        for wo in range(np.uint64(0), np.uint64(wo_n)):
            orow[wo] = erow[wo]
    for b in range(bh.shape[0]):
        o[bh[b], bw[b]] -= corr[b, co]


@njit(inline="always", **_JIT)
def _taps_s1(xr, w, r1, c1, k32, acc, run):
    """acc[q] = K - 2 sum of the nine 3x3 tap popcounts at stride 1 over one word's padded plane ``xr`` (tap
    (i, j) at offset i * r1 + j * c1), summed in the lane's own width (a lane of b bits sums to at most 9 b,
    which fits b bits for b >= 8). Unsigned indices: no negative-index wraparound, so the loads stay contiguous
    vectors (VPOPCNTW / D / Q). Inlined, like :func:`xnor_plane`: as calls, the per-plane argument passing and
    reference counting cost about as much as the taps themselves (measured: the serial conv took half the
    time once inlined)."""
    w0, w1, w2 = w[0, 0], w[0, 1], w[0, 2]
    w3, w4, w5 = w[1, 0], w[1, 1], w[1, 2]
    w6, w7, w8 = w[2, 0], w[2, 1], w[2, 2]
    r2 = r1 + r1
    c2 = c1 + c1
    for q in range(np.uint64(0), np.uint64(run)):
        t = add_n(add_n(add_n(xorpop_n(xr[q], w0), xorpop_n(xr[q + c1], w1)),
                        add_n(xorpop_n(xr[q + c2], w2), xorpop_n(xr[q + r1], w3))),
                  add_n(add_n(xorpop_n(xr[q + r1 + c1], w4), xorpop_n(xr[q + r1 + c2], w5)),
                        add_n(add_n(xorpop_n(xr[q + r2], w6), xorpop_n(xr[q + r2 + c1], w7)),
                              xorpop_n(xr[q + r2 + c2], w8))))
        acc[q] = dot_of(k32, t)


@njit(inline="always", **_JIT)
def _taps_s2(e0, e1, e2, e3, w, qw, k32, acc, run):
    """Like :func:`_taps_s1` for 3x3 at stride 2 over the four polyphase planes e0 (even row, even column),
    e1 (even, odd), e2 (odd, even), e3 (odd, odd) of row width ``qw``."""
    q1 = np.uint64(1)
    w00, w01, w02 = w[0, 0], w[0, 1], w[0, 2]
    w10, w11, w12 = w[1, 0], w[1, 1], w[1, 2]
    w20, w21, w22 = w[2, 0], w[2, 1], w[2, 2]
    for q in range(np.uint64(0), np.uint64(run)):
        t = add_n(add_n(add_n(xorpop_n(e0[q], w00), xorpop_n(e0[q + q1], w02)),
                        add_n(xorpop_n(e0[q + qw], w20), xorpop_n(e0[q + qw + q1], w22))),
                  add_n(add_n(xorpop_n(e1[q], w01), xorpop_n(e1[q + qw], w21)),
                        add_n(add_n(xorpop_n(e2[q], w10), xorpop_n(e2[q + q1], w12)),
                              xorpop_n(e3[q], w11))))
        acc[q] = dot_of(k32, t)


@njit(inline="always", **_JIT)
def xnor_plane(xf, wm, co, k32, wq_n, sh, sw, dh, dw, bh, bw, corr, o, acc):
    """One output plane o = out[n, co] (Ho, Wo) from the padded polyphase planes xf = xflat[n]
    (words, sh * sw, Hq * Wq + tail): K - 2 sum_taps popcount(x_pad XOR w) (- the zero-padding correction).

    Every tap is ONE contiguous run over a polyphase plane ("extended rows" of width Wq; the Wq - Wo extra
    columns per row are computed and discarded), so the innermost loop is long and vectorises whatever the
    stride (per output row it would be 8 to 32 pixels, too short for the vector loop). ``acc`` is an int32
    scratch run of Ho * Wq. With ONE word (C <= 64, every resnet20 layer) the nine 3x3 popcounts are summed in
    the lane's own width and turned into the int32 dot product in the same pass."""
    nw = xf.shape[0]
    co_n, kh, kw, _ = wm.shape
    run = o.shape[0] * wq_n
    one_word = nw == 1
    if one_word and sh == 1 and sw == 1 and kh == 3 and kw == 3:
        _taps_s1(xf[0, 0], wm[co, :, :, 0], np.uint64(dh * wq_n), np.uint64(dw), k32, acc, run)
    elif one_word and sh == 2 and sw == 2 and kh == 3 and kw == 3 and dh == 1 and dw == 1:
        # 3x3 / stride 2 (the downsampling convs): the nine taps over the four polyphase planes, one pass
        _taps_s2(xf[0, 0], xf[0, 1], xf[0, 2], xf[0, 3], wm[co, :, :, 0], np.uint64(wq_n), k32, acc, run)
    else:
        # general case (several words, other kernels / strides / dilations): the int32 popcount total in
        # ``acc``, then the dot product
        for q in range(run):
            acc[q] = 0
        if sh == 1 and sw == 1 and kh == 3 and kw == 3:   # 3x3 / stride 1, C > 64: nine taps per pass
            r1 = np.uint64(dh * wq_n)
            r2 = np.uint64(2 * dh * wq_n)
            c1 = np.uint64(dw)
            c2 = np.uint64(2 * dw)
            for k in range(nw):
                w0, w1, w2 = wm[co, 0, 0, k], wm[co, 0, 1, k], wm[co, 0, 2, k]
                w3, w4, w5 = wm[co, 1, 0, k], wm[co, 1, 1, k], wm[co, 1, 2, k]
                w6, w7, w8 = wm[co, 2, 0, k], wm[co, 2, 1, k], wm[co, 2, 2, k]
                xr = xf[k, 0]
                for q in range(np.uint64(0), np.uint64(run)):
                    acc[q] += (xorpop(xr[q], w0) + xorpop(xr[q + c1], w1)
                               + xorpop(xr[q + c2], w2) + xorpop(xr[q + r1], w3)
                               + xorpop(xr[q + r1 + c1], w4) + xorpop(xr[q + r1 + c2], w5)
                               + xorpop(xr[q + r2], w6) + xorpop(xr[q + r2 + c1], w7)
                               + xorpop(xr[q + r2 + c2], w8))
            kh = 0    # done: skip the tap loop below
        for i in range(kh):
            for j in range(kw):
                row, col = i * dh, j * dw
                phase = (row % sh) * sw + col % sw
                off = np.uint64((row // sh) * wq_n + col // sw)
                for k in range(nw):
                    wv = wm[co, i, j, k]
                    xr = xf[k, phase]
                    for q in range(np.uint64(0), np.uint64(run)):
                        acc[q] += xorpop(xr[q + off], wv)
        for q in range(np.uint64(0), np.uint64(run)):
            acc[q] = k32 - np.int32(2) * acc[q]
    _finish_plane(acc, wq_n, bh, bw, corr, co, o)


@njit(**_JIT)
def xnor_conv_planes(xflat, wm, k_bits, wq_n, sh, sw, dh, dw, bh, bw, corr, out, start, stop):
    """(n, co) planes [start, stop) of the output, see :func:`xnor_plane`."""
    co_n = wm.shape[0]
    run = out.shape[2] * wq_n
    acc = np.empty(run, dtype=np.int32)
    k32 = np.int32(k_bits)
    for pair in range(start, stop):
        n = pair // co_n
        co = pair - n * co_n
        xnor_plane(xflat[n], wm, co, k32, wq_n, sh, sw, dh, dw, bh, bw, corr, out[n, co], acc)


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
def sign_pack_image(x, n, zero_neg, channels, ph, pw, sh, sw, pad_word_set, hp_n, wp_n, wq_n, xf, dense, nan):
    """Like :func:`pad_input_rows` for image n, but straight from the float activations x (N, C, H * W) into its
    padded polyphase planes xf = xflat[n]: bit c % 64 of word c // 64 is set where x[n, c] < 0 (or == 0 with
    ``zero_neg``), with no intermediate SPEC 9 array. The bits are first ORed into ``dense`` (H * W lanes of the
    lane dtype) one whole channel plane at a time: one long loop per channel that vectorises at the lane width
    (per-row loops of 8 to 32 pixels would not). nan[0] gets bit 0 set if a NaN was seen (NaN has no sign;
    the caller raises)."""
    hw = x.shape[2]
    h_n, w_n = hp_n - 2 * ph, wp_n - 2 * pw
    nw = xf.shape[0]
    f = nan[0]
    for k in range(nw):
        for i in range(hw):
            dense[i] = 0
        for c in range(64 * k, min(channels, 64 * k + 64)):
            bit = c - 64 * k
            xr = x[n, c]
            # two loops rather than a test per element; v != v is the NaN check, an OR reduction
            if zero_neg:
                for i in range(np.uint64(0), np.uint64(hw)):
                    v = xr[i]
                    dense[i] = or_bit(dense[i], v <= 0, bit)
                    f = or_bit(f, v != v, 0)
            else:
                for i in range(np.uint64(0), np.uint64(hw)):
                    v = xr[i]
                    dense[i] = or_bit(dense[i], v < 0, bit)
                    f = or_bit(f, v != v, 0)
        mask = _low_mask(channels - 64 * k)
        padw = mask if pad_word_set else _ZERO
        for hp in range(hp_n):
            h = hp - ph
            prow = (hp % sh) * sw
            base = (hp // sh) * wq_n
            inside = h >= 0 and h < h_n
            if sw == 1:
                dst = xf[k, prow, base:base + wp_n]
                if inside:
                    src = dense[h * w_n:(h + 1) * w_n]
                    for wp in range(pw):
                        dst[wp] = padw
                    mid = dst[pw:pw + w_n]
                    for w in range(np.uint64(0), np.uint64(w_n)):
                        mid[w] = src[w]
                    for wp in range(pw + w_n, wp_n):
                        dst[wp] = padw
                else:
                    for wp in range(wp_n):
                        dst[wp] = padw
            else:
                pc = 0          # wp % sw and wp // sw, kept incrementally (no integer division per pixel)
                qc = 0
                for wp in range(wp_n):
                    w = wp - pw
                    if inside and w >= 0 and w < w_n:
                        xf[k, prow + pc, base + qc] = dense[h * w_n + w]
                    else:
                        xf[k, prow + pc, base + qc] = padw
                    pc += 1
                    if pc == sw:
                        pc = 0
                        qc += 1
    nan[0] = f


@njit(**_JIT)
def sign_conv_images(x, zero_neg, channels, ph, pw, sh, sw, dh, dw, pad_word_set, hp_n, wp_n, wq_n, wm, k32, bh, bw,
                     corr, xflat, out, start, stop):
    """Images [start, stop) of the fused sign + pack + XNOR conv, each packed and then convolved while its
    planes are still in L1. Returns 1 if a NaN was seen, else 0."""
    dense = np.empty(x.shape[2], dtype=xflat.dtype)
    nan = np.zeros(1, dtype=np.uint8)
    acc = np.empty(out.shape[2] * wq_n, dtype=np.int32)
    for n in range(start, stop):
        sign_pack_image(x, n, zero_neg, channels, ph, pw, sh, sw, pad_word_set, hp_n, wp_n, wq_n, xflat[n], dense,
                        nan)
        for co in range(out.shape[1]):
            xnor_plane(xflat[n], wm, co, k32, wq_n, sh, sw, dh, dw, bh, bw, corr, out[n, co], acc)
    return np.int64(nan[0] != 0)


@njit(**_JIT)
def sign_conv_serial(x, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane, zero_neg):
    """sign(x) packed and XNOR-convolved in one call: (N, C_out, Ho, Wo) int32 and 1 if x holds a NaN else 0."""
    xs = np.empty((x.shape[0], x.shape[2], x.shape[3], w_packed.shape[3]), dtype=np.uint64)   # shape only
    wm, xflat, bh, bw, corr, out, hp_n, wp_n, hq_n, wq_n = conv_setup(
        xs, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane)
    k32 = np.int32(channels * w_packed.shape[1] * w_packed.shape[2])
    x = x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])     # channel planes as flat runs
    nans = sign_conv_images(x, zero_neg, channels, ph, pw, sh, sw, dh, dw, pad_value < 0, hp_n, wp_n, wq_n, wm, k32,
                            bh, bw, corr, xflat, out, 0, x.shape[0])
    return out, nans


@njit(parallel=True, **_JIT)
def sign_conv_parallel(x, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane, zero_neg, chunks):
    """:func:`sign_conv_serial` in ``chunks`` parallel parts: whole images per part when the batch has at least
    ``chunks`` images (one parallel region, no shared data), else the signs packed first and the (n, co)
    planes split."""
    xs = np.empty((x.shape[0], x.shape[2], x.shape[3], w_packed.shape[3]), dtype=np.uint64)
    wm, xflat, bh, bw, corr, out, hp_n, wp_n, hq_n, wq_n = conv_setup(
        xs, w_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, lane)
    k32 = np.int32(channels * w_packed.shape[1] * w_packed.shape[2])
    n_b = x.shape[0]
    x = x.reshape(n_b, x.shape[1], x.shape[2] * x.shape[3])     # channel planes as flat runs
    nans = 0
    if n_b >= chunks:
        found = 0
        for c in prange(chunks):
            found += sign_conv_images(x, zero_neg, channels, ph, pw, sh, sw, dh, dw, pad_value < 0, hp_n, wp_n, wq_n,
                                     wm, k32, bh, bw, corr, xflat, out, c * n_b // chunks, (c + 1) * n_b // chunks)
        nans = found
    else:
        dense = np.empty(x.shape[2], dtype=xflat.dtype)
        nan = np.zeros(1, dtype=np.uint8)
        for n in range(n_b):
            sign_pack_image(x, n, zero_neg, channels, ph, pw, sh, sw, pad_value < 0, hp_n, wp_n, wq_n, xflat[n],
                            dense, nan)
        nans = np.int64(nan[0] != 0)
        planes = out.shape[0] * out.shape[1]
        for c in prange(chunks):
            xnor_conv_planes(xflat, wm, k32, wq_n, sh, sw, dh, dw, bh, bw, corr, out, c * planes // chunks,
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
