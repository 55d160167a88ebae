"""The noise module (Eq. 13) and the quantizer (Eq. 14) on activations (B, C, H, W), straight from NCHW.

SEMANTICS 3 views an activation as B*H*W rows of length C (one per pixel). The generic path transposes to rows and
back; here every product is computed in place from the NCHW layout instead, with the pixel index innermost
(contiguous, vectorised) and the hidden width m = max(1, C // 64) (1 for C < 128) in the middle:
  h[b, j, p]  = sum_c t[b, c, p] W1[c, j]                      (pre-activation of the hidden layer)
  fc[b, c, p] = sum_j relu(h)[b, j, p] W2[j, c]                 (formed inside the output loop, never stored)
  dh[b, j, p] = (sum_c g[b, c, p] W2[j, c]) * 1[h > 0]
  dT[b, c, p] = sum_j dh[b, j, p] W1[c, j]                      (inside the output loop)
  dW1[c, j]   = sum_{b, p} t[b, c, p] dh[b, j, p];   dW2[j, c] = sum_{b, p} relu(h)[b, j, p] g[b, c, p]
Reductions accumulate in float64. Parallel over the batch (products) or the channels (weight gradients).
"""
from __future__ import annotations

import math
import os

import numpy as np
from numba import njit, prange

from ._elementwise import BIG, any_big, est_scalar, fda_point, sin_quadrant

_CACHE = os.environ.get("FDAREF_NUMBA_NOCACHE") != "1"
_JIT = dict(cache=_CACHE, error_model="numpy")


@njit(parallel=True, **_JIT)
def hidden(t, w1, relu, h):
    """h[b, j, p] = sum_c t[b, c, p] w1[c, j] (relu applied when ``relu``); h is (B, m, P) float64."""
    b_n, c_n, p_n = t.shape
    m = w1.shape[1]
    for b in prange(b_n):
        for j in range(m):
            for p in range(np.uint64(0), np.uint64(p_n)):
                h[b, j, p] = 0.0
            for c in range(c_n):
                wv = np.float64(w1[c, j])
                for p in range(np.uint64(0), np.uint64(p_n)):
                    h[b, j, p] += np.float64(t[b, c, p]) * wv
            if relu:
                for p in range(np.uint64(0), np.uint64(p_n)):
                    if h[b, j, p] < 0:
                        h[b, j, p] = 0.0


@njit(inline="always", **_JIT)
def _mix(hr, w, b, c, transposed, buf):
    """buf[p] = sum_j hr[b, j, p] w[j, c] (``transposed``: w[c, j]); j outer, p inner, so it vectorises."""
    m = hr.shape[1]
    p_n = hr.shape[2]
    for p in range(np.uint64(0), np.uint64(p_n)):
        buf[p] = 0.0
    for j in range(m):
        wv = np.float64(w[c, j]) if transposed else np.float64(w[j, c])
        for p in range(np.uint64(0), np.uint64(p_n)):
            buf[p] += hr[b, j, p] * wv


@njit(**_JIT)
def _forward_row(tv, fc, ov, zero, alpha, eta_kind, a):
    """One (b, c) row: ov = sign(tv) + alpha (fc + eta(tv)), or fc + eta(tv) when zero is NaN. A separate
    (non-parallel) function with one branch-free loop per eta kind: LLVM vectorises it, which it did not do
    for the same loop written inside the prange body."""
    p_n = tv.shape[0]
    bare = zero != zero
    k = 1.0 if bare else alpha
    s_on = 0.0 if bare else 1.0
    zv = 0.0 if bare else zero          # (zero = NaN only marks the bare forward; 0 * NaN would leak)
    if eta_kind == 0:
        for p in range(np.uint64(0), np.uint64(p_n)):
            v = np.float64(tv[p])
            sv = sin_quadrant(v, 0.0)
            e = fc[p] + a * (0.0 if ((abs(v) > BIG) & (abs(v) < np.inf)) else sv)
            sg = np.float64(v > 0) - np.float64(v < 0)
            sg = zv if v == 0 else sg
            sg = v if v != v else sg
            ov[p] = s_on * sg + k * e
        if any_big(tv, 0, p_n):
            for p in range(p_n):
                v = np.float64(tv[p])
                if abs(v) > BIG and abs(v) < np.inf:
                    ov[p] = np.float64(ov[p]) + k * (a * math.sin(v))
    else:
        ak = a if eta_kind == 1 else 0.0
        for p in range(np.uint64(0), np.uint64(p_n)):
            v = np.float64(tv[p])
            e = fc[p] + ak * v
            sg = np.float64(v > 0) - np.float64(v < 0)
            sg = zv if v == 0 else sg
            sg = v if v != v else sg
            ov[p] = s_on * sg + k * e


@njit(parallel=True, **_JIT)
def forward_out(t, hr, w2, zero, alpha, eta_kind, a, out):
    """out = sign(t) + alpha (fc + eta(t)), or fc + eta(t) when zero is NaN (the bare noise forward)."""
    b_n, c_n, p_n = t.shape
    for bc in prange(b_n * c_n):
        b = bc // c_n
        c = bc - b * c_n
        fc = np.empty(p_n)
        _mix(hr, w2, b, c, False, fc)
        _forward_row(t[b, c], fc, out[b, c], zero, alpha, eta_kind, a)


@njit(parallel=True, **_JIT)
def hidden_grad(g, w2, h, dh):
    """dh[b, j, p] = (sum_c g[b, c, p] w2[j, c]) * 1[h[b, j, p] > 0]."""
    b_n, c_n, p_n = g.shape
    m = w2.shape[0]
    for b in prange(b_n):
        for j in range(m):
            for p in range(np.uint64(0), np.uint64(p_n)):
                dh[b, j, p] = 0.0
            for c in range(c_n):
                wv = np.float64(w2[j, c])
                for p in range(np.uint64(0), np.uint64(p_n)):
                    dh[b, j, p] += np.float64(g[b, c, p]) * wv
            for p in range(np.uint64(0), np.uint64(p_n)):
                if not h[b, j, p] > 0:
                    dh[b, j, p] = 0.0


@njit(**_JIT)
def _backward_row(gr, trow, dt_, orow, alpha, eta_kind, a, est_code, beta, n, omega, clip, m_, np1, c6, scale):
    """One (b, c) row of :func:`backward_dt` (a separate function so that LLVM vectorises its loops)."""
    p_n = trow.shape[0]
    ak = a if eta_kind == 1 else 0.0
    if est_code == -1 and eta_kind == 0:
        # Two simple loops instead of one: each vectorises on its own (1.6x faster than the fused loop).
        for p in range(np.uint64(0), np.uint64(p_n)):
            dt_[p] = alpha * dt_[p] + np.float64(gr[p]) * fda_point(trow[p], m_, np1, c6, scale, omega, clip)
        for p in range(np.uint64(0), np.uint64(p_n)):
            gv = np.float64(gr[p])
            v = np.float64(trow[p])
            cv = sin_quadrant(v, 1.0)
            orow[p] = dt_[p] + alpha * (gv * (a * (0.0 if ((abs(v) > BIG) & (abs(v) < np.inf)) else cv)))
    elif est_code == -1:
        for p in range(np.uint64(0), np.uint64(p_n)):
            gv = np.float64(gr[p])
            orow[p] = gv * fda_point(trow[p], m_, np1, c6, scale, omega, clip) + alpha * (dt_[p] + gv * ak)
    else:
        for p in range(p_n):
            gv = np.float64(gr[p])
            v = np.float64(trow[p])
            d = 0.0 if est_code == -2 else gv * est_scalar(v, est_code, beta, n, omega, clip)
            e = dt_[p]
            if eta_kind == 0:
                cv = sin_quadrant(v, 1.0)
                e += gv * (a * (0.0 if ((abs(v) > BIG) & (abs(v) < np.inf)) else cv))
            else:
                e += gv * ak
            orow[p] = d + alpha * e
    if eta_kind == 0 and any_big(trow, 0, p_n):
        for p in range(p_n):
            v = np.float64(trow[p])
            if abs(v) > BIG and abs(v) < np.inf:
                orow[p] = np.float64(orow[p]) + alpha * (np.float64(gr[p]) * (a * math.cos(v)))


@njit(parallel=True, **_JIT)
def backward_dt(g, t, dh, w1, alpha, eta_kind, a, est_code, beta, n, omega, clip, m_, np1, c6, scale, out):
    """out = g est'(t) + alpha (dT + g eta'(t)) with dT[b, c, p] = sum_j dh[b, j, p] w1[c, j]; est = fda when
    ``est_code`` == -1, none when -2."""
    b_n, c_n, p_n = t.shape
    for bc in prange(b_n * c_n):
        b = bc // c_n
        c = bc - b * c_n
        dt_ = np.empty(p_n)
        _mix(dh, w1, b, c, True, dt_)
        _backward_row(g[b, c], t[b, c], dt_, out[b, c], alpha, eta_kind, a, est_code, beta, n, omega, clip, m_,
                      np1, c6, scale)


@njit(parallel=True, **_JIT)
def weight_grads(t, g, h, dh, dw1, dw2):
    """dw1[c, j] = sum_{b,p} t[b, c, p] dh[b, j, p];  dw2[j, c] = sum_{b,p} relu(h)[b, j, p] g[b, c, p].

    Per-pixel partial sums (one lane per p, summed at the end) instead of one scalar accumulator: without
    fastmath LLVM may not reorder a scalar sum, but lane-wise updates vectorise."""
    b_n, c_n, p_n = t.shape
    m = h.shape[1]
    for c in prange(c_n):
        s1 = np.zeros(p_n)
        s2 = np.zeros(p_n)
        for j in range(m):
            s1[:] = 0.0
            s2[:] = 0.0
            for b in range(b_n):
                for p in range(np.uint64(0), np.uint64(p_n)):
                    hv = h[b, j, p]
                    s1[p] += np.float64(t[b, c, p]) * dh[b, j, p]
                    s2[p] += (hv if hv > 0 else 0.0) * np.float64(g[b, c, p])
            dw1[c, j] = s1.sum()
            dw2[j, c] = s2.sum()
