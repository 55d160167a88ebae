"""Check plain callables (NumPy, or anything that returns arrays) with the conformance suite in one line.

    from fdaref.conformance.adapters import check_sign, check_surrogate, check_quantizer

    def test_my_sign():
        check_sign(my_sign, zero=0.0)                       # my_sign(x) -> array
    def test_my_fda():
        check_surrogate(my_fda_grad, estimator="fda", params={"omega": 0.1, "clip": 1.0}, n_arg="n")

Each wraps the callables as a minimal op table (:class:`CallableOps`: the ops given, host plumbing and
``supports``), runs the standard runner on those ops with only the declared option values drawn, in float32
and float64 (``dtype=`` picks one: a callable that computes in float32 whatever it is given passes float32
alone), and returns the :class:`~fdaref.conformance.report.SuiteReport`; by default it raises AssertionError with the failure
reports (op, dtype, shapes, worst error with index and tolerance, reproduction inputs) when a case fails.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np

from ..report import DECLINED, CaseResult, SuiteReport
from ..runner import PROFILES, run_op
from ..strategies import ALL_OPTIONS, OptionSpace
from .declared import Declaration, nothing_left


class CallableOps:
    """An op table made of the given ops (name -> callable) on host numpy arrays, plus ``supports``."""

    devices = ("cpu",)
    dtypes = ("float32", "float64")
    version = "user code"

    def __init__(self, name: str, ops: Mapping[str, Callable[..., Any]], declaration: Declaration,
                 rebuild: str = ""):
        self.name, self.declaration, self.rebuild = name, declaration, rebuild
        for op, fn in ops.items():
            setattr(self, op, fn)

    def supports(self, op: str, option: str, value: Any) -> Optional[str]:
        return self.declaration.supports(op, option, value)

    def refuses(self, op: str, device: str, dtype: str) -> Optional[str]:
        return None if device == "cpu" else f"{self.name} runs on host arrays only"

    def from_numpy(self, a: np.ndarray, device: str = "cpu") -> np.ndarray:
        return np.array(a, copy=True)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def zeros(self, shape: Any, like: np.ndarray) -> np.ndarray:
        return np.zeros(tuple(shape), like.dtype)

    def sum_to_shape(self, x: np.ndarray, shape: Any) -> np.ndarray:
        from fdaref.reference import sum_to_shape
        return sum_to_shape(x, shape)


def run_wrapped(table: Any, ops: Iterable[str], *, dtype: str = "float32", profile: str = "quick",
                preset: Optional[str] = None, device: str = "cpu", raise_on_failure: bool = True) -> SuiteReport:
    """Run the suite's checks of ``ops`` on ``table`` (an op table with a ``declaration``) within ``preset``.

    The runner asks ``table.supports`` for the suite's vocabulary options; the declared parameters outside it
    narrow the drawn values here. Both kinds of declined values are listed in the report. The reproductions
    rebuild the table with ``table.rebuild``."""
    base = OptionSpace.from_preset(preset) if preset else ALL_OPTIONS
    prof = PROFILES[profile]
    report = SuiteReport(str(table.name), str(getattr(table, "version", "?")), device, dtype, prof.name, preset)
    marker = f"<{table.name}>"
    t0 = time.perf_counter()
    for op in ops:
        options, declined = table.declaration.narrow(op, base)
        for d in declined:
            report.add(CaseResult(op, f"option {d.option}={d.value!r}", str(table.name), device, dtype, DECLINED,
                                  kwargs={d.option: d.value}, message=d.reason))
        empty = nothing_left(options)
        if empty:
            report.add(CaseResult(op, "op", str(table.name), device, dtype, DECLINED,
                                  message=f"every value of {', '.join(empty)} declined: nothing to draw"))
            continue
        for res in run_op(table, op, device, dtype, profile=prof, options=options, spec=marker):
            if res.reproduction:
                res.reproduction = res.reproduction.replace(f"be = load_backend({marker!r})", table.rebuild or
                                                            "be = ...  # your implementation wrapped as by the adapter")
            report.add(res)
    report.seconds = time.perf_counter() - t0
    if raise_on_failure and not report.ok():
        raise AssertionError(report.render())
    return report


DTYPES = ("float32", "float64")


def run_dtypes(table: Any, ops: Iterable[str], dtype: Optional[str], profile: str, raise_on_failure: bool
               ) -> SuiteReport:
    """:func:`run_wrapped` in ``dtype``, or in both DTYPES when None, as one report."""
    dtypes = DTYPES if dtype is None else (dtype,)
    reports = [run_wrapped(table, ops, dtype=d, profile=profile, raise_on_failure=False) for d in dtypes]
    report = reports[0]
    report.dtype = ", ".join(dtypes)
    for other in reports[1:]:
        report.results += other.results
        report.seconds += other.seconds
    if raise_on_failure and not report.ok():
        raise AssertionError(report.render())
    return report


def _label(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def rebuild_source(factory: str, fn: Any, **kwargs: Any) -> str:
    """Python lines that import ``fn`` and rebuild its table with ``factory(fn, **kwargs)`` (a comment for a
    function that cannot be imported by name, such as a lambda)."""
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    if not module or "<" in name or "." in name or module == "__main__":
        return f"be = {factory}(YOUR_FUNCTION{args})  # {_label(fn)} from {module}"
    return (f"from fdaref.conformance.adapters import {factory}\nfrom {module} import {name}\n"
            f"be = {factory}({name}{args})")


def sign_table(fn: Callable[[np.ndarray], Any], *, zero: float = -1.0) -> CallableOps:
    """An op table whose ``sign`` is ``fn(x)``, declared to implement sign(0) = ``zero`` only."""
    return CallableOps(_label(fn), {"sign": lambda x, zero=zero: fn(x)}, Declaration(_label(fn), {"zero": zero}),
                       rebuild_source("sign_table", fn, zero=zero))


def check_sign(fn: Callable[[np.ndarray], Any], *, zero: float = -1.0, dtype: Optional[str] = None,
               profile: str = "quick", raise_on_failure: bool = True) -> SuiteReport:
    """``fn(x) -> sign(x)`` with sign(0) = ``zero`` (SEMANTICS 1), checked exactly on the suite's inputs."""
    return run_dtypes(sign_table(fn, zero=zero), ["sign"], dtype, profile, raise_on_failure)


def check_surrogate(fn: Callable[..., Any], *, estimator: str, params: Optional[Mapping[str, Any]] = None,
                    n_arg: Optional[str] = None, dtype: Optional[str] = None, profile: str = "quick",
                    raise_on_failure: bool = True) -> SuiteReport:
    """``fn(x) -> d sign/dx`` for ``estimator`` with the fixed ``params`` (SEMANTICS 2).

    For fda, name the argument that takes the number of terms with ``n_arg`` (``fn(x, n=...)``) to have every
    n of the suite drawn; otherwise give ``params["n"]`` and only that n is checked.
    """
    return run_dtypes(surrogate_table(fn, estimator=estimator, params=params, n_arg=n_arg), ["surrogate"], dtype,
                      profile, raise_on_failure)


def surrogate_table(fn: Callable[..., Any], *, estimator: str, params: Optional[Mapping[str, Any]] = None,
                    n_arg: Optional[str] = None) -> CallableOps:
    """An op table whose ``surrogate`` is ``fn`` (see :func:`check_surrogate`)."""
    params = dict(params or {})
    declared: dict[str, Any] = {"estimator": estimator, **params}
    if n_arg is not None:
        declared.pop("n", None)

    def surrogate(x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> Any:
        return fn(x, **{n_arg: int(params["n"])}) if n_arg is not None else fn(x)

    return CallableOps(_label(fn), {"surrogate": surrogate}, Declaration(_label(fn), declared),
                       rebuild_source("surrogate_table", fn, estimator=estimator, params=params, n_arg=n_arg))


def check_quantizer(forward: Optional[Callable[..., Any]] = None, backward: Optional[Callable[..., Any]] = None, *,
                    zero: float = -1.0, estimator: str = "fda", params: Optional[Mapping[str, Any]] = None,
                    eta_kind: str = "sin", a: float = 0.1, dtype: Optional[str] = None, profile: str = "quick",
                    raise_on_failure: bool = True) -> SuiteReport:
    """The quantizer of Eq. 14 as two callables with the fixed options given here:

    - ``forward(t, w1, w2, *, alpha, layout, training) -> z`` (w1 / w2 None without a noise module);
    - ``backward(g, t, w1, w2, *, alpha, layout, n) -> (dt, dw1, dw2)`` (n: the fda terms; dw1 / dw2 None
      without a module). Layouts and shapes are those of :mod:`fdaref.optable` (SEMANTICS 3 rows).
    """
    params = dict(params or {})
    declared = {"zero": zero, "estimator": estimator, "eta_kind": eta_kind, "a": a, **params}
    declared.pop("n", None)
    ops: dict[str, Callable[..., Any]] = {}
    if forward is not None:
        ops["quantize_forward"] = lambda t, w1, w2, *, alpha, layout, training, **_: forward(
            t, w1, w2, alpha=alpha, layout=layout, training=training)
    if backward is not None:
        ops["quantize_backward"] = lambda g, t, w1, w2, *, alpha, layout, params, **_: backward(
            g, t, w1, w2, alpha=alpha, layout=layout, n=params.get("n"))
    label = _label(forward or backward)
    table = CallableOps(label, ops, Declaration(label, declared))
    return run_dtypes(table, list(ops), dtype, profile, raise_on_failure)
