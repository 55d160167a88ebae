"""Error inputs: calls every op must REJECT with an exception of the stated class, never answer with garbage.

Each builder takes the dtype under test and returns :class:`ErrorCase` objects: a :class:`~.case.Case` that is
invalid in exactly one way (a shape, a dtype, a NaN where SEMANTICS forbids it, an invalid parameter), and the
exception classes that count as a rejection. ``ValueError`` covers fdaref's ``InputError`` (a subclass).
The runner reports each one; a backend that accepts one fails the run only under ``--strict``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .bits import pack_signs_independent
from .case import Case

VALUE = (ValueError,)
TYPE_OR_VALUE = (TypeError, ValueError)
LOOKUP_OR_VALUE = (LookupError, ValueError)


@dataclass(frozen=True)
class ErrorCase:
    """``case`` is invalid as ``label`` says; raising any of ``expected`` is the right answer."""

    label: str
    case: Case
    expected: tuple[type, ...]

    def expected_names(self) -> str:
        return " or ".join(c.__name__ for c in self.expected)


ErrorBuilder = Callable[[str], list[ErrorCase]]


def _a(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def sign_errors(dtype: str) -> list[ErrorCase]:
    x = _a((2, 3), dtype)
    return [ErrorCase("zero = 0.5 (SEMANTICS 1: -1, 0 or +1)", Case("sign", (("x", x),), {"zero": 0.5}), VALUE),
            ErrorCase("int32 input", Case("sign", (("x", np.ones((2, 3), np.int32)),), {"zero": -1.0}),
                      TYPE_OR_VALUE)]


def surrogate_errors(dtype: str) -> list[ErrorCase]:
    x = _a((4,), dtype)
    fda = {"n": 9, "omega": 0.1, "clip": None}
    return [ErrorCase("unknown estimator", Case("surrogate", (("x", x),), {"estimator": "no_such_estimator",
                                                                          "params": {}}), LOOKUP_OR_VALUE),
            ErrorCase("fda n = -1", Case("surrogate", (("x", x),), {"estimator": "fda", "params": {**fda, "n": -1}}),
                      VALUE),
            ErrorCase("fda omega = 0", Case("surrogate", (("x", x),),
                                            {"estimator": "fda", "params": {**fda, "omega": 0.0}}), VALUE),
            ErrorCase("fda with an unknown parameter", Case("surrogate", (("x", x),),
                                                            {"estimator": "fda", "params": {**fda, "beta": 1.0}}),
                      TYPE_OR_VALUE)]


def _noise_case(op: str, dtype: str, **changes) -> Case:
    t, w1, w2 = _a((3, 8), dtype, 1), _a((8, 1), dtype, 2), _a((1, 8), dtype, 3)
    kw = {"layout": "weight", "eta_kind": "sin", "a": 0.1}
    arrays = {"t": t, "w1": w1, "w2": w2}
    arrays.update({k: v for k, v in changes.items() if k in arrays})
    kw.update({k: v for k, v in changes.items() if k not in arrays})
    names = ("t", "w1", "w2")
    if op == "noise_backward":
        return Case(op, (("g", _a(t.shape, dtype, 4)),) + tuple((n, arrays[n]) for n in names), kw)
    return Case(op, tuple((n, arrays[n]) for n in names), kw)


def noise_errors(op: str) -> ErrorBuilder:
    def build(dtype: str) -> list[ErrorCase]:
        cases = [ErrorCase("w1 of the wrong row length (7, 1) for d = 8", _noise_case(op, dtype, w1=_a((7, 1), dtype)),
                           VALUE),
                 ErrorCase("layout 'rows' (SEMANTICS 3: weight or activation)", _noise_case(op, dtype, layout="rows"),
                           VALUE),
                 ErrorCase("eta_kind 'cos' (SEMANTICS 3: sin, linear or none)", _noise_case(op, dtype, eta_kind="cos"),
                           VALUE)]
        if op == "noise_backward":   # g has t's shape (SEMANTICS 11), never broadcast
            case = _noise_case(op, dtype)
            cases.append(ErrorCase("g of shape (1, 8) for t (3, 8)", case.replace_arrays(g=_a((1, 8), dtype, 4)), VALUE))
        return cases
    return build


def quantize_forward_errors(dtype: str) -> list[ErrorCase]:
    t = _a((2, 8), dtype)
    kw = {"alpha": 0.1, "zero": 0.5, "layout": "weight", "eta_kind": "sin", "a": 0.1, "training": True}
    return [ErrorCase("zero = 0.5", Case("quantize_forward", (("t", t), ("w1", None), ("w2", None)), kw), VALUE)]


def quantize_backward_errors(dtype: str) -> list[ErrorCase]:
    t = _a((2, 8), dtype)
    kw = {"alpha": 0.1, "estimator": "fda", "params": {"n": -1, "omega": 0.1, "clip": None}, "layout": "weight",
          "eta_kind": "sin", "a": 0.1}
    return [ErrorCase("fda n = -1", Case("quantize_backward", (("g", _a((2, 8), dtype, 5)), ("t", t), ("w1", None),
                                                               ("w2", None)), kw), VALUE)]


def weight_scale_errors(dtype: str) -> list[ErrorCase]:
    return [ErrorCase("mode 'mean' (SEMANTICS 5: channel, layer or none)",
                      Case("weight_scale", (("w", _a((3, 2, 3, 3), dtype)),), {"mode": "mean"}), VALUE)]


def conv_errors(op: str) -> ErrorBuilder:
    def build(dtype: str) -> list[ErrorCase]:
        geo = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1)}
        x, w = _a((1, 3, 4, 4), dtype), _a((2, 4, 3, 3), dtype, 1)
        good_w = _a((2, 3, 3, 3), dtype, 1)
        if op == "conv2d_forward":
            mk = lambda w_, pv: Case(op, (("x", x), ("w", w_), ("b", None)), {**geo, "pad_value": pv})  # noqa: E731
        else:
            g = _a((1, 2, 4, 4), dtype, 2)
            mk = lambda w_, pv: Case(op, (("g", g), ("x", x), ("w", w_)),  # noqa: E731
                                     {**geo, "pad_value": pv, "has_bias": False})
        cases = [ErrorCase("w has 4 input channels, x has 3", mk(w, 0.0), VALUE),
                 ErrorCase("pad_value 0.5 (SEMANTICS 5: 0, -1 or +1)", mk(good_w, 0.5), VALUE)]
        if op == "conv2d_forward":   # SEMANTICS 11: an error, not an empty (N, C_out, 0, 0) result
            small = _a((1, 3, 2, 2), dtype)
            cases.append(ErrorCase("a 5x5 kernel (dilation 2) larger than the padded 4x4 input",
                                   Case(op, (("x", small), ("w", good_w), ("b", None)),
                                        {"stride": (1, 1), "padding": (1, 1), "dilation": (2, 2), "pad_value": 0.0}),
                                   VALUE))
        return cases
    return build


def linear_errors(op: str) -> ErrorBuilder:
    def build(dtype: str) -> list[ErrorCase]:
        x, w = _a((2, 5), dtype), _a((3, 4), dtype, 1)
        if op == "linear_forward":
            case = Case(op, (("x", x), ("w", w), ("b", None)), {})
            bias = Case(op, (("x", x), ("w", _a((3, 5), dtype, 1)), ("b", _a((1,), dtype, 2))), {})
            return [ErrorCase("w has 4 input features, x has 5", case, VALUE),
                    ErrorCase("a bias of 1 for 3 outputs (never broadcast)", bias, VALUE)]
        case = Case(op, (("g", _a((2, 3), dtype, 2)), ("x", x), ("w", w)), {"has_bias": False})
        return [ErrorCase("w has 4 input features, x has 5", case, VALUE)]
    return build


def pool_errors(op: str) -> ErrorBuilder:
    """SEMANTICS 11: padding at most half the kernel (more makes windows of padding only)."""
    def build(dtype: str) -> list[ErrorCase]:
        x, kw = _a((1, 1, 2, 2), dtype), {"kernel": (2, 2), "stride": (1, 1), "padding": (2, 2)}
        lead = (("g", _a((1, 1, 5, 5), dtype, 1)),) if op.endswith("_backward") else ()
        return [ErrorCase("padding 2 for a 2x2 kernel (at most half of it)", Case(op, lead + (("x", x),), kw), VALUE)]
    return build


def cross_entropy_errors(op: str) -> ErrorBuilder:
    def build(dtype: str) -> list[ErrorCase]:
        logits = _a((2, 3), dtype)
        lead = (("g", np.asarray(1.0, dtype)),) if op == "cross_entropy_backward" else ()
        # (labels out of range are not in the contract: checking them costs a device sync per training step)
        smooth = Case(op, lead + (("logits", logits), ("labels", np.asarray([0, 2], np.int64))),
                      {"label_smoothing": 1.5})
        return [ErrorCase("label_smoothing 1.5 (outside [0, 1])", smooth, VALUE)]
    return build


def pack_signs_errors(dtype: str) -> list[ErrorCase]:
    x = np.where(_a((2, 70), dtype) > 0, 1.0, -1.0).astype(dtype)
    xn = x.copy()
    xn[1, 5] = np.nan
    return [ErrorCase("zero = 0 (a bit holds only -1 or +1)", Case("pack_signs", (("x", x),), {"axis": 1, "zero": 0.0}),
                      VALUE),
            ErrorCase("NaN input (SEMANTICS 9: NaN has no bit)", Case("pack_signs", (("x", xn),), {"axis": 1, "zero": -1.0}),
                      VALUE)]


def xnor_linear_errors(dtype: str) -> list[ErrorCase]:
    xp = pack_signs_independent(np.ones((2, 70)), 1)
    wp = pack_signs_independent(np.ones((3, 130)), 1)
    return [ErrorCase("x packs 2 words, w 3 words", Case("xnor_linear", (("x_packed", xp), ("w_packed", wp)),
                                                          {"features": 70}), VALUE)]


def none(dtype: str) -> list[ErrorCase]:
    return []
