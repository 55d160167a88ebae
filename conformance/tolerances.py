"""The tolerance policy, as data (SEMANTICS 9).

For an output element i the allowed error is::

    |got_i - ref_i| <= atol * M_i + rtol * |ref_i|

where ``M_i`` is the op's *magnitude* at that element, given by a named rule (``MAGNITUDE_RULES``):

- ``exact``: no tolerance at all (integers, bit-packed words, signs of given inputs, selections such as
  relu and max pool, which only ever copy an input value);
- ``unit``: M = 1 (elementwise ops with a single rounding);
- ``estimator_peak``: the surrogate's largest value, for ``fda`` its peak (4 omega / pi)(n + 1);
- ``abs_reduction``: the same op evaluated on the absolute values of its operands, i.e. sum_k |x_k w_k| over
  the reduction. That is at most the reduction length K times max|x| max|w|, and it is the quantity the
  rounding error of any summation order is proportional to (conv, matmul, pooling and their gradients);
- ``noise`` / ``quantizer`` / ``batch_norm`` / ``cross_entropy``: the same idea worked out for those ops.

Each op's record (records.py) holds its (atol, rtol, rule) per dtype; every allowed error has a floor at
the dtype's smallest normal times the op's magnitude (compare.py). Sign flips of *computed* values (layer and end-to-end
checks) are tolerated only when the reference value lies within ``SIGN_BAND[dtype]`` (relative to the
magnitude of the tensor) of 0; they are counted and reported. ``FD_RTOL`` is the tolerance of the
finite-difference gradient checks. Third parties may read these tables; the suite never changes them at
run time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from fdaref.noise import from_rows, to_rows

from .case import Case


@dataclass(frozen=True)
class Tol:
    """atol (times the magnitude of the rule) and rtol (times |reference|); ``rule`` names the magnitude;
    ``floor``: whether the dtype's smallest normal times the magnitude is the least error allowed."""

    atol: float
    rtol: float
    rule: str
    floor: bool = True   # SEMANTICS 9's floor (an underflow is not a failure); off where one rounding is all

    @property
    def exact(self) -> bool:
        return self.rule == "exact"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EXACT = Tol(0.0, 0.0, "exact")


def both(f32: Tol, f64: Tol) -> dict[str, Tol]:
    """A tolerance per dtype (what an op record holds)."""
    return {"float32": f32, "float64": f64}


# Layer and end-to-end checks: the tolerance of whole-model quantities relative to their magnitude.
LAYER_TOL: dict[str, Tol] = {"float32": Tol(2e-4, 0.0, "max_abs"), "float64": Tol(1e-9, 0.0, "max_abs")}
# A sign of a computed value may differ from the reference only where |reference| <= band * magnitude.
SIGN_BAND: dict[str, float] = {"float32": 1e-4, "float64": 1e-9}
# Finite-difference gradient checks: |<grad, u> - FD| <= FD_RTOL * (sum |grad| |u| + |FD|) + tiny.
FD_RTOL: dict[str, float] = {"float32": 2e-4, "float64": 1e-6}
FD_STEP = 1e-6  # relative central-difference step (float64)


def tolerance(op: str, dtype: str) -> Tol:
    """The tolerance of ``op`` in ``dtype``, from its record (KeyError for an unknown op or dtype)."""
    from .records import RECORDS
    try:
        return RECORDS[op].tol[dtype]
    except KeyError:
        raise KeyError(f"no tolerance for op {op!r} in dtype {dtype!r}") from None


# ---------------------------------------------------------------------------------------------------
# Magnitude rules: (case, float64 reference args, reference outputs) -> one magnitude per output
# (a float or an array broadcastable to that output; None for an output that is None).

Magnitudes = list[Optional[Any]]
Rule = Callable[[Case, list, list], Magnitudes]


def _each(outputs: Sequence[Any], value: Any) -> Magnitudes:
    return [None if o is None else value for o in outputs]


def _unit(case: Case, args: list, outs: list) -> Magnitudes:
    return _each(outs, 1.0)


def estimator_peak(estimator: str, params: dict) -> float:
    """Largest |value| of the surrogate ``estimator``, as its registry entry declares it (SEMANTICS 9: for fda
    (4 omega / pi)(n + 1)). An estimator that declares no peak is never drawn (see strategies.py)."""
    from fdaref.estimators import get_estimator
    est = get_estimator(estimator)
    if est.peak is None:
        raise LookupError(f"estimator {estimator!r} declares no peak: register it with peak=... to check it")
    return float(est.peak(est.resolve(params)))


def _estimator_peak(case: Case, args: list, outs: list) -> Magnitudes:
    return _each(outs, estimator_peak(case.kwargs["estimator"], dict(case.kwargs.get("params", {}))))


def _abs_reduction(case: Case, args: list, outs: list) -> Magnitudes:
    """The reference op on |operands|: sum |x w| over each output's reduction. Inputs that select rather
    than multiply (the x of max pool and relu / prelu) keep their sign; a pad value is taken absolutely."""
    from fdaref.reference import REFERENCE

    keep_sign = {"max_pool2d_backward": {"x"}, "prelu_backward": {"x"}}.get(case.op, set())
    new_args = [a if (name in keep_sign or not isinstance(a, np.ndarray) or a.dtype.kind != "f") else np.abs(a)
                for name, a in zip(case.names, args)]
    kwargs = dict(case.kwargs)
    if "pad_value" in kwargs:
        kwargs["pad_value"] = abs(float(kwargs["pad_value"]))
    bound = [None if b is None else np.abs(b) for b in _outputs(getattr(REFERENCE, case.op)(*new_args, **kwargs))]
    if case.op.startswith("conv2d_"):   # FFT and Winograd convolutions mix an output's rounding with its
        # neighbours' and the input's: every element is allowed at least 1/16 of the largest bound a window
        # can have (forward: max |x| times the largest sum |w| of a filter; backward: the tensor's largest),
        # so an output whose products are all 0 is not held to 0 exactly; a wrong pad value or bias is far
        # larger than that
        if case.op == "conv2d_forward":   # finite values only: a NaN or inf input must not allow everything
            x, w = (np.where(np.isfinite(a), np.abs(a), 0.0) for a in new_args[:2])
            reach = [max(float(np.max(x, initial=0.0)), kwargs.get("pad_value", 0.0))
                     * float(np.max(w.reshape(len(w), -1).sum(axis=1), initial=0.0))]
        else:
            reach = [float(np.max(b[np.isfinite(b)], initial=0.0)) if b is not None else 0.0 for b in bound]
        bound = [None if b is None else np.maximum(b, r / 16) for b, r in zip(bound, reach)]
    return bound


def _outputs(result: Any) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def noise_bounds(t: np.ndarray, w1: np.ndarray, w2: np.ndarray, layout: str, a: float,
                 g: Optional[np.ndarray] = None, atol: float = 0.0, dtype: Optional[str] = None
                 ) -> list[np.ndarray]:
    """|e(t)| bound (no g) or the bounds of (dt, dw1, dw2) for the upstream gradient g.

    A hidden unit whose pre-activation t W1 is within rounding of 0 in ``dtype`` (an underflow, a
    cancellation) may take either side of the relu kink in a correct implementation; its whole gradient
    contribution is then allowed (divided by ``atol``, as the bound is multiplied by it). A pre-activation
    whose every product is 0 (a zero row) is exactly 0 in any summation order, so it is not ambiguous:
    there relu'(0) = 0 is checked."""
    rows, aw1, aw2 = np.abs(to_rows(t, layout)), np.abs(w1), np.abs(w2)
    h = rows @ aw1
    if g is None:
        return [from_rows(h @ aw2, t.shape, layout) + abs(a) * (np.abs(t) + 1.0)]
    grows = np.abs(to_rows(g, layout))
    dh = grows @ aw2.T
    dt = from_rows(dh @ aw1.T, t.shape, layout) + abs(a) * np.abs(g)
    dw1 = rows.T @ dh
    if atol > 0 and dtype is not None:
        fi = np.finfo(dtype)
        signed = to_rows(t, layout) @ w1
        ambiguous = (np.abs(signed) <= 8 * fi.eps * h + 4 * fi.tiny) & (h > 0)
        if ambiguous.any():
            extra = np.where(ambiguous, dh, 0.0)
            dt = dt + from_rows(extra @ aw1.T, t.shape, layout) / atol
            dw1 = dw1 + rows.T @ extra / atol
    return [dt, dw1, h.T @ grows]


def _noise(case: Case, args: list, outs: list) -> Magnitudes:
    t, w1, w2 = case.get("t"), case.get("w1"), case.get("w2")
    g = case.get("g") if "g" in case.names else None
    return noise_bounds(t.astype(np.float64), w1.astype(np.float64), w2.astype(np.float64),
                        case.kwargs["layout"], case.kwargs.get("a", 0.1), None if g is None else g.astype(np.float64),
                        tolerance(case.op, t.dtype.name).atol, t.dtype.name)


def _quantizer(case: Case, args: list, outs: list) -> Magnitudes:
    kw = case.kwargs
    alpha = abs(float(kw["alpha"]))
    t, w1, w2 = (None if case.get(n) is None else case.get(n).astype(np.float64) for n in ("t", "w1", "w2"))
    if case.op == "quantize_forward":
        if w1 is None:
            return [1.0]
        return [1.0 + alpha * noise_bounds(t, w1, w2, kw["layout"], kw.get("a", 0.1))[0]]
    g = case.get("g").astype(np.float64)
    peak = estimator_peak(kw["estimator"], dict(kw.get("params", {})))
    base = np.abs(g) * peak
    if w1 is None:
        return [base, None, None]
    dtype = case.get("t").dtype.name
    dt, dw1, dw2 = noise_bounds(t, w1, w2, kw["layout"], kw.get("a", 0.1), g, tolerance(case.op, dtype).atol, dtype)
    return [base + alpha * dt, alpha * dw1 + 1e-300, alpha * dw2 + 1e-300]


def _channel_view(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _batch_norm(case: Case, args: list, outs: list) -> Magnitudes:
    x = case.get("x").astype(np.float64)
    gamma = np.abs(case.get("gamma").astype(np.float64))
    axes = (0,) + tuple(range(2, x.ndim))
    if case.op == "batch_norm_forward":
        y, mean, invstd, rm, rv = outs
        if y is None or mean is None or invstd is None:
            return _each(outs, 1.0)
        m, s = _channel_view(np.asarray(mean, np.float64), x.ndim), _channel_view(np.asarray(invstd, np.float64), x.ndim)
        # a two-pass variance: x - mean loses |mean| eps, so the error grows with |mean| s; a one-pass
        # E[x^2] - E[x]^2 loses (|mean| s)^2 eps, and is not allowed that
        cond = 1.0 + np.abs(m) * s
        xhat = np.abs(x - m) * s
        beta = np.abs(case.get("beta").astype(np.float64))
        mag_y = _channel_view(gamma, x.ndim) * (xhat + 1.0) * cond + _channel_view(beta, x.ndim)
        mag_mean = np.mean(np.abs(x), axis=axes)
        mag_inv = np.abs(np.asarray(invstd, np.float64)) * cond.reshape(-1)
        old_m, old_v = np.abs(case.get("running_mean").astype(np.float64)), np.abs(case.get("running_var").astype(np.float64))
        mag_rm = old_m + mag_mean
        mag_rv = old_v + np.abs(np.asarray(rv, np.float64)) * cond.reshape(-1)
        return [mag_y, mag_mean, mag_inv, mag_rm, mag_rv]
    g = np.abs(case.get("g").astype(np.float64))
    m = _channel_view(case.get("mean").astype(np.float64), x.ndim)
    s = _channel_view(np.abs(case.get("invstd").astype(np.float64)), x.ndim)
    xhat = np.abs(x - m) * s
    count = x.size / x.shape[1]
    mean_g = np.sum(g, axis=axes, keepdims=True) / count
    mean_gx = np.sum(g * xhat, axis=axes, keepdims=True) / count
    mag_dx = _channel_view(gamma, x.ndim) * s * (g + mean_g + xhat * mean_gx) * (1.0 + xhat)
    return [mag_dx, np.sum(g * xhat, axis=axes) + 1e-300, np.sum(g, axis=axes) + 1e-300]


def _cross_entropy(case: Case, args: list, outs: list) -> Magnitudes:
    logits = case.get("logits").astype(np.float64)
    scale = 1.0 + float(np.max(np.abs(logits))) if logits.size else 1.0
    if case.op == "cross_entropy_forward":
        return [scale]
    g = abs(float(np.asarray(case.get("g"))))
    return [g * scale / max(1, logits.shape[0])]


MAGNITUDE_RULES: dict[str, Rule] = {
    "unit": _unit,
    "estimator_peak": _estimator_peak,
    "abs_reduction": _abs_reduction,
    "noise": _noise,
    "quantizer": _quantizer,
    "batch_norm": _batch_norm,
    "cross_entropy": _cross_entropy,
}


def finite_magnitude(mag: Any, ref: Any) -> Any:
    """``mag`` where it is finite; elsewhere (inf or NaN inputs made the sum of |terms| inf or NaN, which
    would allow any value) the expected value's own size: a special value must then match exactly (NaN with
    NaN, inf with the same inf), a finite one relative to itself."""
    if mag is None or ref is None:
        return mag
    m = np.asarray(mag, np.float64)
    r = np.broadcast_to(np.asarray(ref, np.float64), np.broadcast_shapes(m.shape, np.shape(ref)))
    m = np.broadcast_to(m, r.shape)
    return np.where(np.isfinite(m), m, np.where(np.isfinite(r), np.abs(r), 0.0))


def magnitudes(tol: Tol, case: Case, ref_args: list, ref_outputs: list) -> Magnitudes:
    """The magnitude of each output under ``tol.rule`` (None everywhere for exact ops), finite everywhere
    (:func:`finite_magnitude`)."""
    if tol.exact:
        return [None] * len(ref_outputs)
    mags = MAGNITUDE_RULES[tol.rule](case, ref_args, ref_outputs)
    return [finite_magnitude(m, r) for m, r in zip(mags, ref_outputs)]


def policy_table() -> dict[str, dict[str, dict[str, Any]]]:
    """The whole policy as plain data (for the JSON report and the golden vectors' manifest)."""
    from .records import RECORDS
    return {op: {dt: t.to_dict() for dt, t in r.tol.items()} for op, r in RECORDS.items()}
