"""Deliberately broken backends, each wrong in ONE realistic way: the proof that the suite has teeth.

Each wraps the reference and changes a single op the way real implementations have got it wrong. The
suite must fail each one and name the op. (The weight-scale leak cannot be expressed in an op table, since
detaching the scale is the engine's job; :class:`fdaref.conformance.layers.ScaleLeakingBinaryConv2d` is that
bug, caught by the layer check.)
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from fdaref.estimators import estimator_grad


class _Wrapper:
    """Delegates everything to the reference; subclasses override one op."""

    broken_op = ""
    bug = ""

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


class MissingOp(_Wrapper):
    """A backend without xnor_linear (a partial backend is legal: the op shows as not provided)."""

    broken_op, bug = "xnor_linear", "not provided"

    def __getattr__(self, item: str) -> Any:
        if item == "xnor_linear":
            raise AttributeError(item)
        return getattr(self._ref, item)


class RaisingOp(_Wrapper):
    """relu_forward raises: the failure is reported with its traceback and the run goes on."""

    broken_op, bug = "relu_forward", "raises"

    def relu_forward(self, x):
        raise RuntimeError("kernel launch failed (deliberately)")


BROKEN: tuple[type, ...] = (FdaNTerms, FdaOmegaOff, ClipExclusive, SignZeroIsZero, NoiseGradWithoutAlpha,
                            XnorPadMinusOne, ConvPadMinusOne, PackBitsReversed)
