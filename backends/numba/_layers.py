"""Numba kernels for the float layers: im2col / col2im for conv (the GEMMs go to BLAS through numpy),
batch norm statistics and normalisation, max / average pooling. Parallel over independent planes or rows,
except the conv kernels: those are serial and release the GIL, because the conv runs whole batch chunks
(im2col, GEMM, col2im) on Python threads, one core each (see ``ops.py``). Fastmath off;
``error_model="numpy"`` (no ZeroDivisionError branches, so loops vectorise)."""
from __future__ import annotations

import math
import os

import numpy as np
from numba import njit, prange

_CACHE = os.environ.get("FDAREF_NUMBA_NOCACHE") != "1"
_JIT = dict(cache=_CACHE, error_model="numpy")


# ------------------------------------------------------------------------------------------------------
# conv: cols[(c*kh + i)*kw + j, n*P + ho*Wo + wo] = x_pad[n, c, ho*sh + i*dh, wo*sw + j*dw]

@njit(inline="always", **_JIT)
def _inside(j, dw, pw, sw, w_n, wo_n):
    """The output columns wo whose input column wo*sw - pw + j*dw lies inside [0, W): [lo, hi)."""
    start = pw - j * dw                           # wo*sw >= start
    lo = 0 if start <= 0 else (start + sw - 1) // sw
    top = w_n - 1 + pw - j * dw                   # wo*sw <= top
    hi = 0 if top < 0 else min(wo_n, top // sw + 1)
    return lo, max(lo, hi)


@njit(nogil=True, **_JIT)
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, ho_n, wo_n, pad_value, cols):
    """cols[(c*kh + i)*kw + j, n*P + ho*Wo + wo] = x_pad[n, c, ho*sh + i*dh, wo*sw + j*dw]; the in-bounds run of
    each output row is a plain (strided) copy, the padding a fill."""
    n_b, c_n, h_n, w_n = x.shape
    p_n = ho_n * wo_n
    for row in range(c_n * kh * kw):
        c = row // (kh * kw)
        rem = row - c * kh * kw
        i = rem // kw
        j = rem - i * kw
        lo, hi = _inside(j, dw, pw, sw, w_n, wo_n)
        w0 = j * dw - pw
        for n in range(n_b):
            base = n * p_n
            for ho in range(ho_n):
                h = ho * sh - ph + i * dh
                o = base + ho * wo_n
                if h < 0 or h >= h_n:
                    for wo in range(wo_n):
                        cols[row, o + wo] = pad_value
                    continue
                for wo in range(lo):
                    cols[row, o + wo] = pad_value
                uo = np.uint64(o)
                uw0 = np.uint64(w0 + lo * sw)
                usw = np.uint64(sw)
                for k in range(np.uint64(0), np.uint64(hi - lo)):
                    cols[row, uo + np.uint64(lo) + k] = x[n, c, h, uw0 + k * usw]
                for wo in range(hi, wo_n):
                    cols[row, o + wo] = pad_value


@njit(nogil=True, **_JIT)
def col2im(dcols, n_b, c_n, h_n, w_n, kh, kw, sh, sw, ph, pw, dh, dw, ho_n, wo_n, dx):
    """dx[n, c] = sum over taps of the column gradients that read it (padding gets nothing)."""
    p_n = ho_n * wo_n
    for plane in range(n_b * c_n):
        n = plane // c_n
        c = plane - n * c_n
        for hh in range(h_n):
            for ww in range(np.uint64(0), np.uint64(w_n)):
                dx[n, c, hh, ww] = 0.0
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                lo, hi = _inside(j, dw, pw, sw, w_n, wo_n)
                w0 = j * dw - pw
                for ho in range(ho_n):
                    h = ho * sh - ph + i * dh
                    if h < 0 or h >= h_n:
                        continue
                    uo = np.uint64(n * p_n + ho * wo_n + lo)
                    uw0 = np.uint64(w0 + lo * sw)
                    usw = np.uint64(sw)
                    for k in range(np.uint64(0), np.uint64(hi - lo)):
                        dx[n, c, h, uw0 + k * usw] += dcols[row, uo + k]


@njit(nogil=True, **_JIT)
def cn_to_nc(y, n_b, out):
    """(C, N*P) -> (N, C, P)."""
    c_n, total = y.shape
    p_n = total // n_b
    for nc in range(n_b * c_n):
        n = nc // c_n
        c = nc - n * c_n
        base = np.uint64(n * p_n)
        for p in range(np.uint64(0), np.uint64(p_n)):
            out[n, c, p] = y[c, base + p]


@njit(nogil=True, **_JIT)
def nc_to_cn(g, out):
    """(N, C, P) -> (C, N*P)."""
    n_b, c_n, p_n = g.shape
    for nc in range(n_b * c_n):
        n = nc // c_n
        c = nc - n * c_n
        base = np.uint64(n * p_n)
        for p in range(np.uint64(0), np.uint64(p_n)):
            out[c, base + p] = g[n, c, p]


@njit(nogil=True, **_JIT)
def add_bias_ncp(out, b):
    n_b, c_n, p_n = out.shape
    for nc in prange(n_b * c_n):
        n = nc // c_n
        c = nc - n * c_n
        bv = b[c]
        for p in range(p_n):
            out[n, c, p] += bv


# ------------------------------------------------------------------------------------------------------
# batch norm on (N, C, S); statistics accumulate in float64.

# The channel sums keep one float64 partial sum per position s (summed at the end): without fastmath LLVM
# may not reorder a scalar accumulation, so a single accumulator runs one add per 4 cycles; lane-wise
# updates vectorise (3-4x faster here).

@njit(parallel=True, **_JIT)
def bn_stats(x, mean, var):
    """Per-channel mean and biased variance (two passes, float64 accumulators)."""
    n_b, c_n, s_n = x.shape
    m = n_b * s_n
    for c in prange(c_n):
        lanes = np.zeros(s_n)
        for n in range(n_b):
            for s in range(s_n):
                lanes[s] += x[n, c, s]
        mu = lanes.sum() / m
        lanes[:] = 0.0
        for n in range(n_b):
            for s in range(s_n):
                d = x[n, c, s] - mu
                lanes[s] += d * d
        mean[c] = mu
        var[c] = lanes.sum() / m


@njit(parallel=True, **_JIT)
def bn_apply(x, mean, invstd, gamma, beta, y):
    n_b, c_n, s_n = x.shape
    for nc in prange(n_b * c_n):
        n = nc // c_n
        c = nc - n * c_n
        mu = mean[c]
        k = invstd[c] * gamma[c]
        bb = beta[c]
        for s in range(s_n):
            y[n, c, s] = (x[n, c, s] - mu) * k + bb


@njit(parallel=True, **_JIT)
def bn_grad_sums(g, x, mean, invstd, sum_g, sum_gx):
    """sum_g[c] = sum g, sum_gx[c] = sum g * xhat (float64, lane-wise partial sums as in :func:`bn_stats`)."""
    n_b, c_n, s_n = x.shape
    for c in prange(c_n):
        lanes_g = np.zeros(s_n)
        lanes_gx = np.zeros(s_n)
        mu = mean[c]
        for n in range(n_b):
            for s in range(s_n):
                gv = np.float64(g[n, c, s])
                lanes_g[s] += gv
                lanes_gx[s] += gv * (x[n, c, s] - mu)
        sum_g[c] = lanes_g.sum()
        sum_gx[c] = lanes_gx.sum() * invstd[c]


@njit(parallel=True, **_JIT)
def bn_dx(g, x, mean, invstd, gamma, sum_g, sum_gx, training, dx):
    n_b, c_n, s_n = x.shape
    m = n_b * s_n
    for nc in prange(n_b * c_n):
        n = nc // c_n
        c = nc - n * c_n
        k = gamma[c] * invstd[c]
        if training:
            mg = sum_g[c] / m
            mgx = sum_gx[c] / m
            mu = mean[c]
            inv = invstd[c]
            for s in range(s_n):
                xh = (x[n, c, s] - mu) * inv
                dx[n, c, s] = k * (g[n, c, s] - mg - xh * mgx)
        else:
            for s in range(s_n):
                dx[n, c, s] = k * g[n, c, s]


# ------------------------------------------------------------------------------------------------------
# pooling on (N*C, H, W) planes

@njit(parallel=True, **_JIT)
def max_pool_fwd(x, kh, kw, sh, sw, ph, pw, out, arg):
    """Window max (padding = -inf) and the flat index of the FIRST maximal element (-1: none finite)."""
    planes, h_n, w_n = x.shape
    _, ho_n, wo_n = out.shape
    for pl in prange(planes):
        for ho in range(ho_n):
            for wo in range(wo_n):
                best = -np.inf
                bi = -1
                nan_seen = False
                for i in range(kh):
                    h = ho * sh - ph + i
                    if h < 0 or h >= h_n:
                        continue
                    for j in range(kw):
                        w = wo * sw - pw + j
                        if w < 0 or w >= w_n:
                            continue
                        v = x[pl, h, w]
                        if nan_seen:
                            continue
                        if v != v:
                            best = v
                            bi = h * w_n + w
                            nan_seen = True
                        elif v > best or bi < 0:
                            best = v
                            bi = h * w_n + w
                out[pl, ho, wo] = best
                arg[pl, ho, wo] = bi


@njit(parallel=True, **_JIT)
def max_pool_bwd(g, arg, h_n, w_n, dx):
    planes, ho_n, wo_n = g.shape
    for pl in prange(planes):
        for k in range(h_n * w_n):
            dx[pl, k // w_n, k % w_n] = 0.0
        for ho in range(ho_n):
            for wo in range(wo_n):
                a = arg[pl, ho, wo]
                if a >= 0:
                    dx[pl, a // w_n, a % w_n] += g[pl, ho, wo]


@njit(parallel=True, **_JIT)
def avg_pool_fwd(x, kh, kw, sh, sw, ph, pw, out):
    planes, h_n, w_n = x.shape
    _, ho_n, wo_n = out.shape
    inv = 1.0 / (kh * kw)
    for pl in prange(planes):
        for ho in range(ho_n):
            for wo in range(wo_n):
                acc = 0.0
                for i in range(kh):
                    h = ho * sh - ph + i
                    if h < 0 or h >= h_n:
                        continue
                    for j in range(kw):
                        w = wo * sw - pw + j
                        if w >= 0 and w < w_n:
                            acc += x[pl, h, w]
                out[pl, ho, wo] = acc * inv


@njit(parallel=True, **_JIT)
def avg_pool_bwd(g, kh, kw, sh, sw, ph, pw, dx):
    planes, ho_n, wo_n = g.shape
    _, h_n, w_n = dx.shape
    inv = 1.0 / (kh * kw)
    for pl in prange(planes):
        for h in range(h_n):
            for w in range(w_n):
                dx[pl, h, w] = 0.0
        for ho in range(ho_n):
            for wo in range(wo_n):
                gv = g[pl, ho, wo] * inv
                for i in range(kh):
                    h = ho * sh - ph + i
                    if h < 0 or h >= h_n:
                        continue
                    for j in range(kw):
                        w = wo * sw - pw + j
                        if w >= 0 and w < w_n:
                            dx[pl, h, w] += gv


# ------------------------------------------------------------------------------------------------------
# (B, C, P) <-> rows (B*P, C) for the activation layout of the noise module (SEMANTICS 3)

@njit(parallel=True, **_JIT)
def bcp_to_rows(t, out):
    b_n, c_n, p_n = t.shape
    for b in prange(b_n):
        for c in range(c_n):
            for p in range(p_n):
                out[b * p_n + p, c] = t[b, c, p]


# ------------------------------------------------------------------------------------------------------
# PReLU on (N, C, P) with a slope per channel (or one shared: slope of length 1)

@njit(**_JIT)
def _prelu_row(xr, s, yr):
    for p in range(np.uint64(0), np.uint64(xr.shape[0])):
        v = xr[p]
        yr[p] = v if v > 0 else s * v


@njit(parallel=True, **_JIT)
def prelu_fwd(x, slope, y):
    n_b, c_n, p_n = x.shape
    shared = slope.shape[0] == 1
    for nc in prange(n_b * c_n):
        n = nc // c_n
        c = nc - n * c_n
        _prelu_row(x[n, c], slope[0] if shared else slope[c], y[n, c])


@njit(**_JIT)
def _prelu_grad_row(gr, xr, s, dxr):
    acc = 0.0
    for p in range(np.uint64(0), np.uint64(xr.shape[0])):
        v = xr[p]
        gv = gr[p]
        dxr[p] = gv if v > 0 else s * gv
        acc += 0.0 if v > 0 else np.float64(gv) * np.float64(v)
    return acc


@njit(parallel=True, **_JIT)
def prelu_bwd(g, x, slope, dx, dslope_nc):
    """dx, and dslope contributions per (n, c) row (float64) for the caller to reduce."""
    n_b, c_n, p_n = x.shape
    shared = slope.shape[0] == 1
    for nc in prange(n_b * c_n):
        n = nc // c_n
        c = nc - n * c_n
        dslope_nc[nc] = _prelu_grad_row(g[n, c], x[n, c], slope[0] if shared else slope[c], dx[n, c])
