"""The op table written once against an array module ``xp`` (CuPy on the GPU, NumPy as a CPU stand-in).

:class:`ArrayBackend` holds every op of :class:`fdaref.optable.OpTable`. The element-wise hot spots (sign,
the surrogates, the quantizer's fused epilogues) and the XNOR-popcount ops go through a *kernel set*:

- :class:`backends.cupy.cuda_kernels.CudaKernels` on the GPU: ``cupy.ElementwiseKernel`` / ``RawModule``
  built from :mod:`.kernels_src` (one launch, no temporaries: the FDA surrogate is one kernel whatever n);
- :class:`PortableKernels` anywhere: the same arithmetic in ``xp`` expressions. It is what lets the
  shape logic, im2col / col2im, the noise-module GEMMs, batch norm, pooling, the loss and bit packing run
  and be tested on a machine without a GPU (with NumPy as ``xp``). It is a test vehicle, not the GPU path.

GEMMs (linear, conv as im2col + GEMM, the noise module) are ``xp.matmul`` / ``xp.tensordot``: cuBLAS on
CuPy. Convolution is im2col + GEMM rather than cuDNN so that results do not depend on cuDNN's algorithm
choice and no optional library is needed; col2im is a fixed-order sum of kh * kw strided slices
(deterministic, no atomics).

Precision of the float32 FDA kernel: t = omega x, k = rint(t / pi) and r = t - k pi are computed in
double; only the two sines run in float. Numerator and denominator see the same rounded r, so the error
is that of f(r) = sin(M r) / (2 sin r) at a perturbed r (|f'| <= ~M * peak) plus the rounding of M r:
a few float32 ulps of the peak (4 omega / pi)(n+1). float64 inputs run entirely in double, as the reference.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from fdaref import estimators as _est
from fdaref.noise import ETAS, LAYOUTS, row_length

from .geometry import Pair, Window, as_pair, col2im, im2col, reduction_axes, sum_to_shape_axes, words_for
from .kernels_src import ESTIMATOR_IDS, ETA_IDS, FDA_TAYLOR_THRESHOLD

FLOAT_DTYPES = ("float32", "float64")

# The registered implementation behind each device estimator id: a third party that re-registers one of
# these names with replace=True gets the host fallback, never our kernel under its name.
_BUILTIN_GRADS = {
    "fda": _est.fda, "fda_series": _est.fda_series, "ste": _est.ste, "clipped_ste": _est.clipped_ste,
    "approx_sign": _est.approx_sign, "sign_swish": _est.sign_swish, "tanh": _est.tanh,
}

# Ops whose float32 results go through a GEMM (affected by TF32).
GEMM_OPS = frozenset({"noise_forward", "noise_backward", "quantize_forward", "quantize_backward",
                      "conv2d_forward", "conv2d_backward", "linear_forward", "linear_backward"})


def estimator_args(name: str, params: Mapping[str, Any] | None) -> Optional[tuple[int, int, float, int, float]]:
    """Kernel arguments (est id, n, p, clip_on, clip) of a surrogate, or None when it has no device
    implementation (a third party's estimator): the caller then falls back to the host. Parameters are
    validated and completed with their defaults by fdaref's registry."""
    est = _est.get_estimator(name)
    p = est.resolve(params)
    if name not in ESTIMATOR_IDS or est.grad is not _BUILTIN_GRADS[name]:
        return None
    if name in ("fda", "fda_series"):
        clip = p["clip"]
        return ESTIMATOR_IDS[name], int(p["n"]), float(p["omega"]), int(clip is not None), \
            float(clip) if clip is not None else 0.0
    if name in ("sign_swish", "tanh"):
        return ESTIMATOR_IDS[name], 0, float(p["beta"]), 0, 0.0
    return ESTIMATOR_IDS[name], 0, 0.0, 0, 0.0


def eta_id(kind: str) -> int:
    if kind not in ETA_IDS:
        raise ValueError(f"eta: expected one of {', '.join(map(repr, ETAS))}, got {kind!r}")
    return ETA_IDS[kind]


def check_zero(zero: Any) -> float:
    if isinstance(zero, bool) or zero not in (-1, 0, 1):
        raise ValueError(f"zero: expected one of -1.0, 0.0, 1.0, got {zero!r}")
    return float(zero)


def check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(value)):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    return float(value)


class PortableKernels:
    """The fused kernels' arithmetic as ``xp`` expressions (see the module docstring). Mirrors
    :data:`backends.cupy.kernels_src.DEVICE_FUNCTIONS` step for step, including the float32 FDA scheme."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    def _quiet(self) -> Any:
        return np.errstate(all="ignore") if self.xp is np else contextlib.nullcontext()

    def sign(self, x: Any, zero: float) -> Any:
        xp = self.xp
        return xp.where(x == 0, xp.asarray(zero, dtype=x.dtype), xp.sign(x)).astype(x.dtype, copy=False)

    def surrogate(self, x: Any, est: int, n: int, p: float, clip_on: int, clip: float) -> Any:
        xp = self.xp
        T = x.dtype.type
        with self._quiet():
            if est == ESTIMATOR_IDS["fda"]:
                t = x.astype(np.float64) * p
                k = xp.rint(t * (1.0 / math.pi))
                r64 = t - k * math.pi
                odd = xp.fmod(k, 2.0) != 0
                r = r64.astype(x.dtype)
                m = T(2.0 * (n + 1))
                mr = m * r
                taylor = T(n + 1) * (T(1) - (m * m - T(1)) / T(6) * r * r)
                ratio = xp.where(xp.abs(mr) < T(FDA_TAYLOR_THRESHOLD), taylor,
                                 xp.sin(mr) / (T(2) * xp.sin(r)))
                ratio = xp.where(odd, -ratio, ratio) * T(4.0 * p / math.pi)
                out = ratio.astype(x.dtype, copy=False)
            elif est == ESTIMATOR_IDS["fda_series"]:
                t = T(p) * x
                total = xp.zeros_like(x)
                for i in range(n + 1):
                    total += xp.cos(T(2 * i + 1) * t)
                out = T(4.0 * p / math.pi) * total
            elif est == ESTIMATOR_IDS["ste"]:
                out = xp.ones_like(x)
            elif est == ESTIMATOR_IDS["clipped_ste"]:
                out = (xp.abs(x) <= 1).astype(x.dtype)
            elif est == ESTIMATOR_IDS["approx_sign"]:
                ax = xp.abs(x)
                out = xp.where(ax <= 1, T(2) - T(2) * ax, T(0)).astype(x.dtype)
            elif est == ESTIMATOR_IDS["sign_swish"]:
                beta = T(p)
                bx = beta * x
                out = beta * (T(2) - bx * xp.tanh(bx / T(2))) / (T(1) + xp.cosh(bx))
            elif est == ESTIMATOR_IDS["tanh"]:
                beta = T(p)
                out = beta * (T(1) - xp.tanh(beta * x) ** 2)
            else:
                raise ValueError(f"unknown estimator id {est}")
            if clip_on:
                out = xp.where(xp.abs(x) > T(clip), T(0), out)
        return out.astype(x.dtype, copy=False)

    def surrogate_mul(self, g: Any, x: Any, *args: Any) -> Any:
        return g * self.surrogate(x, *args)

    def _eta(self, t: Any, kind: int, a: float, grad: bool) -> Any:
        xp, T = self.xp, t.dtype.type
        if kind == 0:
            return T(a) * (xp.cos(t) if grad else xp.sin(t))
        if kind == 1:
            return xp.full_like(t, T(a)) if grad else T(a) * t
        return xp.zeros_like(t)

    def quant_fwd(self, t: Any, fc: Any, zero: float, alpha: float, eta: int, a: float) -> Any:
        return self.sign(t, zero) + t.dtype.type(alpha) * (fc + self._eta(t, eta, a, False))

    def quant_bwd(self, g: Any, t: Any, dfc: Any, est: int, n: int, p: float, clip_on: int, clip: float,
                  alpha: float, eta: int, a: float) -> Any:
        s = g * self.surrogate(t, est, n, p, clip_on, clip)
        return s + t.dtype.type(alpha) * (dfc + g * self._eta(t, eta, a, True))

    # --- bit-packed ops ---------------------------------------------------------------------------
    def popcount(self, v: Any) -> Any:
        """Bits set per uint64 (SWAR arithmetic, wrap-around multiply), as int64."""
        xp, u = self.xp, np.uint64
        v = v - ((v >> u(1)) & u(0x5555555555555555))
        v = (v & u(0x3333333333333333)) + ((v >> u(2)) & u(0x3333333333333333))
        v = (v + (v >> u(4))) & u(0x0F0F0F0F0F0F0F0F)
        with self._quiet():
            v = (v * u(0x0101010101010101)) >> u(56)
        return v.astype(xp.int64)

    def _clear_stray(self, words: Any, count: int) -> Any:
        """``words`` with the bits beyond ``count`` in the last word cleared (SEMANTICS 11: stray bits never
        change a result; the raw kernels mask them the same way, ``fdaref_used_bits``)."""
        used = count % 64
        if not used:
            return words
        out = words.copy()
        out[..., -1] &= np.uint64((1 << used) - 1)
        return out

    def xnor_conv2d(self, x: Any, w: Any, *, channels: int, win: Window, pad: int) -> Any:
        xp = self.xp
        x, w = self._clear_stray(x, channels), self._clear_stray(w, channels)
        n, h, wd, words = x.shape
        c_out = w.shape[0]
        ho, wo = win.out_shape
        ph, pw = win.padding
        hp, wp = win.padded_shape
        xpad = xp.zeros((n, hp, wp, words), dtype=x.dtype)
        xpad[:, ph:ph + h, pw:pw + wd] = x
        valid = xp.zeros((hp, wp), dtype=bool)
        valid[ph:ph + h, pw:pw + wd] = True
        w_sum = channels - 2 * self.popcount(w).sum(-1)            # sum_c w_c per (C_out, i, j)
        acc = xp.zeros((n, ho, wo, c_out), dtype=xp.int64)
        for i, j, rows, cols in win.offsets():
            xs = xpad[:, rows, cols]                                # (N, Ho, Wo, words)
            diff = self.popcount(xs[:, :, :, None, :] ^ w[None, None, None, :, i, j, :]).sum(-1)
            inside = valid[rows, cols][None, :, :, None]
            acc += xp.where(inside, channels - 2 * diff, pad * w_sum[:, i, j])
        return xp.ascontiguousarray(acc.transpose(0, 3, 1, 2)).astype(xp.int32)

    def xnor_linear(self, x: Any, w: Any, *, features: int) -> Any:
        x, w = self._clear_stray(x, features), self._clear_stray(w, features)
        diff = self.popcount(x[:, None, :] ^ w[None, :, :]).sum(-1)
        return (features - 2 * diff).astype(self.xp.int32)


class ArrayBackend:
    """Every op of the table on ``xp`` arrays; see the module docstring. Subclassed by the CuPy backend."""

    name = "cupy"
    version = "unknown"
    devices: tuple[str, ...] = ("cuda",)
    dtypes: tuple[str, ...] = FLOAT_DTYPES
    allow_tf32 = False

    def __init__(self, xp: Any, kernels: Any) -> None:
        self.xp = xp
        self.k = kernels

    # ---- identity -----------------------------------------------------------------------------------
    def refuses(self, op: str, device: str, dtype: str) -> Optional[str]:
        if not (device == "cuda" or device.startswith("cuda:")):
            return f"the cupy backend runs on CUDA devices ('cuda', 'cuda:N'), not on {device!r}"
        if dtype not in self.dtypes:
            return f"the cupy backend computes in float32 or float64, not {dtype}"
        if self.allow_tf32 and dtype == "float32" and op in GEMM_OPS:
            return ("TF32 GEMMs are enabled (allow_tf32 / CUPY_TF32=1): float32 products keep 10 mantissa bits; "
                    "construct the backend with allow_tf32=False for conformance")
        return None

    # ---- checks -------------------------------------------------------------------------------------
    def _arr(self, x: Any, name: str, ndim: Optional[tuple[int, ...]] = None) -> Any:
        if not isinstance(x, self.xp.ndarray):
            raise TypeError(f"{name}: expected a {self.xp.__name__}.ndarray, got {type(x).__name__}")
        if x.dtype.name not in FLOAT_DTYPES:
            raise TypeError(f"{name}: expected dtype float32 or float64, got {x.dtype}")
        if ndim is not None and x.ndim not in ndim:
            raise ValueError(f"{name}: expected {' or '.join(map(str, ndim))} dimensions, got shape {x.shape}")
        return x

    def _same(self, a: Any, b: Any, an: str, bn: str) -> None:
        if a.shape != b.shape:
            raise ValueError(f"{bn}: expected the shape of {an} {a.shape}, got {b.shape}")
        if a.dtype != b.dtype:
            raise TypeError(f"{bn}: expected the dtype of {an} ({a.dtype}), got {b.dtype}")

    # ---- plumbing -----------------------------------------------------------------------------------
    def from_numpy(self, a: np.ndarray, device: str = "cuda") -> Any:
        return self.xp.array(a, copy=True)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def zeros(self, shape: Sequence[int], like: Any) -> Any:
        return self.xp.zeros(tuple(int(s) for s in shape), dtype=like.dtype)

    def sum_to_shape(self, x: Any, shape: Sequence[int]) -> Any:
        shape = tuple(shape)
        if tuple(x.shape) == shape:
            return x
        axes = sum_to_shape_axes(x.shape, shape)
        return x.sum(axis=axes, keepdims=True).reshape(shape)

    # ---- SEMANTICS 1-2 -----------------------------------------------------------------------------------
    def sign(self, x: Any, zero: float = -1.0) -> Any:
        self._arr(x, "x")
        return self.k.sign(x, check_zero(zero))

    def _host_surrogate(self, x: Any, estimator: str, params: Mapping[str, Any]) -> Any:
        """A registered estimator without a device kernel: computed by fdaref on the host (two copies)."""
        out = _est.estimator_grad(self.to_numpy(x), estimator, **dict(params))
        return self.xp.asarray(out)

    def surrogate(self, x: Any, estimator: str, params: Mapping[str, Any]) -> Any:
        self._arr(x, "x")
        args = estimator_args(estimator, params)
        if args is None:
            return self._host_surrogate(x, estimator, params or {})
        return self.k.surrogate(x, *args)

    # ---- SEMANTICS 3: the noise module --------------------------------------------------------------------
    def _to_rows(self, t: Any, layout: str) -> Any:
        d = row_length(tuple(t.shape), layout)
        if layout == "activation" and t.ndim == 4:
            return self.xp.moveaxis(t, 1, -1).reshape(-1, d)
        return t.reshape(-1, d)

    def _from_rows(self, rows: Any, shape: tuple[int, ...], layout: str) -> Any:
        if layout == "activation" and len(shape) == 4:
            b, c, h, w = shape
            return self.xp.moveaxis(rows.reshape(b, h, w, c), -1, 1)
        return rows.reshape(shape)

    def _check_module(self, t: Any, w1: Any, w2: Any, layout: str, eta_kind: str, a: float) -> None:
        self._arr(t, "t")
        self._arr(w1, "w1", (2,))
        self._arr(w2, "w2", (2,))
        if layout not in LAYOUTS:
            raise ValueError(f"layout: expected one of {', '.join(map(repr, LAYOUTS))}, got {layout!r}")
        eta_id(eta_kind)
        check_real(a, "a")
        d = row_length(tuple(t.shape), layout)
        m = w1.shape[1]
        if w1.shape[0] != d or tuple(w2.shape) != (m, d):
            raise ValueError(f"noise module for rows of length d={d} expects w1 (d, m) and w2 (m, d); "
                             f"got w1 {tuple(w1.shape)}, w2 {tuple(w2.shape)}")

    def _eta(self, t: Any, kind: str, a: float, grad: bool) -> Any:
        xp, T = self.xp, t.dtype.type
        if kind == "sin":
            return T(a) * (xp.cos(t) if grad else xp.sin(t))
        if kind == "linear":
            return xp.full_like(t, T(a)) if grad else T(a) * t
        return xp.zeros_like(t)

    def _fc(self, t: Any, w1: Any, w2: Any, layout: str) -> Any:
        rows = self._to_rows(t, layout)
        h = rows @ w1
        self.xp.maximum(h, 0, out=h)
        return self._from_rows(h @ w2, tuple(t.shape), layout)

    def _fc_backward(self, g: Any, t: Any, w1: Any, w2: Any, layout: str) -> tuple[Any, Any, Any]:
        """(d_t of the FC part, rows^T dh, relu(h)^T G) of relu(T W1) W2, relu'(0) = 0."""
        rows, grows = self._to_rows(t, layout), self._to_rows(g, layout)
        h = rows @ w1
        dh = (grows @ w2.T) * (h > 0)
        d_t = self._from_rows(dh @ w1.T, tuple(t.shape), layout)
        return d_t, rows.T @ dh, self.xp.maximum(h, 0).T @ grows

    def noise_forward(self, t: Any, w1: Any, w2: Any, *, layout: str, eta_kind: str = "sin",
                      a: float = 0.1) -> Any:
        self._check_module(t, w1, w2, layout, eta_kind, a)
        return self._fc(t, w1, w2, layout) + self._eta(t, eta_kind, a, False)

    def noise_backward(self, g: Any, t: Any, w1: Any, w2: Any, *, layout: str, eta_kind: str = "sin",
                       a: float = 0.1) -> tuple[Any, Any, Any]:
        self._check_module(t, w1, w2, layout, eta_kind, a)
        self._arr(g, "g")
        self._same(t, g, "t", "g")
        d_t, dw1, dw2 = self._fc_backward(g, t, w1, w2, layout)
        return d_t + g * self._eta(t, eta_kind, a, True), dw1, dw2

    # ---- SEMANTICS 4: the quantizer -----------------------------------------------------------------------
    def quantize_forward(self, t: Any, w1: Optional[Any], w2: Optional[Any], *, alpha: float,
                         zero: float = -1.0, layout: str = "weight", eta_kind: str = "sin", a: float = 0.1,
                         training: bool = True) -> Any:
        self._arr(t, "t")
        alpha = check_real(alpha, "alpha")
        zero = check_zero(zero)
        if not training or alpha == 0 or w1 is None:
            return self.k.sign(t, zero)
        self._check_module(t, w1, w2, layout, eta_kind, a)
        fc = self._fc(t, w1, w2, layout)
        return self.k.quant_fwd(t, fc, zero, alpha, eta_id(eta_kind), float(a))

    def quantize_backward(self, g: Any, t: Any, w1: Optional[Any], w2: Optional[Any], *, alpha: float,
                          estimator: str = "fda", params: Mapping[str, Any] | None = None,
                          layout: str = "weight", eta_kind: str = "sin", a: float = 0.1
                          ) -> tuple[Any, Optional[Any], Optional[Any]]:
        self._arr(g, "g")
        self._arr(t, "t")
        self._same(t, g, "t", "g")
        alpha = check_real(alpha, "alpha")
        args = estimator_args(estimator, params)
        if w1 is None:
            if args is None:
                return g * self._host_surrogate(t, estimator, params or {}), None, None
            return self.k.surrogate_mul(g, t, *args), None, None
        self._check_module(t, w1, w2, layout, eta_kind, a)
        if alpha == 0:
            dt = g * self._host_surrogate(t, estimator, params or {}) if args is None \
                else self.k.surrogate_mul(g, t, *args)
            return dt, self.xp.zeros_like(w1), self.xp.zeros_like(w2)
        d_t, dw1, dw2 = self._fc_backward(g, t, w1, w2, layout)
        T = t.dtype.type
        if args is None:  # host surrogate, the rest on the device
            s = g * self._host_surrogate(t, estimator, params or {})
            dt = s + T(alpha) * (d_t + g * self._eta(t, eta_kind, a, True))
        else:
            dt = self.k.quant_bwd(g, t, d_t, *args, alpha, eta_id(eta_kind), float(a))
        return dt, T(alpha) * dw1, T(alpha) * dw2

    # ---- SEMANTICS 5 --------------------------------------------------------------------------------------
    def weight_scale(self, w: Any, mode: str = "channel") -> Any:
        self._arr(w, "w", (2, 4))
        xp = self.xp
        if mode == "channel":
            return xp.mean(xp.abs(w), axis=tuple(range(1, w.ndim)), keepdims=True)
        if mode == "layer":
            return xp.mean(xp.abs(w), keepdims=True).reshape((1,) * w.ndim)
        if mode == "none":
            return xp.ones((1,) * w.ndim, dtype=w.dtype)
        raise ValueError(f"scale: expected one of 'channel', 'layer', 'none', got {mode!r}")

    def _conv_window(self, x: Any, w: Any, stride: Pair, padding: Pair, dilation: Pair, pad_value: float) -> Window:
        self._arr(x, "x", (4,))
        self._arr(w, "w", (4,))
        if x.shape[1] != w.shape[1]:
            raise ValueError(f"conv2d: x has {x.shape[1]} channels but w expects {w.shape[1]} (groups = 1)")
        if pad_value not in (0.0, -1.0, 1.0):
            raise ValueError(f"conv2d: pad_value must be 0, -1 or +1 (SEMANTICS 5), got {pad_value!r}")
        if x.dtype != w.dtype:
            raise TypeError(f"conv2d: x is {x.dtype} but w is {w.dtype}")
        return Window(int(x.shape[2]), int(x.shape[3]), (int(w.shape[2]), int(w.shape[3])),
                      as_pair(stride, "stride", minimum=1), as_pair(padding, "padding"),
                      as_pair(dilation, "dilation", minimum=1))

    def _pad(self, x: Any, padding: Pair, value: float) -> Any:
        ph, pw = padding
        if ph == 0 and pw == 0:
            return x
        out = self.xp.full((x.shape[0], x.shape[1], x.shape[2] + 2 * ph, x.shape[3] + 2 * pw),
                           value, dtype=x.dtype)
        out[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x
        return out

    def conv2d_forward(self, x: Any, w: Any, b: Optional[Any], *, stride: Pair = (1, 1),
                       padding: Pair = (0, 0), dilation: Pair = (1, 1), pad_value: float = 0.0) -> Any:
        win = self._conv_window(x, w, stride, padding, dilation, pad_value)
        cols = im2col(self.xp, self._pad(x, win.padding, float(pad_value)), win)   # (N, C k k, L)
        c_out = w.shape[0]
        out = self.xp.matmul(w.reshape(c_out, -1), cols)                           # (N, C_out, L)
        out = out.reshape((x.shape[0], c_out) + win.out_shape)
        if b is not None:
            self._arr(b, "b", (1,))
            out = out + b.reshape(1, c_out, 1, 1)
        return out

    def conv2d_backward(self, g: Any, x: Any, w: Any, *, has_bias: bool, stride: Pair = (1, 1),
                        padding: Pair = (0, 0), dilation: Pair = (1, 1), pad_value: float = 0.0
                        ) -> tuple[Any, Any, Optional[Any]]:
        win = self._conv_window(x, w, stride, padding, dilation, pad_value)
        n, c = x.shape[:2]
        c_out = w.shape[0]
        expect = (n, c_out) + win.out_shape
        self._arr(g, "g", (4,))
        if tuple(g.shape) != expect:
            raise ValueError(f"g: expected shape {expect}, got {tuple(g.shape)}")
        cols = im2col(self.xp, self._pad(x, win.padding, float(pad_value)), win)
        g2 = g.reshape(n, c_out, -1)
        dw = self.xp.tensordot(g2, cols, axes=([0, 2], [0, 2])).reshape(w.shape)
        dcols = self.xp.matmul(w.reshape(c_out, -1).T, g2)                           # (N, C k k, L)
        dxp = col2im(self.xp, dcols, c, win)
        ph, pw = win.padding
        dx = dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]
        if ph or pw:
            dx = self.xp.ascontiguousarray(dx)
        db = g.sum(axis=(0, 2, 3)) if has_bias else None
        return dx, dw, db

    def _linear_args(self, x: Any, w: Any) -> None:
        self._arr(x, "x", (2,))
        self._arr(w, "w", (2,))
        if x.shape[1] != w.shape[1]:
            raise ValueError(f"linear: x has {x.shape[1]} features but w expects {w.shape[1]}")

    def linear_forward(self, x: Any, w: Any, b: Optional[Any]) -> Any:
        self._linear_args(x, w)
        out = x @ w.T
        if b is not None:
            if tuple(self._arr(b, "b", (1,)).shape) != (w.shape[0],):   # never broadcast a (1,) bias
                raise ValueError(f"b: expected shape ({w.shape[0]},) (one per output), got {tuple(b.shape)}")
            out = out + b
        return out

    def linear_backward(self, g: Any, x: Any, w: Any, *, has_bias: bool) -> tuple[Any, Any, Optional[Any]]:
        self._arr(g, "g", (2,))
        self._linear_args(x, w)
        return g @ w, g.T @ x, (g.sum(axis=0) if has_bias else None)

    # ---- float layers -------------------------------------------------------------------------------
    def batch_norm_forward(self, x: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any, *,
                           training: bool, momentum: float = 0.1, eps: float = 1e-5
                           ) -> tuple[Any, Any, Any, Any, Any]:
        self._arr(x, "x", (2, 4))
        xp, T = self.xp, x.dtype.type
        axes = reduction_axes(x.ndim)
        bshape = (1, -1) + (1,) * (x.ndim - 2)
        if training:
            count = x.size // x.shape[1]
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            invstd = T(1) / xp.sqrt(var + T(eps))
            unbiased = var * T(count / max(count - 1, 1))
            m = T(momentum)
            new_mean = (T(1) - m) * running_mean + m * mean
            new_var = (T(1) - m) * running_var + m * unbiased
        else:
            mean, new_mean, new_var = running_mean, running_mean, running_var
            invstd = T(1) / xp.sqrt(running_var + T(eps))
        y = (x - mean.reshape(bshape)) * (invstd * gamma).reshape(bshape) + beta.reshape(bshape)
        return y, mean, invstd, new_mean, new_var

    def batch_norm_backward(self, g: Any, x: Any, gamma: Any, mean: Any, invstd: Any, *, training: bool
                            ) -> tuple[Any, Any, Any]:
        self._arr(g, "g", (2, 4))
        T = x.dtype.type
        axes = reduction_axes(x.ndim)
        bshape = (1, -1) + (1,) * (x.ndim - 2)
        xhat = (x - mean.reshape(bshape)) * invstd.reshape(bshape)
        dbeta = g.sum(axis=axes)
        dgamma = (g * xhat).sum(axis=axes)
        scale = (gamma * invstd).reshape(bshape)
        if not training:
            return g * scale, dgamma, dbeta
        count = T(x.size // x.shape[1])
        dx = scale / count * (count * g - dbeta.reshape(bshape) - xhat * dgamma.reshape(bshape))
        return dx, dgamma, dbeta

    def relu_forward(self, x: Any) -> Any:
        return self.xp.maximum(x, x.dtype.type(0))

    def relu_backward(self, g: Any, x: Any) -> Any:
        return self.xp.where(x > 0, g, g.dtype.type(0))

    def _slope(self, x: Any, slope: Any) -> Any:
        if slope.size == 1:
            return slope.reshape(())
        if slope.ndim != 1 or x.ndim < 2 or slope.shape[0] != x.shape[1]:
            raise ValueError(f"prelu: slope must have shape (1,) or ({x.shape[1] if x.ndim > 1 else '?'},), "
                             f"got {tuple(slope.shape)}")
        return slope.reshape((1, -1) + (1,) * (x.ndim - 2))

    def prelu_forward(self, x: Any, slope: Any) -> Any:
        return self.xp.where(x > 0, x, self._slope(x, slope) * x)

    def prelu_backward(self, g: Any, x: Any, slope: Any) -> tuple[Any, Any]:
        s = self._slope(x, slope)
        pos = x > 0
        dx = self.xp.where(pos, g, s * g)
        contrib = self.xp.where(pos, g.dtype.type(0), g * x)
        if slope.size == 1:
            dslope = contrib.sum().reshape(slope.shape)
        else:
            dslope = contrib.sum(axis=reduction_axes(x.ndim)).reshape(slope.shape)
        return dx, dslope

    def _pool_window(self, x: Any, kernel: Pair, stride: Pair, padding: Pair) -> Window:
        self._arr(x, "x", (4,))
        k = as_pair(kernel, "kernel", minimum=1)
        p = as_pair(padding, "padding")
        if p[0] > k[0] // 2 or p[1] > k[1] // 2:   # SEMANTICS 11: more gives windows of padding only
            raise ValueError(f"pooling: padding {p} is more than half the kernel {k}")
        return Window(int(x.shape[2]), int(x.shape[3]), k, as_pair(stride, "stride", minimum=1), p)

    def _windows(self, padded: Any, win: Window) -> Any:
        n, c = padded.shape[:2]
        kk = win.kernel[0] * win.kernel[1]
        return im2col(self.xp, padded, win).reshape((n, c, kk) + win.out_shape)

    def _unpad_cols(self, cols: Any, x: Any, win: Window) -> Any:
        n, c = x.shape[:2]
        full = col2im(self.xp, cols.reshape(n, -1, win.out_shape[0] * win.out_shape[1]), c, win)
        ph, pw = win.padding
        return self.xp.ascontiguousarray(full[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]])

    def max_pool2d_forward(self, x: Any, *, kernel: Pair, stride: Pair, padding: Pair = (0, 0)) -> Any:
        win = self._pool_window(x, kernel, stride, padding)
        return self._windows(self._pad(x, win.padding, -math.inf), win).max(axis=2)

    def max_pool2d_backward(self, g: Any, x: Any, *, kernel: Pair, stride: Pair, padding: Pair = (0, 0)) -> Any:
        win = self._pool_window(x, kernel, stride, padding)
        wins = self._windows(self._pad(x, win.padding, -math.inf), win)
        first = wins.argmax(axis=2)                                 # first maximal element (ties)
        kk = wins.shape[2]
        onehot = self.xp.arange(kk).reshape(1, 1, kk, 1, 1) == first[:, :, None]
        cols = self.xp.where(onehot, g[:, :, None], g.dtype.type(0))
        return self._unpad_cols(cols, x, win)

    def avg_pool2d_forward(self, x: Any, *, kernel: Pair, stride: Pair, padding: Pair = (0, 0)) -> Any:
        win = self._pool_window(x, kernel, stride, padding)
        kk = win.kernel[0] * win.kernel[1]
        return self._windows(self._pad(x, win.padding, 0.0), win).sum(axis=2) / x.dtype.type(kk)

    def avg_pool2d_backward(self, g: Any, x: Any, *, kernel: Pair, stride: Pair, padding: Pair = (0, 0)) -> Any:
        win = self._pool_window(x, kernel, stride, padding)
        kk = win.kernel[0] * win.kernel[1]
        cols = self.xp.broadcast_to((g / g.dtype.type(kk))[:, :, None], g.shape[:2] + (kk,) + g.shape[2:])
        return self._unpad_cols(self.xp.ascontiguousarray(cols), x, win)

    def _targets(self, logits: Any, labels: Any, s: float) -> Any:
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"label_smoothing: expected a number in [0, 1], got {s!r}")
        xp, T = self.xp, logits.dtype.type
        b, c = logits.shape
        labels = xp.asarray(labels)
        if labels.shape != (b,):
            raise ValueError(f"labels: expected shape ({b},), got {tuple(labels.shape)}")
        q = xp.full((b, c), T(s / c), dtype=logits.dtype)
        q[xp.arange(b), labels.astype(xp.int64)] += T(1 - s)
        return q

    def cross_entropy_forward(self, logits: Any, labels: Any, *, label_smoothing: float = 0.0) -> Any:
        self._arr(logits, "logits", (2,))
        xp = self.xp
        m = logits.max(axis=1, keepdims=True)
        logp = logits - (m + xp.log(xp.exp(logits - m).sum(axis=1, keepdims=True)))
        q = self._targets(logits, labels, float(label_smoothing))
        return -(q * logp).sum(axis=1).mean()

    def cross_entropy_backward(self, g: Any, logits: Any, labels: Any, *, label_smoothing: float = 0.0) -> Any:
        self._arr(logits, "logits", (2,))
        xp = self.xp
        e = xp.exp(logits - logits.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        q = self._targets(logits, labels, float(label_smoothing))
        return (g * (p - q) / logits.dtype.type(logits.shape[0])).astype(logits.dtype, copy=False)

    # ---- SEMANTICS 9: bit packing ------------------------------------------------------------------------
    def pack_signs(self, x: Any, *, axis: int, zero: float = -1.0) -> Any:
        self._arr(x, "x")
        if isinstance(zero, bool) or zero not in (-1, 1):
            raise ValueError(f"pack_signs: zero must be -1 or +1 (a bit holds two values), got {zero!r}")
        xp = self.xp
        ax = axis + x.ndim if axis < 0 else axis
        if not 0 <= ax < x.ndim:
            raise ValueError(f"pack_signs: axis {axis} out of range for shape {tuple(x.shape)}")
        if bool(xp.isnan(x).any()):   # an inference-time op: the device sync is affordable
            raise ValueError("pack_signs: x contains NaN, which has no sign bit (SEMANTICS 9)")
        neg = (x < 0) | (x == 0) if zero < 0 else (x < 0)
        neg = xp.moveaxis(neg, ax, -1)
        c = neg.shape[-1]
        words = words_for(c)
        bits = xp.zeros(neg.shape[:-1] + (words * 64,), dtype=xp.uint64)
        bits[..., :c] = neg
        shifts = xp.arange(64, dtype=xp.uint64)
        return (bits.reshape(neg.shape[:-1] + (words, 64)) << shifts).sum(axis=-1, dtype=xp.uint64)

    def _check_packed(self, a: Any, name: str, ndim: int) -> None:
        if not isinstance(a, self.xp.ndarray) or a.dtype != self.xp.uint64 or a.ndim != ndim:
            raise TypeError(f"{name}: expected a {ndim}-D uint64 {self.xp.__name__}.ndarray, got "
                            f"{getattr(a, 'dtype', type(a).__name__)} of shape {getattr(a, 'shape', None)}")

    def xnor_conv2d(self, x_packed: Any, w_packed: Any, *, channels: int, stride: Pair = (1, 1),
                    padding: Pair = (0, 0), dilation: Pair = (1, 1), pad_value: float = 0.0) -> Any:
        self._check_packed(x_packed, "x_packed", 4)
        self._check_packed(w_packed, "w_packed", 4)
        words = words_for(channels)
        if x_packed.shape[3] != words or w_packed.shape[3] != words:
            raise ValueError(f"xnor_conv2d: {channels} channels need {words} words, got x {tuple(x_packed.shape)}"
                             f" and w {tuple(w_packed.shape)}")
        if pad_value not in (0, -1, 1):
            raise ValueError(f"xnor_conv2d: pad_value must be 0, -1 or +1, got {pad_value!r}")
        win = Window(int(x_packed.shape[1]), int(x_packed.shape[2]),
                     (int(w_packed.shape[1]), int(w_packed.shape[2])), as_pair(stride, "stride", minimum=1),
                     as_pair(padding, "padding"), as_pair(dilation, "dilation", minimum=1))
        win.out_shape  # raises when the window does not fit
        return self.k.xnor_conv2d(self.xp.ascontiguousarray(x_packed), self.xp.ascontiguousarray(w_packed),
                                  channels=int(channels), win=win, pad=int(pad_value))

    def xnor_linear(self, x_packed: Any, w_packed: Any, *, features: int) -> Any:
        self._check_packed(x_packed, "x_packed", 2)
        self._check_packed(w_packed, "w_packed", 2)
        words = words_for(features)
        if x_packed.shape[1] != words or w_packed.shape[1] != words:
            raise ValueError(f"xnor_linear: {features} features need {words} words, got x "
                             f"{tuple(x_packed.shape)} and w {tuple(w_packed.shape)}")
        return self.k.xnor_linear(self.xp.ascontiguousarray(x_packed), self.xp.ascontiguousarray(w_packed),
                                  features=int(features))


def parse_device(device: str) -> int:
    """CUDA device index of ``device``: "cuda" -> 0, "cuda:N" -> N; anything else raises ValueError."""
    if not isinstance(device, str):
        raise TypeError(f"device: expected a string such as 'cuda' or 'cuda:0', got {device!r}")
    if device == "cuda":
        return 0
    head, _, idx = device.partition(":")
    if head == "cuda" and idx.isdigit():
        return int(idx)
    raise ValueError(f"the cupy backend runs on CUDA devices ('cuda', 'cuda:N'), not on {device!r}")
