"""Gradient rules: backward ops against central finite differences in float64 (SEMANTICS 9).

A backward op's outputs (the backend's, in its own dtype) are checked along random directions u through
the identity <VJP(g), u> = d/de <g, F(x + e u)> at e = 0, with F a float64 forward:
- smooth ops (conv, linear, avg pool, batch norm, cross entropy, the noise module): F is the forward op of
  the reference (or, for batch norm, an independent float64 formula);
- surrogate gradients: F is the function whose derivative the surrogate is, e.g. for ``fda`` the truncated
  Fourier series s_n of Eq. 9 (clamped to [-clip, clip] when clipped), for ``clipped_ste`` clip(x, -1, 1);
  ``sign`` itself is never differentiated;
- piecewise ops (relu, prelu, the quantizer): directions are set to 0 on the elements (rows for the noise
  module) within a small band of a kink, so the difference quotient never straddles one.
``max_pool2d_backward`` has no rule: ties make it non-differentiable; it is checked against the reference.
Each op's rule sits in its record (records.py); the surrogates' antiderivatives and peaks are declared by the
estimator registry (:func:`fdaref.estimators.register_estimator`), so a registered estimator is checked too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from fdaref.noise import to_rows

from .case import Case, to_f64
from .tolerances import FD_RTOL, FD_STEP

Inputs = dict[str, Optional[np.ndarray]]


def antiderivative(x: np.ndarray, estimator: str, params: dict) -> Optional[np.ndarray]:
    """The registry's float64 antiderivative of ``estimator`` at ``x`` (None when it declares none)."""
    from fdaref.estimators import get_estimator
    fn = get_estimator(estimator).antiderivative
    return None if fn is None else np.asarray(fn(x, **params), np.float64)


def near_jump(x: np.ndarray, estimator: str, params: dict, h: np.ndarray) -> np.ndarray:
    """Where the surrogate jumps within 4 h of x (a clip edge, |x| = 1 of clipped_ste): found from the
    reference surrogate itself, so registered estimators need not declare their kinks."""
    from fdaref.estimators import estimator_grad
    lo, hi = estimator_grad(x - 4 * h, estimator, **params), estimator_grad(x + 4 * h, estimator, **params)
    mid = estimator_grad(x, estimator, **params)
    peak = max(1e-300, float(np.max(np.abs(np.concatenate([lo.ravel(), hi.ravel(), mid.ravel()])), initial=0)))
    return (np.abs(hi - lo) > 0.5 * peak) | ((mid == 0) != (hi == 0)) | ((mid == 0) != (lo == 0))


# -- the rules --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FDRule:
    """``forward(inputs, kwargs) -> array`` in float64; ``wrt[i]`` the input for backward output i;
    ``extra(case) -> inputs`` the forward inputs the backward case lacks (a zero bias);
    ``frozen(case, inputs, band) -> {name: mask}`` elements whose direction is set to 0 (near kinks)."""

    forward: Callable[[Inputs, dict], np.ndarray]
    wrt: tuple[Optional[str], ...]
    extra: Callable[[Case], Inputs] = lambda case: {}
    frozen: Callable[[Case, Inputs, float], dict[str, np.ndarray]] = lambda case, x, band: {}
    applies: Callable[[Case], bool] = lambda case: True
    what: str = ""
    step: Optional[Callable[[Case, Inputs], float]] = None  # the central-difference step (default: relative)


def _ref(op: str, names: tuple[str, ...], out: int = 0) -> Callable[[Inputs, dict], np.ndarray]:
    def forward(x: Inputs, kw: dict) -> np.ndarray:
        from fdaref.reference import REFERENCE
        res = getattr(REFERENCE, op)(*(x.get(n) for n in names), **kw)
        return res[out] if isinstance(res, tuple) else res
    return forward


def _without(kw: dict, *keys: str) -> dict:
    return {k: v for k, v in kw.items() if k not in keys}


def _conv_forward(x: Inputs, kw: dict) -> np.ndarray:
    return _ref("conv2d_forward", ("x", "w", "b"))(x, _without(kw, "has_bias"))


def _linear_forward(x: Inputs, kw: dict) -> np.ndarray:
    return _ref("linear_forward", ("x", "w", "b"))(x, _without(kw, "has_bias"))


def _zero_bias(case: Case) -> Inputs:
    if not case.kwargs.get("has_bias"):
        return {"b": None}
    return {"b": np.zeros(case.get("w").shape[0], dtype=np.float64)}


def _bn_forward(x: Inputs, kw: dict) -> np.ndarray:
    """Batch norm from scratch; eps is recovered from the given invstd (training) so F matches the case."""
    xx, gamma, beta = x["x"], x["gamma"], x["beta"]
    view = (1, -1) + (1,) * (xx.ndim - 2)
    if kw["training"]:
        axes = (0,) + tuple(range(2, xx.ndim))
        mean = xx.mean(axis=axes)
        var = ((xx - mean.reshape(view)) ** 2).mean(axis=axes)
        invstd = 1.0 / np.sqrt(var + kw["_eps"])
    else:
        mean, invstd = x["mean"], x["invstd"]
    return (xx - mean.reshape(view)) * invstd.reshape(view) * gamma.reshape(view) + beta.reshape(view)


def _bn_extra(case: Case) -> Inputs:
    return {"beta": np.zeros_like(to_f64(case.get("gamma")))}


def _quantize_forward(x: Inputs, kw: dict) -> np.ndarray:
    from fdaref.reference import REFERENCE
    from fdaref.estimators import get_estimator
    params = get_estimator(kw["estimator"]).resolve(kw.get("params", {}))
    out = antiderivative(x["t"], kw["estimator"], params)
    if x.get("w1") is not None and kw["alpha"] != 0:
        out = out + kw["alpha"] * REFERENCE.noise_forward(x["t"], x["w1"], x["w2"], layout=kw["layout"],
                                                          eta_kind=kw["eta_kind"], a=kw["a"])
    return out


def _noise_kink_rows(case: Case, x: Inputs, band: float) -> dict[str, np.ndarray]:
    """Freeze the rows of t whose pre-activation t W1 comes within ``band`` of 0 (the relu kink)."""
    t, w1 = x["t"], x.get("w1")
    if w1 is None:
        return {}
    layout = case.kwargs["layout"]
    h = to_rows(t, layout) @ w1
    scale = np.abs(to_rows(t, layout)) @ np.abs(w1) + 1e-300
    rows = to_rows(t, layout)
    rows_bad = np.any(np.abs(h) <= band * np.maximum(scale, 1.0), axis=1)
    from fdaref.noise import from_rows
    mask = from_rows(np.broadcast_to(rows_bad[:, None], rows.shape).copy(), t.shape, layout)
    # the weights: a frozen row of t must not move because of W1 either, unless it is all zero
    zero_rows = np.all(rows == 0, axis=1)
    frozen = {"t": mask}
    if np.any(rows_bad & ~zero_rows):
        frozen["w1"] = np.ones(w1.shape, dtype=bool)
    return frozen


def _quantize_frozen(case: Case, x: Inputs, band: float) -> dict[str, np.ndarray]:
    frozen = _noise_kink_rows(case, x, band) if case.kwargs["alpha"] != 0 else {}
    from fdaref.estimators import get_estimator
    params = get_estimator(case.kwargs["estimator"]).resolve(case.kwargs.get("params", {}))
    kink = near_jump(x["t"], case.kwargs["estimator"], params, np.full(x["t"].shape, band * 10))
    frozen["t"] = frozen.get("t", np.zeros(x["t"].shape, bool)) | kink
    return frozen


def _elementwise_kink(name: str) -> Callable[[Case, Inputs, float], dict[str, np.ndarray]]:
    def frozen(case: Case, x: Inputs, band: float) -> dict[str, np.ndarray]:
        return {name: np.abs(x[name]) <= band * 10}
    return frozen


def _ce_forward(x: Inputs, kw: dict) -> np.ndarray:
    return _ref("cross_entropy_forward", ("logits", "labels"))(x, kw)


NOISE_RULE = FDRule(_ref("noise_forward", ("t", "w1", "w2")), ("t", "w1", "w2"), frozen=_noise_kink_rows,
                    what="Eq. 13 forward (reference)")
def _quantize_step(case: Case, inputs: Inputs) -> float:
    """Absolute, over the surrogate's peak: the antiderivative varies over ~1/peak wherever t is."""
    from .tolerances import estimator_peak
    return FD_STEP / max(1.0, estimator_peak(case.kwargs["estimator"], dict(case.kwargs.get("params", {}))))


QUANTIZE_RULE = FDRule(_quantize_forward, ("t", "w1", "w2"), frozen=_quantize_frozen,
                       what="antiderivative of the surrogate (s_n for fda) + alpha e(t)", step=_quantize_step)
CONV_RULE = FDRule(_conv_forward, ("x", "w", "b"), extra=_zero_bias, what="conv2d_forward (reference)")
LINEAR_RULE = FDRule(_linear_forward, ("x", "w", "b"), extra=_zero_bias, what="linear_forward (reference)")
BATCH_NORM_RULE = FDRule(_bn_forward, ("x", "gamma", "beta"), extra=_bn_extra, what="batch norm from scratch (float64)")
RELU_RULE = FDRule(_ref("relu_forward", ("x",)), ("x",), frozen=_elementwise_kink("x"), what="relu")
PRELU_RULE = FDRule(_ref("prelu_forward", ("x", "slope")), ("x", "slope"), frozen=_elementwise_kink("x"),
                    what="prelu_forward (reference)")
AVG_POOL_RULE = FDRule(_ref("avg_pool2d_forward", ("x",)), ("x",), what="avg_pool2d_forward (reference)")
CROSS_ENTROPY_RULE = FDRule(_ce_forward, ("logits",), what="cross_entropy_forward (reference)")
SURROGATE_RULE = FDRule(lambda x, kw: x["x"], ("x",), what="the estimator's antiderivative (the registry's; s_n for fda)")


@dataclass
class FDResult:
    """Outcome of one finite-difference check."""

    ok: bool
    directions: int
    worst_error: float = 0.0
    allowed: float = 0.0
    predicted: float = 0.0
    finite_difference: float = 0.0
    message: str = ""
    skipped: str = ""


def _step(rule: FDRule, case: Case, inputs: Inputs, wrt: list) -> float:
    if rule.step is not None:
        return rule.step(case, inputs)
    return FD_STEP * max([1.0] + [float(np.max(np.abs(inputs[n]))) for n, _ in wrt if inputs[n].size])


def check_backward_fd(rule: Optional[FDRule], case: Case, grads: list[Optional[np.ndarray]], dtype: str,
                      seed: int = 0, directions: int = 2,
                      value_allowed: Optional[list[Optional[np.ndarray]]] = None) -> FDResult:
    """Check the backend's backward outputs ``grads`` (host arrays) of ``case`` against finite differences.

    ``value_allowed[i]`` is the absolute error the value check allows output i (so a float32 gradient that
    passes the value check is never failed for its rounding); the central difference's own error is
    estimated from a second one at twice the step and allowed too.
    """
    if rule is SURROGATE_RULE:
        return check_surrogate_fd(case, grads[0], dtype)
    if rule is None or not rule.applies(case):
        return FDResult(True, 0, skipped="no finite-difference rule for this op")
    inputs: Inputs = {n: to_f64(a) for n, a in case.arrays}
    g = inputs.pop("g")
    inputs.update(rule.extra(case))
    kw = dict(case.kwargs)
    if case.op == "batch_norm_backward" and kw["training"]:
        x = inputs["x"]
        axes = (0,) + tuple(range(2, x.ndim))
        var = x.var(axis=axes)
        # per channel, so that var + eps reproduces the given invstd exactly at the expansion point
        kw["_eps"] = 1.0 / inputs["invstd"].astype(np.float64) ** 2 - var
    fwd_kw = _without(kw, "has_bias") if case.op in ("conv2d_backward", "linear_backward") else kw
    allowed_by_name = dict(zip(rule.wrt, value_allowed or []))
    wrt = [(name, grad) for name, grad in zip(rule.wrt, grads) if name is not None and inputs.get(name) is not None]
    if not wrt:
        return FDResult(True, 0, skipped="no differentiable input")
    h = _step(rule, case, inputs, wrt)
    frozen = rule.frozen(case, inputs, 4 * h * 10)
    rng = np.random.default_rng(seed)
    worst = FDResult(True, directions)

    def central(u: dict, step: float) -> tuple[float, np.ndarray]:
        plus = dict(inputs, **{n: inputs[n] + step * u[n] for n in u})
        minus = dict(inputs, **{n: inputs[n] - step * u[n] for n in u})
        f_plus, f_minus = rule.forward(plus, fwd_kw), rule.forward(minus, fwd_kw)
        return float(np.sum(g * (f_plus - f_minus))) / (2 * step), f_plus

    for _ in range(directions):
        u = {}
        for name, _ in wrt:
            d = rng.standard_normal(inputs[name].shape)
            if name in frozen:
                d = np.where(frozen[name], 0.0, d)
            u[name] = d
        fd, f_plus = central(u, h)
        fd2, _ = central(u, 2 * h)
        pred, scale, value_slack, condition = 0.0, 0.0, 0.0, 0.0
        for name, grad in wrt:
            if grad is None:
                return FDResult(False, directions, message=f"gradient for {name} is None")
            gg = np.asarray(grad, np.float64)
            pred += float(np.sum(gg * u[name]))
            scale += float(np.sum(np.abs(gg * u[name])))
            condition += float(np.sum(np.abs(gg * inputs[name])))
            if allowed_by_name.get(name) is not None:
                value_slack += float(np.sum(np.abs(u[name]) * allowed_by_name[name]))
        # float64 evaluation error of <g, F> (its size plus its inputs' rounding, sum |grad x|: the
        # antiderivative at |omega t| ~ 250 has ~1e-12 of it), over the step
        roundoff = 16 * np.finfo(np.float64).eps * (float(np.sum(np.abs(g * f_plus))) + condition + 1.0) / h
        allowed = FD_RTOL[dtype] * (scale + abs(fd)) + roundoff + value_slack + 2 * abs(fd - fd2)
        err = abs(pred - fd)
        if err > allowed or not np.isfinite(err):
            return FDResult(False, directions, err, allowed, pred, fd,
                            f"<gradient, u> = {pred:.10g} but the central difference of {rule.what} "
                            f"gives {fd:.10g} (|difference| {err:.3g} > allowed {allowed:.3g})")
        if err / max(allowed, 1e-300) > worst.worst_error / max(worst.allowed, 1e-300):
            worst = FDResult(True, directions, err, allowed, pred, fd)
    return worst


def check_surrogate_fd(case: Case, got: Optional[np.ndarray], dtype: str) -> FDResult:
    """Elementwise: the surrogate vs the central difference of its antiderivative (s_n for fda).

    The step is absolute, FD_STEP over the surrogate's peak (a surrogate of peak P varies over ~1/P, so
    the step stays small against the width even at |omega x| = 1e4); the evaluation error of the
    antiderivative far out (its argument rounded, ~eps |x| P) and the difference's own error (estimated
    from a second difference at twice the step) are allowed for, element by element.
    """
    from fdaref.estimators import get_estimator

    from .tolerances import estimator_peak
    est = case.kwargs["estimator"]
    params = get_estimator(est).resolve(case.kwargs.get("params", {}))
    x = to_f64(case.get("x"))
    finite = np.isfinite(x)
    xs = np.where(finite, x, 0.0)
    peak = estimator_peak(est, params)
    h = np.full(x.shape, FD_STEP / max(1.0, peak))
    plus, minus = antiderivative(xs + h, est, params), antiderivative(xs - h, est, params)
    if plus is None:
        return FDResult(True, 0, skipped=f"estimator {est!r} declares no antiderivative (register_estimator("
                                         "antiderivative=...)): finite-difference check skipped")
    fd = (plus - minus) / (2 * h)
    fd2 = (antiderivative(xs + 2 * h, est, params) - antiderivative(xs - 2 * h, est, params)) / (4 * h)
    keep = finite & ~near_jump(xs, est, params, h)
    if got is None:
        return FDResult(False, 1, message="surrogate returned None")
    g = np.asarray(got, np.float64)
    eps = np.finfo(np.float64).eps
    allowed = (FD_RTOL[dtype] * peak * 10 + 16 * eps * (1.0 + peak * np.abs(xs)) / h + 2 * np.abs(fd - fd2))
    err = np.where(keep, np.abs(g - fd), 0.0)
    ratio = np.where(keep, err / allowed, 0.0)
    i = int(np.argmax(ratio)) if ratio.size else 0
    if ratio.size and ratio.flat[i] > 1:
        idx = tuple(int(v) for v in np.unravel_index(i, err.shape))
        return FDResult(False, 1, float(err.flat[i]), float(allowed.flat[i]), float(g.flat[i]), float(fd.flat[i]),
                        f"at index {idx} (x = {x.flat[i]!r}) the surrogate is {g.flat[i]:.10g} but the central "
                        f"difference of its antiderivative gives {fd.flat[i]:.10g}")
    return FDResult(True, 1, float(err.flat[i]) if err.size else 0.0, float(allowed.flat[i]) if err.size else 0.0)
