"""Deliberately broken backends, each wrong in ONE realistic way: the proof that the suite has teeth.

Each wraps the reference and changes a single op the way real implementations have got it wrong. The
suite must fail each one and name the op. (The weight-scale leak cannot be expressed in an op table, since
detaching the scale is the engine's job; :class:`fdaref.conformance.layers.ScaleLeakingBinaryConv2d` is that
bug, caught by the layer check.)
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from fdaref.estimators import estimator_grad, fda_peak, get_estimator


class _Wrapper:
    """Delegates everything to the reference; subclasses override one op."""

    broken_op = ""
    bug = ""
    reported_as = ""   # the failure's wording where it is not a numeric difference
    wrong_in: tuple[str, ...] = ("float32", "float64")  # the dtypes in which the bug shows
    # False where the bug is in how memory is read or written (strides, aliasing): the golden vectors hand a
    # port contiguous arrays of its own, so only the op-table suite can catch it
    in_vectors = True

    def __init__(self) -> None:
        from fdaref.reference import REFERENCE
        self._ref = REFERENCE
        self.name = f"broken-{type(self).__name__}"
        self.version = "0"
        self.devices = REFERENCE.devices
        self.dtypes = REFERENCE.dtypes

    def __getattr__(self, item: str) -> Any:
        return getattr(self._ref, item)


class FdaNTerms(_Wrapper):
    """fda sums n cosine terms instead of n + 1 (reading Eq. 10's sum as exclusive)."""

    broken_op, bug = "surrogate", "fda with n terms instead of n+1"

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        if estimator == "fda":
            p = dict(params)
            n = p.get("n", 9)
            if n == 0:
                return np.zeros_like(x) if p.get("clip") is None else np.zeros_like(x)
            return estimator_grad(x, "fda_series", **{**p, "n": n - 1})
        return self._ref.surrogate(x, estimator, params)


class FdaOmegaOff(_Wrapper):
    """The prefactor 4 omega / pi written as 4 / pi (omega dropped outside the cosines)."""

    broken_op, bug = "surrogate", "fda prefactor without omega"

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        out = self._ref.surrogate(x, estimator, params)
        if estimator == "fda":
            return (out / dict(params).get("omega", 0.1)).astype(x.dtype)
        return out


class ClipExclusive(_Wrapper):
    """The clip mask drops the boundary: gradient 0 where |x| >= clip instead of |x| > clip."""

    broken_op, bug = "surrogate", "clip boundary exclusive"

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        out = self._ref.surrogate(x, estimator, params)
        clip = dict(params).get("clip") if estimator == "fda" else (1.0 if estimator in ("clipped_ste", "approx_sign") else None)
        if clip is not None:
            out = np.where(np.abs(x) >= clip, 0, out).astype(x.dtype)
        return out


class SignZeroIsZero(_Wrapper):
    """sign is numpy's: sign(0) = 0 whatever convention was asked for."""

    broken_op, bug = "sign", "sign(0) = 0 always"

    def sign(self, x: np.ndarray, zero: float = -1.0) -> np.ndarray:
        return np.sign(x)


class NoiseGradWithoutAlpha(_Wrapper):
    """The quantizer's backward forgets the factor alpha on the noise module's gradients (Eqs. 15-17 as printed)."""

    broken_op, bug = "quantize_backward", "alpha missing from the noise gradient"

    def quantize_backward(self, g, t, w1, w2, *, alpha, estimator, params, layout, eta_kind, a):
        dt, dw1, dw2 = self._ref.quantize_backward(g, t, w1, w2, alpha=alpha, estimator=estimator, params=params,
                                                   layout=layout, eta_kind=eta_kind, a=a)
        if w1 is None or alpha == 0:
            return dt, dw1, dw2
        return dt, dw1 / alpha, dw2 / alpha


class XnorPadMinusOne(_Wrapper):
    """The packed conv pads with -1 (a set bit) instead of the requested pad value."""

    broken_op, bug = "xnor_conv2d", "padding with -1 instead of 0"

    def xnor_conv2d(self, x_packed, w_packed, *, channels, stride, padding, dilation, pad_value):
        return self._ref.xnor_conv2d(x_packed, w_packed, channels=channels, stride=stride, padding=padding,
                                     dilation=dilation, pad_value=-1.0)


class ConvPadMinusOne(_Wrapper):
    """The float conv pads the binarized input with -1 whatever pad value was asked for."""

    broken_op, bug = "conv2d_forward", "padding with -1 instead of 0"

    def conv2d_forward(self, x, w, b, *, stride, padding, dilation, pad_value):
        return self._ref.conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation, pad_value=-1.0)


class PackBitsReversed(_Wrapper):
    """pack_signs stores element 64 w + j in bit 63 - j (MSB first) instead of bit j."""

    broken_op, bug = "pack_signs", "transposed bit order"

    def pack_signs(self, x, *, axis, zero):
        words = np.asarray(self._ref.pack_signs(x, axis=axis, zero=zero), dtype=np.uint64)
        out = np.zeros_like(words)
        for j in range(64):
            bit = (words >> np.uint64(j)) & np.uint64(1)
            out |= bit << np.uint64(63 - j)
        return out


class UnreducedFloat32Fda(_Wrapper):
    """The float32 closed form of GPU and microcontroller ports: t = omega x in float32, sin(M t) / (2 sin t)
    with M t in float32, the limit (n + 1)(-1)^k where sin t is near 0, and no range reduction of t. Off by
    up to ~1e-3 of the peak at large |omega x| and near k pi; float64 inputs go to the reference."""

    broken_op, bug, wrong_in = "surrogate", "float32 closed form without range reduction", ("float32",)

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        if estimator != "fda" or x.dtype != np.float32:
            return self._ref.surrogate(x, estimator, params)
        p = get_estimator("fda").resolve(params)
        f32 = np.float32
        t = x * f32(p["omega"])
        m = f32(2 * (p["n"] + 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.sin(t)
            ratio = np.sin(m * t) / (f32(2) * s)
            k = np.rint(t / f32(np.pi))
            limit = f32(p["n"] + 1) * np.where(np.fmod(np.abs(k), 2) == 1, f32(-1), f32(1))
            ratio = np.where(np.abs(s) < f32(1e-6), limit, ratio)
            out = (f32(4 * p["omega"] / np.pi) * ratio).astype(np.float32)
        if p["clip"] is not None:
            out = np.where(np.abs(x) > p["clip"], f32(0), out)
        return out


class FdaGuardTooWide(_Wrapper):
    """Near k pi the closed form is replaced by its limit (n + 1)(-1)^k (without the quadratic term) where
    |sin t| < 1e-2: a guard 10^4 too wide for a constant (the right width for it is ~1e-4 / M)."""

    broken_op, bug, wrong_in = "surrogate", "constant limit over a too-wide guard near k*pi", ("float32", "float64")

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        out = self._ref.surrogate(x, estimator, params)
        if estimator != "fda":
            return out
        p = get_estimator("fda").resolve(params)
        t = x.astype(np.float64) * p["omega"]
        k = np.rint(t / np.pi)
        near = np.abs(np.sin(t)) < 1e-2
        limit = fda_peak(p["n"], p["omega"]) * np.where(np.fmod(np.abs(k), 2) == 1, -1.0, 1.0)
        if p["clip"] is not None:
            near &= np.abs(x) <= p["clip"]
        return np.where(near, limit, out).astype(x.dtype)


class QuantizerFlushToZero(_Wrapper):
    """The quantizer kernel built with flush-to-zero (nvcc -ftz=true, -ffast-math): subnormal t are read as
    0, so sign(t) takes the zero convention instead of +-1 (SEMANTICS 1: subnormals are ordinary numbers)."""

    broken_op, bug, wrong_in = "quantize_forward", "subnormals flushed to zero", ("float32",)

    def quantize_forward(self, t, w1, w2, **kw):
        if t.dtype == np.float32:
            t = np.where(np.abs(t) < np.finfo(np.float32).tiny, np.float32(0), t).astype(np.float32)
        return self._ref.quantize_forward(t, w1, w2, **kw)


class NoiseReluGradAtZero(_Wrapper):
    """The noise module's backward takes relu'(0) = 1 (a mask h >= 0, as a hand-written CUDA kernel may):
    a row of t that is all zero then sends g W2^T W1^T back instead of 0 (SEMANTICS 3: relu'(0) = 0)."""

    broken_op, bug = "noise_backward", "relu'(0) = 1 in the noise module's backward"

    def noise_backward(self, g, t, w1, w2, *, layout, eta_kind="sin", a=0.1):
        from fdaref.noise import eta_grad, from_rows, to_rows
        rows, grows = to_rows(t.astype(np.float64), layout), to_rows(g.astype(np.float64), layout)
        w1f, w2f = w1.astype(np.float64), w2.astype(np.float64)
        h = rows @ w1f
        dh = (grows @ w2f.T) * (h >= 0)
        dt = dh @ w1f.T + grows * eta_grad(rows, eta_kind, a)
        return (from_rows(dt, t.shape, layout).astype(t.dtype), (rows.T @ dh).astype(w1.dtype),
                (np.maximum(h, 0.0).T @ grows).astype(w2.dtype))


class ClipUnrounded(_Wrapper):
    """fda's clip compared with |x| in float64 without rounding it to x's dtype: a float32 x equal to
    float32(0.1) (just above 0.1) loses its gradient (SEMANTICS 10 keeps it)."""

    broken_op, bug, wrong_in = "surrogate", "clip compared unrounded", ("float32",)

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        out = self._ref.surrogate(x, estimator, params)
        clip = get_estimator(estimator).resolve(params).get("clip") if estimator == "fda" else None
        if clip is None:
            return out
        return np.where(np.abs(x.astype(np.float64)) > float(clip), 0, out).astype(x.dtype)


class FdaZeroAtInfinity(_Wrapper):
    """fda's clip or range-reduction branch returns 0 for non-finite x (SEMANTICS 10: NaN, as cos(inf) is)."""

    broken_op, bug = "surrogate", "fda(+-inf) = fda(NaN) = 0"

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        out = self._ref.surrogate(x, estimator, params)
        return np.where(np.isfinite(x), out, 0).astype(x.dtype) if estimator == "fda" else out


class ReluDropsNaN(_Wrapper):
    """relu as where(x > 0, x, 0) (or fmax(x, 0)): NaN becomes 0 (SEMANTICS 10: NaN stays NaN)."""

    broken_op, bug = "relu_forward", "relu(NaN) = 0"

    def relu_forward(self, x):
        return np.where(x > 0, x, 0).astype(x.dtype)


class MaxPoolSkipsNaN(_Wrapper):
    """max pool as a `v > best` scan: a NaN never wins its window (SEMANTICS 10: the window is NaN)."""

    broken_op, bug = "max_pool2d_forward", "max pool skips NaN"

    def max_pool2d_forward(self, x, **kw):
        return self._ref.max_pool2d_forward(np.where(np.isnan(x), -np.inf, x).astype(x.dtype), **kw)


class PackFlushesSubnormals(_Wrapper):
    """pack_signs on a flush-to-zero CPU (DAZ) or GPU (-ftz): subnormals read as 0 and pack with the zero
    convention instead of their sign (SEMANTICS 1: subnormals are ordinary nonzero numbers)."""

    broken_op, bug = "pack_signs", "subnormals packed as zeros"

    def pack_signs(self, x, *, axis, zero):
        flushed = np.where(np.abs(x) < np.finfo(x.dtype).tiny, 0, x).astype(x.dtype)
        return self._ref.pack_signs(flushed, axis=axis, zero=zero)


class XnorCountsStrayBits(_Wrapper):
    """xnor_linear as C - 2 popcount(x ^ w) over whole words: bits beyond C in the last word count
    (SEMANTICS 11: they never change a result, whatever the packer left there)."""

    broken_op, bug = "xnor_linear", "stray bits counted"

    def xnor_linear(self, x_packed, w_packed, *, features):
        diff = np.zeros((x_packed.shape[0], w_packed.shape[0]), np.int64)
        for word in range(x_packed.shape[1]):
            both = x_packed[:, None, word] ^ w_packed[None, :, word]
            diff += np.array([[bin(int(v)).count("1") for v in row] for row in both], np.int64)
        return (features - 2 * diff).astype(np.int32)


class ConvSixteenChannelPath(_Wrapper):
    """A vectorised conv path taken when C_in is a multiple of 16 pads with 0 whatever pad value was asked
    for; every other channel count is right (a bug only tile-sized shapes show)."""

    broken_op, bug = "conv2d_forward", "C_in % 16 == 0 path ignores the pad value"

    def conv2d_forward(self, x, w, b, *, stride, padding, dilation, pad_value):
        if x.shape[1] % 16 == 0:
            pad_value = 0.0
        return self._ref.conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation, pad_value=pad_value)


class ConvWideKernelLastColumn(_Wrapper):
    """A conv written for kernels up to 3 wide drops a wider kernel's last column."""

    broken_op, bug = "conv2d_forward", "kernels wider than 3 lose their last column"

    def conv2d_forward(self, x, w, b, *, stride, padding, dilation, pad_value):
        if w.shape[3] > 3:
            w = w.copy()
            w[..., -1] = 0
        return self._ref.conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation, pad_value=pad_value)


class ConvColumnTileRemainder(_Wrapper):
    """A conv vectorised over 8 output columns forgets the bias in the remainder columns past the last full
    tile (Wo > 8 and not a multiple of 8)."""

    broken_op, bug = "conv2d_forward", "bias missing past the last 8-column tile"

    def conv2d_forward(self, x, w, b, *, stride, padding, dilation, pad_value):
        y = self._ref.conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation, pad_value=pad_value)
        full = y.shape[3] // 8 * 8
        if b is not None and y.shape[3] > 8 and full < y.shape[3]:
            y = y.copy()
            y[..., full:] -= b.reshape(1, -1, 1, 1).astype(y.dtype)
        return y


class LinearRowTileRemainder(_Wrapper):
    """A GEMM blocked by 8 rows forgets the bias in the rows past the last full block (B > 8)."""

    broken_op, bug = "linear_forward", "bias missing past the last 8-row block"

    def linear_forward(self, x, w, b):
        y = self._ref.linear_forward(x, w, b)
        full = y.shape[0] // 8 * 8
        if b is not None and y.shape[0] > 8 and full < y.shape[0]:
            y = y.copy()
            y[full:] -= b.astype(y.dtype)
        return y


class FdaTermsCapped(_Wrapper):
    """fda from a fixed-size table of 24 cosine terms: n > 23 is silently truncated (SEMANTICS 2: any
    n >= 0; the presets stop at 18, so only a larger n shows it)."""

    broken_op, bug = "surrogate", "fda capped at 24 terms"

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        if estimator == "fda":
            params = {**get_estimator("fda").resolve(params)}
            params["n"] = min(params["n"], 23)
        return self._ref.surrogate(x, estimator, params)


class SumToShapeSlices(_Wrapper):
    """sum_to_shape sums the added leading axes but takes index 0 of a stretched size-1 axis instead of
    summing it: a per-channel (1, C, 1, 1) gradient then holds one pixel's share."""

    broken_op, bug = "sum_to_shape", "stretched size-1 axes sliced, not summed"

    def sum_to_shape(self, x, shape):
        shape = tuple(shape)
        x = x.sum(axis=tuple(range(x.ndim - len(shape)))) if x.ndim > len(shape) else x
        index = tuple(slice(0, 1) if n == 1 else slice(None) for n in shape)
        return x[index].reshape(shape)


class ConvIgnoresStrides(_Wrapper):
    """A C kernel that reads x's buffer as if it were C-contiguous: right for the C-order arrays most code
    passes, wrong for a transposed or permuted view (the engine hands ops such views). The elements are
    taken in memory order (what such a kernel reads where the buffer has no gaps)."""

    broken_op, bug = "conv2d_forward", "input strides ignored"
    in_vectors = False

    def conv2d_forward(self, x, w, b, *, stride, padding, dilation, pad_value):
        x = np.ravel(x, order="K").reshape(x.shape)
        return self._ref.conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation, pad_value=pad_value)


class ParamsChangedInPlace(_Wrapper):
    """quantize_backward advances the schedule's n in the caller's params dict (a layer shares that dict
    between its quantizers, so the next call sees another n)."""

    broken_op, bug = "quantize_backward", "params modified in place"
    reported_as = "modified its keyword argument(s) params in place"   # not a numeric difference
    in_vectors = False

    def quantize_backward(self, g, t, w1, w2, *, params, **kw):
        out = self._ref.quantize_backward(g, t, w1, w2, params=params, **kw)
        if isinstance(params, dict) and "n" in params:
            params["n"] += 1
        return out


class CrossEntropyRowLanes(_Wrapper):
    """A row kernel of 32 lanes without a stride loop: classes past the 32nd drop out of the softmax."""

    broken_op, bug = "cross_entropy_forward", "classes beyond 32 ignored"

    def cross_entropy_forward(self, logits, labels, *, label_smoothing=0.0):
        if logits.shape[1] > 32:   # a label past the lanes reads the last lane
            return self._ref.cross_entropy_forward(np.ascontiguousarray(logits[:, :32]), np.minimum(labels, 31),
                                                   label_smoothing=label_smoothing)
        return self._ref.cross_entropy_forward(logits, labels, label_smoothing=label_smoothing)


class AvgPoolWideKernel(_Wrapper):
    """Average pooling's generic path for windows wider than 3 drops the window's last column."""

    broken_op, bug = "avg_pool2d_forward", "windows wider than 3 lose their last column"

    def avg_pool2d_forward(self, x, *, kernel, stride, padding):
        y = self._ref.avg_pool2d_forward(x, kernel=kernel, stride=stride, padding=padding)
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
        if kw <= 3:
            return y
        xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        last = np.zeros(y.shape)
        for i in range(y.shape[2]):
            for j in range(y.shape[3]):   # the window's last column, taken back out of its mean
                last[:, :, i, j] = xp[:, :, i * sh:i * sh + kh, j * sw + kw - 1].sum(axis=2)
        return (y - last / (kh * kw)).astype(y.dtype)


class MaxPoolZeroOrder(_Wrapper):
    """Max pool's argmax compares floats as integers (an atomicMax trick): -0.0 ranks below +0.0, so a tie at
    the maximum 0 sends the gradient to the first +0.0, not to the first maximal element."""

    broken_op, bug = "max_pool2d_backward", "-0.0 ranked below +0.0"

    def max_pool2d_backward(self, g, x, *, kernel, stride, padding):
        nudged = np.where((x == 0) & np.signbit(x), -np.finfo(x.dtype).smallest_subnormal, x).astype(x.dtype)
        return self._ref.max_pool2d_backward(g, nudged, kernel=kernel, stride=stride, padding=padding)


class XnorConvOddBatch(_Wrapper):
    """An XNOR conv unrolled over pairs of images reads the odd last image from index N // 2."""

    broken_op, bug = "xnor_conv2d", "odd batch: the last image read from N // 2"

    def xnor_conv2d(self, x_packed, w_packed, **kw):
        n = x_packed.shape[0]
        if n % 2 and n > 1:
            x_packed = x_packed.copy()
            x_packed[-1] = x_packed[n // 2]
        return self._ref.xnor_conv2d(x_packed, w_packed, **kw)


class ConvOnePixelBias(_Wrapper):
    """The GEMV path for a 1x1 output forgets the bias."""

    broken_op, bug = "conv2d_forward", "no bias on a 1x1 output"

    def conv2d_forward(self, x, w, b, **kw):
        y = self._ref.conv2d_forward(x, w, b, **kw)
        if b is not None and y.shape[2:] == (1, 1):
            y = (y - b.reshape(1, -1, 1, 1)).astype(y.dtype)
        return y


class NoiseOnlyForPositiveAlpha(_Wrapper):
    """The quantizer tests `alpha > 0` for a live module where SEMANTICS 4 says alpha != 0: a negative
    alpha gives sign(t) alone."""

    broken_op, bug = "quantize_forward", "noise term only for alpha > 0"

    def quantize_forward(self, t, w1, w2, *, alpha, **kw):
        return self._ref.quantize_forward(t, w1, w2, alpha=alpha if alpha > 0 else 0.0, **kw)


class ConvFloat32Accumulator(_Wrapper):
    """A float64 conv backward that sums dw in float32 past 1024 positions (a mixed-precision GEMM): off by
    ~1e-7 of |dw|, far outside float64's tolerance, and only a long reduction shows it."""

    broken_op, bug, wrong_in = "conv2d_backward", "float32 sums for float64 past 1024 positions", ("float64",)

    def conv2d_backward(self, g, x, w, **kw):
        dx, dw, db = self._ref.conv2d_backward(g, x, w, **kw)
        if x.dtype == np.float64 and g.shape[0] * g.shape[2] * g.shape[3] >= 1024:
            low = self._ref.conv2d_backward(g.astype(np.float32), x.astype(np.float32), w.astype(np.float32), **kw)
            dw = low[1].astype(np.float64)
        return dx, dw, db


class ActivationRowsWithoutTranspose(_Wrapper):
    """The quantizer takes the rows of a (1, C, H, W) activation as t.reshape(-1, C), mixing channels and
    pixels (right for 2-D inputs and wherever H W == 1)."""

    broken_op, bug = "quantize_forward", "activation rows of batch 1 reshaped, not transposed"

    def quantize_forward(self, t, w1, w2, *, layout, **kw):
        if layout == "activation" and t.ndim == 4 and t.shape[0] == 1 and t.shape[2] * t.shape[3] > 1:
            rows = np.ascontiguousarray(t).reshape(-1, t.shape[1])
            return self._ref.quantize_forward(rows, w1, w2, layout="activation", **kw).reshape(t.shape)
        return self._ref.quantize_forward(t, w1, w2, layout=layout, **kw)


class TanhBetaHardCoded(_Wrapper):
    """The tanh surrogate with its inner beta fixed at the default 2: beta (1 - tanh(2 x)^2)."""

    broken_op, bug = "surrogate", "tanh's inner beta fixed at 2"

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        if estimator != "tanh":
            return self._ref.surrogate(x, estimator, params)
        beta = float(get_estimator("tanh").resolve(params)["beta"])
        return (beta * (1 - np.tanh(2.0 * x.astype(np.float64)) ** 2)).astype(x.dtype)


class SmoothingOneShortcut(_Wrapper):
    """Cross entropy with label smoothing 1 short-circuited to log C (as if the logits were uniform too)."""

    broken_op, bug = "cross_entropy_forward", "smoothing 1 gives log C"

    def cross_entropy_forward(self, logits, labels, *, label_smoothing=0.0):
        if label_smoothing == 1.0:
            return np.asarray(np.log(logits.shape[1]), dtype=logits.dtype)
        return self._ref.cross_entropy_forward(logits, labels, label_smoothing=label_smoothing)


class MaxPoolDropsMinusInfinity(_Wrapper):
    """Max pool's backward scans with `v > best` from best = -inf: a window of -inf only loses its gradient
    (SEMANTICS 11: it goes to the window's first maximal element)."""

    broken_op, bug = "max_pool2d_backward", "an all -inf window drops its gradient"

    def max_pool2d_backward(self, g, x, *, kernel, stride, padding):
        dx = self._ref.max_pool2d_backward(g, x, kernel=kernel, stride=stride, padding=padding)
        return np.where(np.isneginf(x), 0, dx).astype(dx.dtype)


class MissingOp(_Wrapper):
    """A backend without xnor_linear (a partial backend is legal: the op shows as not provided)."""

    broken_op, bug = "xnor_linear", "not provided"

    def __getattr__(self, item: str) -> Any:
        if item == "xnor_linear":
            raise AttributeError(item)
        return getattr(self._ref, item)


class ExitingOp(_Wrapper):
    """relu_forward calls sys.exit(7): a case failure; the run goes on and the report is written."""

    broken_op, bug = "relu_forward", "calls sys.exit"

    def relu_forward(self, x):
        raise SystemExit(7)


class AvgPoolNanSum(_Wrapper):
    """Average pooling sums its windows with a NaN-skipping sum (np.nansum, a masked reduction), so a window
    holding NaN averages the rest instead of giving NaN. Escaped while a NaN window's tolerance was NaN."""

    broken_op, bug = "avg_pool2d_forward", "NaN skipped in the window's sum"

    def avg_pool2d_forward(self, x, **kw):
        return self._ref.avg_pool2d_forward(np.where(np.isnan(x), 0, x).astype(x.dtype), **kw)


class SignbitNegative(_Wrapper):
    """sign with its negative test written `signbit(x) && x != 0` (so that -0.0 keeps the zero convention),
    NaN falling through to itself: a NaN with the sign bit set, x86's default NaN (inf - inf, 0 * inf),
    gives -1 instead of NaN. A positive NaN is right."""

    broken_op, bug = "sign", "-NaN -> -1"

    def sign(self, x: np.ndarray, zero: float = -1.0) -> np.ndarray:
        negative = np.signbit(x) & (x != 0)
        return np.where(negative, x.dtype.type(-1), self._ref.sign(x, zero)).astype(x.dtype)


class ReluGradDenormalsAreZero(_Wrapper):
    """relu backward built with denormals-are-zero (-ffast-math, MXCSR DAZ, nvcc -ftz=true): a positive
    subnormal x reads as 0 in the mask x > 0, so its gradient is dropped (SEMANTICS 10: subnormals are
    ordinary numbers). DAZ applies to float64 as well."""

    broken_op, bug = "relu_backward", "subnormal x read as 0"

    def relu_backward(self, g, x):
        flushed = np.where(np.abs(x) < np.finfo(x.dtype).tiny, x.dtype.type(0), x).astype(x.dtype)
        return self._ref.relu_backward(g, flushed)


class SignSwishTailCutoff(_Wrapper):
    """sign_swish with a cheap tail: 0 where |beta x| > 10 (float32's exp(-|beta x|) is still ~1e-3 of the
    peak just past it), NaN and inf still handled as SEMANTICS 10 says."""

    broken_op, bug = "surrogate", "sign_swish = 0 for finite |beta x| > 10"

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        out = self._ref.surrogate(x, estimator, params)
        if estimator != "sign_swish":
            return out
        bx = float(get_estimator("sign_swish").resolve(params)["beta"]) * x.astype(np.float64)
        return np.where(np.isfinite(bx) & (np.abs(bx) > 10), 0, out).astype(x.dtype)


class CrossEntropyGradBlocks64(_Wrapper):
    """cross entropy backward as one GPU block per row, launched on min(B, 64) blocks without a grid-stride
    loop: rows past the 64th get no gradient (the models train on batches of 128)."""

    broken_op, bug = "cross_entropy_backward", "rows past 64 get no gradient"

    def cross_entropy_backward(self, g, logits, labels, *, label_smoothing=0.0):
        d = np.array(self._ref.cross_entropy_backward(g, logits, labels, label_smoothing=label_smoothing))
        d[64:] = 0
        return d


class ConvBackwardCOrFOnly(_Wrapper):
    """conv backward that handles a C- or Fortran-ordered upstream gradient (a contiguous copy, or the
    transposed path) but reads any other layout in memory order, as if it were C-ordered: a permuted view
    (a channels-last gradient viewed as NCHW) is misread."""

    broken_op, bug = "conv2d_backward", "g in layouts other than C and F read in memory order"
    in_vectors = False

    def conv2d_backward(self, g, x, w, **kw):
        if not (g.flags.c_contiguous or g.flags.f_contiguous):
            g = np.ravel(g, order="K").reshape(g.shape)
        return self._ref.conv2d_backward(g, x, w, **kw)


class QuantizerSkipsTinyAlpha(_Wrapper):
    """The quantizer's backward skips the module below an epsilon (a fast path for 'alpha is off'), where
    SEMANTICS 4 turns it off only at alpha == 0: the schedule's last epochs (1.5e-6 at E = 400, 2.5e-9 at 10,000) lose it."""

    broken_op, bug = "quantize_backward", "module dropped for |alpha| < 1e-5"

    def quantize_backward(self, g, t, w1, w2, *, alpha, **kw):
        return self._ref.quantize_backward(g, t, w1, w2, alpha=0.0 if abs(alpha) < 1e-5 else alpha, **kw)


class QuantizerDefaultEta(_Wrapper):
    """The fused quantizer calls its module with the default shortcut (a sin t, a = 0.1), whatever eta_kind
    and a it is given (the standalone noise ops take them right)."""

    broken_op, bug = "quantize_forward", "eta_kind and a ignored"

    def quantize_forward(self, t, w1, w2, *, eta_kind, a, **kw):
        return self._ref.quantize_forward(t, w1, w2, eta_kind="sin", a=0.1, **kw)


class PackNegativeAxisOffByOne(_Wrapper):
    """pack_signs normalises a negative axis as ndim + axis - 1 (where it is still an axis): it packs the
    axis before the one asked for."""

    broken_op, bug, reported_as = "pack_signs", "negative axis off by one", "words: shape"

    def pack_signs(self, x, *, axis, zero):
        if axis < -1 and x.ndim + axis - 1 >= 0:
            axis = x.ndim + axis - 1
        return self._ref.pack_signs(x, axis=axis, zero=zero)


# --- the seventh round: past the first block, special values in the module, layouts, underflow ---------------

class SignZeroFirstBlock(_Wrapper):
    """sign applies the zero convention in its first block of 256 elements only; past it the vector path's
    0 stays 0 (torch.sign's) whatever ``zero`` says."""

    broken_op, bug = "sign", "zero convention in the first 256 elements only"

    def sign(self, x, zero=-1.0):
        out = self._ref.sign(x, zero)
        flat = out.reshape(-1)
        tail = flat[256:]
        tail[x.reshape(-1)[256:] == 0] = 0.0
        return out


class NoiseGradFirst64Rows(_Wrapper):
    """The noise module's weight gradients sum over the first 64 rows only (one block, no loop over the rest)."""

    broken_op, bug = "noise_backward", "dW1, dW2 over the first 64 rows"

    def noise_backward(self, g, t, w1, w2, *, layout, eta_kind, a):
        from fdaref.noise import to_rows
        rows = to_rows(t, layout).shape[0]
        dt, dw1, dw2 = self._ref.noise_backward(g, t, w1, w2, layout=layout, eta_kind=eta_kind, a=a)
        if rows <= 64:
            return dt, dw1, dw2
        keep = np.zeros(rows)
        keep[:64] = 1.0
        from fdaref.noise import from_rows
        mask = from_rows(np.repeat(keep[:, None], to_rows(t, layout).shape[1], axis=1), t.shape, layout)
        _, dw1, dw2 = self._ref.noise_backward(g * mask.astype(g.dtype), t, w1, w2, layout=layout, eta_kind=eta_kind,
                                               a=a)
        return dt, dw1, dw2


class NoiseShortcutZeroAtInfinity(_Wrapper):
    """The shortcut a sin(t) from a fast sine that returns 0 at +-inf (a range reduction that maps inf to 0),
    where sin(inf) is NaN: rows holding +-inf come out finite."""

    broken_op, bug = "noise_forward", "a sin(+-inf) = 0"

    def noise_forward(self, t, w1, w2, *, layout, eta_kind, a):
        e = self._ref.noise_forward(t, w1, w2, layout=layout, eta_kind=eta_kind, a=a)
        if eta_kind != "sin" or not np.isinf(t).any():
            return e
        module = self._ref.noise_forward(t, w1, w2, layout=layout, eta_kind="none", a=a)
        return (module + a * np.sin(np.where(np.isinf(t), 0.0, t))).astype(t.dtype)


class NoiseShortcutForPositiveA(_Wrapper):
    """The shortcut is added only when a > 0 (an 'is eta on' test), where a is any real."""

    broken_op, bug = "noise_forward", "eta skipped for a <= 0"

    def noise_forward(self, t, w1, w2, *, layout, eta_kind, a):
        return self._ref.noise_forward(t, w1, w2, layout=layout, eta_kind=eta_kind if a > 0 else "none", a=a)


class BatchNormOnePassVariance(_Wrapper):
    """float32 batch norm with the one-pass variance E[x^2] - E[x]^2 (clamped at 0): it cancels where
    |mean| is large against the standard deviation."""

    broken_op, bug, wrong_in = "batch_norm_forward", "one-pass float32 variance", ("float32",)

    def batch_norm_forward(self, x, gamma, beta, running_mean, running_var, *, training, momentum, eps):
        out = self._ref.batch_norm_forward(x, gamma, beta, running_mean, running_var, training=training,
                                           momentum=momentum, eps=eps)
        if not training or x.dtype != np.float32:
            return out
        axes = (0,) + tuple(range(2, x.ndim))
        mean = x.mean(axis=axes, dtype=np.float32)
        var = np.maximum((x * x).mean(axis=axes, dtype=np.float32) - mean * mean, np.float32(0))
        invstd = (np.float32(1) / np.sqrt(var + np.float32(eps))).astype(np.float32)
        view = (1, -1) + (1,) * (x.ndim - 2)
        y = ((x - mean.reshape(view)) * invstd.reshape(view) * gamma.reshape(view) + beta.reshape(view))
        return (y.astype(np.float32), mean, invstd) + tuple(out[3:])


class ConvNchwOrNhwcOnly(_Wrapper):
    """conv forward with an NCHW and an NHWC path; any other layout (a CHWN buffer viewed as NCHW) is read
    in memory order as if it were NCHW."""

    broken_op, bug = "conv2d_forward", "x in layouts other than NCHW and NHWC read in memory order"
    in_vectors = False

    def conv2d_forward(self, x, w, b, **kw):
        nhwc = x.ndim == 4 and x.strides[1] == x.itemsize
        if not (x.flags.c_contiguous or nhwc):
            x = np.ravel(x, order="K").reshape(x.shape)
        return self._ref.conv2d_forward(x, w, b, **kw)


class PreluSubnormalSlope(_Wrapper):
    """prelu's forward built with denormals-are-zero: a positive subnormal x takes the slope's branch."""

    broken_op, bug = "prelu_forward", "positive subnormals times the slope"

    def prelu_forward(self, x, slope):
        out = self._ref.prelu_forward(x, slope)
        tiny = (x > 0) & (x < np.finfo(x.dtype).tiny)
        if tiny.any():
            s = np.broadcast_to(slope.reshape((1, -1) + (1,) * (x.ndim - 2)) if slope.size > 1 else slope, x.shape)
            out = np.where(tiny, (s * x).astype(x.dtype), out)
        return out


class XnorConvStrideShift(_Wrapper):
    """The XNOR conv steps its windows by ``1 << (stride - 1)``: right for strides 1 and 2, 4 for 3."""

    broken_op, bug, reported_as = "xnor_conv2d", "stride 3 stepped as 4", "y: shape"

    def xnor_conv2d(self, x_packed, w_packed, *, stride, **kw):
        return self._ref.xnor_conv2d(x_packed, w_packed, stride=tuple(1 << (s - 1) for s in stride), **kw)


class CrossEntropyFirst64Classes(_Wrapper):
    """The log-sum-exp runs over the first 64 classes (one warp of lanes, no loop over the rest)."""

    broken_op, bug = "cross_entropy_forward", "log-sum-exp over the first 64 classes"

    def cross_entropy_forward(self, logits, labels, *, label_smoothing):
        z = logits.astype(np.float64)
        top = z[:, :64].max(axis=1, keepdims=True)
        lse = top + np.log(np.exp(z[:, :64] - top).sum(axis=1, keepdims=True))
        q = np.full(z.shape, label_smoothing / z.shape[1])
        q[np.arange(len(z)), labels] += 1.0 - label_smoothing
        return np.asarray(-(q * (z - lse)).sum(axis=1).mean(), logits.dtype)


class HangingOp(_Wrapper):
    """relu_backward never returns: the case's time limit makes it a failure and the run goes on."""

    broken_op, bug = "relu_backward", "hangs"

    def relu_backward(self, g, x):
        import time
        while True:
            time.sleep(0.05)


class RaisingOp(_Wrapper):
    """relu_forward raises: the failure is reported with its traceback and the run goes on."""

    broken_op, bug = "relu_forward", "raises"

    def relu_forward(self, x):
        raise RuntimeError("kernel launch failed (deliberately)")


BROKEN: tuple[type, ...] = (FdaNTerms, FdaOmegaOff, ClipExclusive, SignZeroIsZero, NoiseGradWithoutAlpha,
                            XnorPadMinusOne, ConvPadMinusOne, PackBitsReversed,
                            UnreducedFloat32Fda, FdaGuardTooWide, QuantizerFlushToZero, NoiseReluGradAtZero,
                            ClipUnrounded, FdaZeroAtInfinity, ReluDropsNaN, MaxPoolSkipsNaN, PackFlushesSubnormals,
                            XnorCountsStrayBits, ConvSixteenChannelPath, ConvWideKernelLastColumn,
                            ConvColumnTileRemainder, LinearRowTileRemainder, FdaTermsCapped, SumToShapeSlices,
                            ConvIgnoresStrides, ParamsChangedInPlace, CrossEntropyRowLanes, AvgPoolWideKernel,
                            MaxPoolZeroOrder, XnorConvOddBatch, ConvOnePixelBias, NoiseOnlyForPositiveAlpha,
                            ConvFloat32Accumulator, ActivationRowsWithoutTranspose, TanhBetaHardCoded,
                            SmoothingOneShortcut, MaxPoolDropsMinusInfinity, AvgPoolNanSum, SignbitNegative,
                            ReluGradDenormalsAreZero, SignSwishTailCutoff, CrossEntropyGradBlocks64,
                            ConvBackwardCOrFOnly, QuantizerSkipsTinyAlpha, QuantizerDefaultEta,
                            PackNegativeAxisOffByOne, SignZeroFirstBlock, NoiseGradFirst64Rows,
                            NoiseShortcutZeroAtInfinity, NoiseShortcutForPositiveA, BatchNormOnePassVariance,
                            ConvNchwOrNhwcOnly, PreluSubnormalSlope, XnorConvStrideShift, CrossEntropyFirst64Classes)
