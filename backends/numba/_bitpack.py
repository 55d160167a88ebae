"""Bit packing and XNOR-popcount kernels (SEMANTICS 9 layout: uint64 words, bit j of word w = element 64 w + j,
a set bit means -1, unused bits 0).

For ``a, b`` in {-1, +1}^K packed as bits, a . b = K - 2 popcount(a XOR b).

The binary conv works on "tap planes" of the padded, packed input in a lane dtype just wide enough for C
(uint8 / 16 / 32 / 64; see the section comment above :func:`plane_geometry`): every kernel tap is one
contiguous run in the output's flat layout, so each output plane (n, co) is one long vectorised loop that sums
the tap popcounts (:func:`xnor_plane`). The inference path
(:func:`sign_conv_serial` / :func:`sign_conv_parallel`) packs the float activations straight into those
planes, image by image, and convolves each image while it is in cache. The weights in the lane dtype and the
border table (:func:`prepare_weights`, :func:`border_table`) are computed once per layer and input size by the
caller (``ops.XnorConv2d``), not on every call. Padding:
- pad value -1 / +1: padded taps are ordinary bits (all set / all clear), the result is exact as is;
- pad value 0: padded taps are packed as +1 (clear bits), which adds sum_c w[co, c, tap] per padded tap; that
  correction (C - 2 popcount(w tap) per (co, tap)) is subtracted again at the border pixels through the
  border table, so the result equals the float conv with zeros in the padding exactly.
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
def as_int32(typingctx, count):
    """An integer count as int32: zero-extended from a narrower unsigned lane, truncated from a wider one (it fits),
    as is when 32 bits wide (numba would widen a uint16 to int64 and halve the vector width of the loop)."""
    if not isinstance(count, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        import llvmlite.ir as ir
        (c,) = args
        i32 = ir.IntType(32)
        if c.type.width > 32:
            return builder.trunc(c, i32)
        if c.type.width < 32:
            return builder.zext(c, i32)
        return c
    return types.int32(count), codegen


@intrinsic
def wide_vectors(typingctx):
    """Emits no code: marks the compiled function it ends up in (kernels that call it are inlined) with
    "prefer-vector-width"="512", so that LLVM vectorises its loops with 512-bit vectors. LLVM's default on AVX-512
    server CPUs is 256 bits, which halves the lanes of every tap loop (measured: the 3x3 tap loops 1.4x faster
    with 512). Where 512-bit vectors are not legal the attribute changes nothing. llvmlite's attribute set only
    admits a fixed list of names, hence the plain set.add; if that ever fails the code is merely slower."""
    def codegen(context, builder, signature, args):
        try:
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        except Exception:   # pragma: no cover - depends on llvmlite internals
            pass
        return context.get_dummy_value()
    return types.none(), codegen


@njit(inline="always", **_JIT)
def _low_mask(nbits):
    """The lowest ``nbits`` (1..64) bits set."""
    if nbits >= 64:
        return _ALL
    return (_ONE << np.uint64(nbits)) - _ONE


# ------------------------------------------------------------------------------------------------------
# pack_signs on a (outer, C, inner) view -> (outer, inner, words)

@njit(**_JIT)
def pack_axis_range(x, zero_neg, out, start, stop):
    """Outer indices [start, stop): bit c of out[o, i] is set where x[o, c, i] < 0 (or == 0 when ``zero_neg``).
    ``out`` starts zeroed. Returns the number of NaNs seen (the caller refuses to pack NaN), counted in the same
    pass."""
    wide_vectors()
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


# ------------------------------------------------------------------------------------------------------
# XNOR conv2d
#
# Layout. Per image and word, the padded input is stored as "tap planes" in the lane dtype (the smallest of
# uint8 / 16 / 32 / 64 that holds C bits): xf (words, sh, kw, L), where plane (a, j) row r, column wo holds the
# padded pixel (r sh + a, wo sw + j dw). Every plane row is Wo wide, so kernel tap (i, j) of output pixel
# q = ho Wo + wo is plane ((i dh) % sh, j) at q + ((i dh) // sh) Wo: each tap is ONE contiguous run in the
# output's own flat layout, whatever the stride or dilation. The tap loop (into a lane-dtype scratch run) and
# the finish (into the flat output plane) are long loops over Ho Wo, rounded up to whole 64-byte vectors, with
# no per-row loop (rows of 8 to 32 pixels are too short for the vector loop) and no extra columns. A 3x3 kernel
# costs 3 (stride 1) or 6 (stride 2) planes per word instead of 1: small copies, made once per image while the
# signs are packed.
#
# Per layer and input size, computed once by the caller and reused (:func:`prepare_weights`,
# :func:`border_table`):
#   wm   (C_out, kh, kw, words)  the weights in the lane dtype, unused bits cleared;
#   base (C_out, Ho Wo) int32    K = C kh kw minus the zero-padding correction of each output pixel;
# and out[n, co] = base[co] - 2 (popcount total) (:func:`_finish_plane`).

@njit(inline="always", **_JIT)
def plane_geometry(h_n, kh, sh, ph, dh, ho_n, wo_n, itemsize):
    """(Hp, run, L): the padded height, the tap loops' run (Ho Wo rounded up to whole 64-byte vectors, so that no
    scalar remainder loop runs; the extra lanes are computed and dropped) and the tap plane length L (Hq rows of
    Wo, Hq = ceil(Hp / sh), plus that rounding)."""
    hp_n = h_n + 2 * ph
    vl = 64 // itemsize
    run = (ho_n * wo_n + vl - 1) // vl * vl
    return hp_n, run, (hp_n + sh - 1) // sh * wo_n + vl


@njit(**_JIT)
def prepare_weights(w_packed, channels, lane):
    """(C_out, kh, kw, words) -> the weights with unused bits cleared, in the lane dtype of ``lane`` (uint8 / 16 /
    32 when C fits, else uint64), and the per-tap sums sum_c w[co, c, tap] = C - 2 popcount(tap) as
    (C_out, kh * kw) int64 (for the zero-padding correction)."""
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
def _taps_outside(out, s, d, p, n):
    """out[o, i] = whether tap i of output o (input index o*s + i*d - p) falls in the padding of a length-n axis."""
    for o in range(out.shape[0]):
        for i in range(out.shape[1]):
            v = o * s + i * d - p
            out[o, i] = v < 0 or v >= n


@njit(**_JIT)
def border_table(tsum, channels, kh, kw, h_n, w_n, sh, sw, ph, pw, dh, dw, ho_n, wo_n, zero_pad):
    """base (C_out, Ho Wo) int32 with out[n, co] = base[co] - 2 popcount total.

    base holds K = C kh kw and, with zero padding (``zero_pad``), minus the correction: padded taps are packed as
    +1 (clear bits), which adds sum_c w[co, c, tap] = tsum[co, tap] for every tap of (ho, wo) in the padding;
    subtracting those again makes the result the float conv with zeros in the padding, exactly. With pad -1 /
    +1 the padded taps are ordinary bits and base is K everywhere. The correction of (ho, wo) is the sum over the
    kernel rows in the padding plus the sum over the kernel columns in the padding, minus the taps counted twice
    (both: only at the corners), so the table costs one pass over the output plane per channel."""
    co_n = tsum.shape[0]
    k_bits = channels * kh * kw
    base = np.empty((co_n, ho_n * wo_n), dtype=np.int32)
    if not zero_pad:
        base[:] = k_bits
        return base
    row_out = np.zeros((ho_n, kh), dtype=np.bool_)
    col_out = np.zeros((wo_n, kw), dtype=np.bool_)
    _taps_outside(row_out, sh, dh, ph, h_n)
    _taps_outside(col_out, sw, dw, pw, w_n)
    rsum = np.zeros((co_n, ho_n), dtype=np.int32)       # taps of the kernel rows in the padding
    csum = np.zeros((co_n, wo_n), dtype=np.int32)       # taps of the kernel columns in the padding
    for ho in range(ho_n):
        for i in range(kh):
            if row_out[ho, i]:
                for j in range(kw):
                    for co in range(co_n):
                        rsum[co, ho] += tsum[co, i * kw + j]
    for wo in range(wo_n):
        for j in range(kw):
            if col_out[wo, j]:
                for i in range(kh):
                    for co in range(co_n):
                        csum[co, wo] += tsum[co, i * kw + j]
    uwo = np.uint64(wo_n)
    for co in range(co_n):          # (no slices here: creating one per row costs more than the row)
        bc, cc = base[co], csum[co]
        for ho in range(ho_n):
            r = k_bits - rsum[co, ho]
            o = np.uint64(ho) * uwo
            for wo in range(np.uint64(0), uwo):
                bc[o + wo] = r - cc[wo]
    for ho in range(ho_n):          # the corners: taps in both a padded row and a padded column, counted twice
        for i in range(kh):
            if not row_out[ho, i]:
                continue
            for wo in range(wo_n):
                for j in range(kw):
                    if col_out[wo, j]:
                        for co in range(co_n):
                            base[co, ho * wo_n + wo] += tsum[co, i * kw + j]
    return base


@njit(**_JIT)
def conv_tables(w_packed, channels, lane, h_n, w_n, sh, sw, ph, pw, dh, dw, ho_n, wo_n, zero_pad):
    """(wm, base) of :func:`prepare_weights` and :func:`border_table` in one compiled call (the per-call paths
    rebuild them on every call; one call instead of two saves a dispatch and the boxing of tsum)."""
    wm, tsum = prepare_weights(w_packed, channels, lane)
    return wm, border_table(tsum, channels, w_packed.shape[1], w_packed.shape[2], h_n, w_n, sh, sw, ph, pw, dh, dw,
                            ho_n, wo_n, zero_pad)


@njit(inline="always", **_JIT)
def _rows_to_planes(rows, mask, padw, ph, pw, sh, sw, dw, planes, wo_n):
    """The input image rows (H, W) (& mask), padded with ph rows / pw columns of padw, into its tap planes
    planes (sh, kw, L) (see the section comment): planes[hp % sh, j, (hp // sh) Wo + wo] = padded[hp, wo sw + j dw]
    for wo < Wo. Per plane and row the interior is one strided copy. Written with unsigned flat indices, bounds
    computed once per plane and the row phase kept incrementally: slicing and integer divisions per row cost
    more than the 8 to 32 words a row copies."""
    h_n, w_n = rows.shape
    kw, plane = planes.shape[1], planes.shape[2]
    flat = planes.reshape(-1)
    u0 = np.uint64(0)
    usw = np.uint64(sw)
    for j in range(kw):
        # interior columns: 0 <= wo sw + j dw - pw < W  <=>  lo <= wo < hi
        lo = min(wo_n, max(0, (pw - j * dw + sw - 1) // sw))
        hi = max(lo, min(wo_n, (pw - j * dw + w_n + sw - 1) // sw))
        first = np.uint64(max(0, lo * sw + j * dw - pw))
        ulo, uhi, uwo = np.uint64(lo), np.uint64(hi), np.uint64(wo_n)
        a = 0           # hp % sh, and the flat start of row hp // sh of plane (a, j)
        row0 = np.uint64(j * plane)
        step = np.uint64(kw * plane)
        for hp in range(h_n + 2 * ph):
            o = row0 + np.uint64(a) * step
            h = hp - ph
            if h >= 0 and h < h_n:
                src = rows[h]
                for q in range(u0, ulo):
                    flat[o + q] = padw
                for q in range(u0, uhi - ulo):
                    flat[o + ulo + q] = src[first + q * usw] & mask
                for q in range(uhi, uwo):
                    flat[o + q] = padw
            else:
                for q in range(u0, uwo):
                    flat[o + q] = padw
            a += 1
            if a == sh:
                a = 0
                row0 += uwo


@njit(inline="always", **_JIT)
def _dense_to_planes_same(dense, h_n, ph, pw, dw, padw, planes):
    """Stride 1 with Wo = W ("same" padding, e.g. 3x3 pad 1): the tap planes (kw, L) straight from the packed
    image ``dense`` (H W,). Plane j is ``dense`` shifted by j dw - pw columns: one flat copy of the whole image,
    then the |j dw - pw| columns per row that the shift wraps into the neighbouring row set to padding, and the
    ph padding rows above and below. Per-row copies cost about as much as packing the signs (rows of 8 to 32
    words, three planes each)."""
    hw = dense.shape[0]
    w_n = hw // h_n
    top = ph * w_n
    for j in range(planes.shape[0]):
        plane = planes[j]
        shift = j * dw - pw                 # plane[top + q] = dense[q + shift], q = h W + wo
        for q in range(top):
            plane[q] = padw
        lo = max(0, -shift)
        hi = max(lo, min(hw, hw - shift))
        d = plane[top + lo:top + hi]
        s = dense[lo + shift:hi + shift]
        for q in range(np.uint64(0), np.uint64(hi - lo)):
            d[q] = s[q]
        for h in range(h_n):                # the columns whose shifted source lies outside the row
            row = plane[top + h * w_n:top + (h + 1) * w_n]
            for wo in range(min(w_n, max(0, -shift))):
                row[wo] = padw
            for wo in range(max(0, w_n - shift), w_n):
                row[wo] = padw
        for q in range(top + hw, top + hw + top):
            plane[q] = padw


@njit(**_JIT)
def pad_input_image(x_packed, n, channels, sh, sw, ph, pw, dw, pad_set, wo_n, xf):
    """Image n of the SEMANTICS 9 input (N, H, W, words) into its tap planes xf (words, sh, kw, L) (see the section
    comment). Padding holds all-set bits (pad -1, ``pad_set``) or clear bits (pad 0 / +1); unused bits of the
    last word are cleared."""
    for k in range(xf.shape[0]):
        mask = _low_mask(channels - 64 * k)
        _rows_to_planes(x_packed[n, :, :, k], mask, mask if pad_set else _ZERO, ph, pw, sh, sw, dw, xf[k], wo_n)


@njit(**_JIT)
def sign_pack_image(x, n, zero_neg, channels, h_n, sh, sw, ph, pw, dw, pad_set, wo_n, xf, dense):
    """Like :func:`pad_input_image`, but straight from the float activations x (N, C, H * W): bit c % 64 of word
    c // 64 is set where x[n, c] < 0 (or == 0 with ``zero_neg``), with no intermediate SEMANTICS 9 array. The bits are
    first ORed into ``dense`` (H * W lanes of the lane dtype) one whole channel plane at a time: one long loop
    per channel that vectorises at the lane width (per-row loops of 8 to 32 pixels would not). Returns 1 if a
    NaN was seen (NaN has no sign; the caller raises), else 0."""
    wide_vectors()
    hw = x.shape[2]
    w_n = hw // h_n
    nw = xf.shape[0]
    f = np.uint8(0)
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
        padw = mask if pad_set else _ZERO
        if sh == 1 and sw == 1 and wo_n == w_n:
            _dense_to_planes_same(dense, h_n, ph, pw, dw, padw, xf[k, 0])
            continue
        _rows_to_planes(dense.reshape(h_n, w_n), mask, padw, ph, pw, sh, sw, dw, xf[k], wo_n)
    return np.int64(f != 0)


@njit(inline="always", **_JIT)
def _taps3x3(p00, p01, p02, p10, p11, p12, p20, p21, p22, o0, o1, o2, w, t, run):
    """t[q] = the sum of the nine 3x3 tap popcounts popcount(p_ij[q + o_i] XOR w[i, j]) for one word (tap planes
    p_ij, row offsets o_i), summed AND stored in the lane's own width (a lane of b bits sums to at most 9 b, which
    fits b bits for b >= 8): with no wider type in the loop, LLVM vectorises it at the full lane count (32
    uint16 per 512-bit vector; an int32 store in this loop halves that, the regression of 4d91bc5). Unsigned
    indices: no negative-index wraparound, so the loads stay contiguous vectors (VPOPCNTB / W / D / Q). Inlined
    (as calls, the per-plane argument passing and reference counting cost about as much as the taps)."""
    wide_vectors()
    w0, w1, w2 = w[0, 0], w[0, 1], w[0, 2]
    w3, w4, w5 = w[1, 0], w[1, 1], w[1, 2]
    w6, w7, w8 = w[2, 0], w[2, 1], w[2, 2]
    for q in range(np.uint64(0), np.uint64(run)):
        q0, q1, q2 = q + o0, q + o1, q + o2
        t[q] = add_n(add_n(add_n(xorpop_n(p00[q0], w0), xorpop_n(p01[q0], w1)),
                           add_n(xorpop_n(p02[q0], w2), xorpop_n(p10[q1], w3))),
                     add_n(add_n(xorpop_n(p11[q1], w4), xorpop_n(p12[q1], w5)),
                           add_n(add_n(xorpop_n(p20[q2], w6), xorpop_n(p21[q2], w7)),
                                 xorpop_n(p22[q2], w8))))


@njit(inline="always", **_JIT)
def _taps_general(xf, wm, co, wo_n, sh, dh, acc, run):
    """acc[q] (int32) = the popcount total over every tap and word, for any kernel, stride, dilation or number of
    words (a lane-width sum could overflow here)."""
    wide_vectors()
    _, kh, kw, nw = wm.shape
    for q in range(run):
        acc[q] = 0
    for i in range(kh):
        a = (i * dh) % sh
        off = np.uint64((i * dh) // sh * wo_n)
        for j in range(kw):
            for k in range(nw):
                wv = wm[co, i, j, k]
                xr = xf[k, a, j]
                for q in range(np.uint64(0), np.uint64(run)):
                    acc[q] += xorpop(xr[q + off], wv)


@njit(inline="always", **_JIT)
def _finish_plane(count, base, o):
    """o[q] = base[q] - 2 count[q] for the Ho Wo pixels of one flat output plane: the dot products, zero-padding
    correction included (``base`` = this output channel's row of :func:`border_table`)."""
    wide_vectors()
    for q in range(np.uint64(0), np.uint64(o.shape[0])):
        o[q] = base[q] - (as_int32(count[q]) << np.int32(1))


@njit(**_JIT)
def _plane_general(xf, wm, co, wo_n, sh, dh, base, o, acc):
    """:func:`xnor_plane` for any other kernel or several words, through the int32 popcount totals. A call, not
    inlined: inlined next to the 3x3 path it made the resnet20 convs 2 to 9x slower (measured), though it never
    ran there."""
    _taps_general(xf, wm, co, wo_n, sh, dh, acc, acc.shape[0])
    _finish_plane(acc, base[co], o)


@njit(inline="always", **_JIT)
def xnor_plane(xf, wm, co, wo_n, sh, dh, base, o, t, acc):
    """One flat output plane o = out[n, co] (Ho Wo,) from the tap planes xf (words, sh, kw, L) of image n:
    K - 2 sum_taps popcount(x_pad XOR w), zero-padding correction included. ``t`` (lane dtype) and ``acc``
    (int32) are scratch runs. With ONE word (C <= 64, every resnet20 layer) and a 3x3 kernel the nine popcounts
    are summed in the lane's own width, in one pass, whatever the stride or dilation."""
    _, kh, kw, nw = wm.shape
    run = t.shape[0]
    if nw == 1 and kh == 3 and kw == 3:
        r0, r1, r2 = xf[0, 0], xf[0, dh % sh], xf[0, (2 * dh) % sh]      # kernel row i: planes (i dh % sh, j)
        o1, o2 = np.uint64(dh // sh * wo_n), np.uint64(2 * dh // sh * wo_n)
        _taps3x3(r0[0], r0[1], r0[2], r1[0], r1[1], r1[2], r2[0], r2[1], r2[2], np.uint64(0), o1, o2,
                 wm[co, :, :, 0], t, run)
        _finish_plane(t, base[co], o)
    else:
        _plane_general(xf, wm, co, wo_n, sh, dh, base, o, acc)


@njit(**_JIT)
def xnor_conv_planes(xflat, wm, wo_n, sh, dh, run, base, out, start, stop):
    """(n, co) planes [start, stop) of the flat output out (N, C_out, Ho Wo) from the tap planes of every image
    xflat (N, words, sh, kw, L), see :func:`xnor_plane`."""
    co_n = wm.shape[0]
    t = np.empty(run, dtype=wm.dtype)
    acc = np.empty(run, dtype=np.int32)
    for pair in range(start, stop):
        n = pair // co_n
        co = pair - n * co_n
        xnor_plane(xflat[n], wm, co, wo_n, sh, dh, base, out[n, co], t, acc)


@njit(**_JIT)
def xnor_image(xf, wm, wo_n, sh, dh, base, out_n, t, acc):
    """Every output plane out_n (C_out, Ho Wo) of one image from its tap planes xf, see :func:`xnor_plane`. A
    function of its own rather than a loop inside :func:`sign_conv_images`: compiled together with the packing
    loop, the same code ran 1.5 to 2x slower (measured; LLVM optimises the plane loop differently there)."""
    for co in range(wm.shape[0]):
        xnor_plane(xf, wm, co, wo_n, sh, dh, base, out_n[co], t, acc)


@njit(**_JIT)
def sign_conv_images(x, zero_neg, channels, h_n, sh, sw, ph, pw, dh, dw, pad_set, ho_n, wo_n, wm, base, out, start,
                     stop):
    """Images [start, stop) of the fused sign + pack + XNOR conv into the flat output out (N, C_out, Ho Wo), each
    packed into this thread's tap planes and then convolved while they are still in L1. x: (N, C, H * W) float.
    Returns 1 if a NaN was seen, else 0."""
    co_n, kh, kw, nw = wm.shape
    hp_n, run, plane = plane_geometry(h_n, kh, sh, ph, dh, ho_n, wo_n, wm.itemsize)
    xf = np.zeros((nw, sh, kw, plane), dtype=wm.dtype)   # every position a valid pixel reads is rewritten per image
    dense = np.empty(x.shape[2], dtype=wm.dtype)
    t = np.empty(run, dtype=wm.dtype)
    acc = np.empty(run, dtype=np.int32)
    nan = 0
    for n in range(start, stop):
        nan |= sign_pack_image(x, n, zero_neg, channels, h_n, sh, sw, ph, pw, dw, pad_set, wo_n, xf, dense)
        xnor_image(xf, wm, wo_n, sh, dh, base, out[n], t, acc)
    return nan


@njit(**_JIT)
def sign_conv_serial(x, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_set, zero_neg, wm, base):
    """sign(x) packed and XNOR-convolved in one call, with the per-layer tables wm and base (see the section
    comment): x (N, C, H, W) float -> ((N, C_out, Ho, Wo) int32, 1 if x holds a NaN else 0)."""
    n_b, c_n, h_n, w_n = x.shape
    out = np.empty((n_b, wm.shape[0], ho_n * wo_n), dtype=np.int32)
    nans = sign_conv_images(x.reshape(n_b, c_n, h_n * w_n), zero_neg, channels, h_n, sh, sw, ph, pw, dh, dw,
                            pad_set, ho_n, wo_n, wm, base, out, 0, n_b)
    return out.reshape(n_b, wm.shape[0], ho_n, wo_n), nans


@njit(parallel=True, **_JIT)
def sign_conv_parallel(x, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_set, zero_neg, wm, base, chunks):
    """:func:`sign_conv_serial` on ``chunks`` threads: one image per parallel iteration when the batch has at least
    ``chunks`` images (one parallel region, no shared data), else the signs of every image packed first and the
    (n, co) planes split. Many small parallel iterations rather than one per thread: a thread slowed down by
    another process then does fewer of them (measured on 2 busy cores: 1.1 to 1.3x faster at batch 16)."""
    n_b, c_n, h_n, w_n = x.shape
    co_n, kh, kw, nw = wm.shape
    out = np.empty((n_b, co_n, ho_n * wo_n), dtype=np.int32)
    x = x.reshape(n_b, c_n, h_n * w_n)     # channel planes as flat runs
    nans = 0
    if n_b >= chunks:
        for n in prange(n_b):
            nans += sign_conv_images(x, zero_neg, channels, h_n, sh, sw, ph, pw, dh, dw, pad_set, ho_n, wo_n, wm,
                                     base, out, n, n + 1)
    else:
        hp_n, run, plane = plane_geometry(h_n, kh, sh, ph, dh, ho_n, wo_n, wm.itemsize)
        xflat = np.zeros((n_b, nw, sh, kw, plane), dtype=wm.dtype)
        dense = np.empty(h_n * w_n, dtype=wm.dtype)
        for n in range(n_b):
            nans |= sign_pack_image(x, n, zero_neg, channels, h_n, sh, sw, ph, pw, dw, pad_set, wo_n, xflat[n],
                                    dense)
        planes = n_b * co_n
        parts = min(planes, 8 * chunks)
        for c in prange(parts):
            xnor_conv_planes(xflat, wm, wo_n, sh, dh, run, base, out, c * planes // parts, (c + 1) * planes // parts)
    return out.reshape(n_b, co_n, ho_n, wo_n), nans


@njit(**_JIT)
def xnor_conv_images(x_packed, channels, sh, sw, ph, pw, dh, dw, pad_set, ho_n, wo_n, wm, base, out, start, stop):
    """Images [start, stop) of the XNOR conv of SEMANTICS 9 activations (N, H, W, words) into the flat output out
    (N, C_out, Ho Wo), each copied into this thread's tap planes and then convolved while they are in L1."""
    co_n, kh, kw, nw = wm.shape
    hp_n, run, plane = plane_geometry(x_packed.shape[1], kh, sh, ph, dh, ho_n, wo_n, wm.itemsize)
    xf = np.zeros((nw, sh, kw, plane), dtype=wm.dtype)
    t = np.empty(run, dtype=wm.dtype)
    acc = np.empty(run, dtype=np.int32)
    for n in range(start, stop):
        pad_input_image(x_packed, n, channels, sh, sw, ph, pw, dw, pad_set, wo_n, xf)
        xnor_image(xf, wm, wo_n, sh, dh, base, out[n], t, acc)


@njit(**_JIT)
def xnor_conv_serial(x_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_set, wm, base):
    """The XNOR conv of SEMANTICS 9 activations (N, H, W, words) in one thread: (N, C_out, Ho, Wo) int32."""
    n_b = x_packed.shape[0]
    co_n = wm.shape[0]
    out = np.empty((n_b, co_n, ho_n * wo_n), dtype=np.int32)
    xnor_conv_images(x_packed, channels, sh, sw, ph, pw, dh, dw, pad_set, ho_n, wo_n, wm, base, out, 0, n_b)
    return out.reshape(n_b, co_n, ho_n, wo_n)


@njit(parallel=True, **_JIT)
def xnor_conv_parallel(x_packed, channels, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_set, wm, base, chunks):
    """:func:`xnor_conv_serial` on ``chunks`` threads, split like :func:`sign_conv_parallel`: one image per
    parallel iteration, or at small batch every image's tap planes first and the (n, co) output planes in 8
    parts per thread."""
    n_b, h_n, w_n, _ = x_packed.shape
    co_n, kh, kw, nw = wm.shape
    out = np.empty((n_b, co_n, ho_n * wo_n), dtype=np.int32)
    if n_b >= chunks:
        for n in prange(n_b):
            xnor_conv_images(x_packed, channels, sh, sw, ph, pw, dh, dw, pad_set, ho_n, wo_n, wm, base, out, n,
                             n + 1)
    else:
        hp_n, run, plane = plane_geometry(h_n, kh, sh, ph, dh, ho_n, wo_n, wm.itemsize)
        xflat = np.zeros((n_b, nw, sh, kw, plane), dtype=wm.dtype)
        for n in range(n_b):
            pad_input_image(x_packed, n, channels, sh, sw, ph, pw, dw, pad_set, wo_n, xflat[n])
        planes = n_b * co_n
        parts = min(planes, 8 * chunks)
        for c in prange(parts):
            xnor_conv_planes(xflat, wm, wo_n, sh, dh, run, base, out, c * planes // parts,
                             (c + 1) * planes // parts)
    return out.reshape(n_b, co_n, ho_n, wo_n)


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
