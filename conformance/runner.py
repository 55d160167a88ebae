"""Run the suite: every op of the table on one backend, device and dtype.

For each op: "not provided by <backend>" when the backend lacks it; "refused" with the backend's reason when
``backend.refuses(op, device, dtype)`` says so; otherwise the fixed edge cases, then a Hypothesis property over
constructed inputs (shrunk to a minimal failing example, which becomes the reproduction). An exception
raised inside the backend is a failed case carrying its traceback, and the run goes on.
"""
from __future__ import annotations

import copy
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from fdaref.optable import CHECKED_OPS

from .case import Case, as_outputs, plain
from .compare import OutputDiff, compare_output
from .error_inputs import ErrorCase
from .gradients import FDResult, check_backward_fd
from .isolation import DEFAULT_LIMITS, WARMUP, Limits, guarded_call
from .records import RECORDS, OpRecord

RECORD_INDEX = {op: i for i, op in enumerate(CHECKED_OPS)}  # per-op offset of --seed
from .capabilities import empty_options, restrict
from .report import DECLINED, ERROR, FAIL, NOT_PROVIDED, PASS, REFUSED, WARN, CaseResult, SuiteReport
from .repro import reproduction
from .strategies import ALL_OPTIONS, OptionSpace
from .tolerances import magnitudes


@dataclass(frozen=True)
class Profile:
    """How hard to look: Hypothesis examples per op, reproducibility, and whether the layer checks run."""

    name: str
    examples: int
    derandomize: bool
    layers: bool = True
    e2e_steps: int = 2


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", 10, True, layers=True, e2e_steps=1),
    "ci": Profile("ci", 40, True, layers=True, e2e_steps=2),
    "thorough": Profile("thorough", 300, False, layers=True, e2e_steps=4),
}
DEFAULT_PROFILE = "ci"


@dataclass
class Evaluation:
    """The verdict on one case."""

    ok: bool
    diffs: list[OutputDiff] = field(default_factory=list)
    fd: Optional[FDResult] = None
    error: str = ""
    message: str = ""
    strided: bool = False   # the failure shows with the inputs as non-contiguous arrays (Case.strided)

    def margin(self) -> Optional[float]:
        """The worst error as a fraction of the allowed one, over the outputs and the gradient check."""
        ratios = [d.margin for d in self.diffs if d.margin is not None]
        if self.fd is not None and not self.fd.skipped and self.fd.allowed > 0:
            ratios.append(self.fd.worst_error / self.fd.allowed)
        return max(ratios) if ratios else None

    def explain(self) -> str:
        parts = [self.message] if self.message else []
        parts += [d.summary() for d in self.diffs if not d.ok]
        if self.fd is not None and not self.fd.ok:
            parts.append(f"finite-difference gradient check failed: {self.fd.message}")
        if self.error:
            who = "the reference" if "REFERENCE" in self.message else "the backend"
            parts.append(f"{who} raised " + self.error.strip().splitlines()[-1])
        return "\n".join(parts)


def backend_label(backend: Any) -> str:
    return str(getattr(backend, "name", type(backend).__name__))


def guess_spec(backend: Any) -> str:
    """``module:attribute`` naming this object, for reproductions (best effort)."""
    for module_name in (getattr(type(backend), "__module__", None), getattr(backend, "__module__", None)):
        module = sys.modules.get(module_name or "")
        if module is None:
            continue
        for attr, value in vars(module).items():
            if value is backend:
                return f"{module_name}:{attr}"
    cls = type(backend)
    if cls.__module__ in sys.modules and getattr(sys.modules[cls.__module__], cls.__qualname__, None) is cls:
        return f"{cls.__module__}:{cls.__qualname__}"  # load_backend calls a zero-argument factory
    return f"{backend_label(backend)}"


def _call_backend(backend: Any, device: str, case: Case, seconds: Optional[float]) -> tuple[Any, str]:
    """((outputs, the inputs read back, the keyword arguments as the op left them), "") or (None, what went
    wrong), under the time limit."""
    def call() -> tuple[list, list, dict]:
        dev_args = [None if a is None else backend.from_numpy(a, device) for _, a in case.arrays]
        kwargs = copy.deepcopy(case.kwargs)
        result = getattr(backend, case.op)(*dev_args, **kwargs)
        got = [None if o is None else np.asarray(backend.to_numpy(o)) for o in as_outputs(result)]
        after = [None if a is None else np.asarray(backend.to_numpy(a)) for a in dev_args]
        return got, after, kwargs
    return guarded_call(call, seconds)


def _compare_outputs(record: OpRecord, backend: Any, device: str, dtype: str, case: Case, ref_out: list,
                     mags: list, limits: Limits) -> tuple[Optional[list], list[OutputDiff], Evaluation]:
    """Run ``case`` on the backend and compare with ``ref_out``: (outputs, diffs, an Evaluation that is
    the verdict where something structural went wrong, else None)."""
    answer, problem = _call_backend(backend, device, case, WARMUP.limit(backend, case.op, limits))
    if problem:
        return None, [], Evaluation(False, error=problem)
    got, after, kwargs_after = answer
    for (name, given_a), now in zip(case.arrays, after):
        if given_a is not None and now is not None and (now.shape != given_a.shape or
                                                        not np.array_equal(now, given_a, equal_nan=True)):
            return None, [], Evaluation(False, message=f"the op modified its input {name!r} in place")
    changed = [k for k in case.kwargs if kwargs_after.get(k) != case.kwargs[k]]
    if changed:   # callers share keyword arguments between calls (a layer's params dict, say)
        return None, [], Evaluation(False, message=f"the op modified its keyword argument(s) {', '.join(changed)} "
                                                   f"in place: given {plain({k: case.kwargs[k] for k in changed})}, "
                                                   f"left {plain({k: kwargs_after.get(k) for k in changed})}")
    if len(got) != len(ref_out):
        return None, [], Evaluation(False, message=f"returned {len(got)} outputs, expected {len(ref_out)} "
                                                   f"({', '.join(record.outputs)})")
    tol = record.tolerance(dtype)
    diffs = [compare_output(name, g, r, tol, m, record.expected_dtype(i, dtype))
             for i, (name, g, r, m) in enumerate(zip(record.outputs, got, ref_out, mags))]
    return got, diffs, None


# The suite feeds NaN, inf and subnormals on purpose: numpy's warnings about them (in the reference, the
# tolerances or a NumPy backend) are expected, not news, and would bury the report.
@np.errstate(all="ignore")
def evaluate(record: OpRecord, backend: Any, device: str, dtype: str, case: Case, *, gradients: bool = True,
             fd_seed: int = 0, limits: Limits = DEFAULT_LIMITS) -> Evaluation:
    """Run ``case`` on the backend and the reference and compare every output (and the gradient rule)."""
    ref_args = case.reference_args()
    try:
        ref_out = as_outputs(record.reference()(*ref_args, **case.reference_kwargs()))
    except Exception:  # noqa: BLE001 - a bug in the reference or the suite: report it, never hide it
        return Evaluation(False, error=traceback.format_exc(), message="the REFERENCE raised (a bug in fdaref)")
    tol = record.tolerance(dtype)
    mags = magnitudes(tol, case, ref_args, ref_out)
    got, diffs, verdict = _compare_outputs(record, backend, device, dtype, case, ref_out, mags, limits)
    if verdict is not None:
        return verdict
    ok = all(d.ok for d in diffs)
    strided = case.strided() if ok else None
    if strided is not None:   # the same values as non-contiguous arrays: a kernel that ignores strides differs
        _, diffs_s, verdict = _compare_outputs(record, backend, device, dtype, strided, ref_out, mags, limits)
        note = ("with the same inputs as non-contiguous arrays (2-D in Fortran order, 3-D and up as an NHWC buffer "
                "viewed as NCHW or a CHWN one, by the shape, 1-D as strided views)")
        if verdict is not None:
            verdict.message = f"{note}: {verdict.message}" if verdict.message else note
            verdict.strided = True
            return verdict
        if not all(d.ok for d in diffs_s):
            return Evaluation(False, diffs_s, message=f"{note} the outputs differ (C-contiguous inputs pass)",
                              strided=True)
    fd = None
    structural = all(not d.problem for d in diffs)
    if gradients and structural and record.fd is not None:
        allowed = [None if m is None else tol.atol * np.asarray(m, np.float64) for m in mags]
        try:
            fd = check_backward_fd(record.fd, case, got, dtype, seed=fd_seed, value_allowed=allowed)
        except Exception:  # noqa: BLE001 - a broken gradient can make the check itself blow up
            fd = FDResult(False, 0, message="the finite-difference check raised:\n" + traceback.format_exc())
        ok = ok and fd.ok
    return Evaluation(ok, diffs, fd)


def _result(record: OpRecord, backend: Any, spec: str, device: str, dtype: str, check: str, case: Case,
            ev: Evaluation, examples: int, seconds: float) -> CaseResult:
    outcome = PASS if ev.ok else (ERROR if ev.error else FAIL)
    res = CaseResult(record.op, check, backend_label(backend), device, dtype, outcome, examples,
                     shapes=case.shapes(), kwargs=plain(case.kwargs),
                     diffs=[d.to_dict() for d in ev.diffs], seconds=seconds)
    if ev.fd is not None:
        res.gradient = {"ok": ev.fd.ok, "directions": ev.fd.directions, "worst_error": ev.fd.worst_error,
                        "allowed": ev.fd.allowed, "message": ev.fd.message, "skipped": ev.fd.skipped}
    flips = sum(d.sign_flips for d in ev.diffs)
    if flips:
        res.sign_flips = flips
    res.margin = ev.margin()
    if not ev.ok:
        res.message = ev.explain()
        res.traceback = ev.error
        res.reproduction = reproduction(case, spec, device, dtype, strided=ev.strided)
    return res


class _CaseFailed(AssertionError):
    pass


Begin = Callable[[str, float], None]


def _no_begin(key: str, seconds: float) -> None:
    pass


@dataclass(frozen=True)
class RunControl:
    """How one run behaves: time limits, the Hypothesis seed (None: the profile's), strict error inputs, the
    checks to leave out (already done by a previous worker) and a callback announcing each check."""

    limits: Limits = DEFAULT_LIMITS
    seed: Optional[int] = None
    strict: bool = False
    skip: frozenset = frozenset()
    begin: Begin = _no_begin


DEFAULT_CONTROL = RunControl()


def run_op(backend: Any, op: str, device: str, dtype: str, *, profile: Profile, options: OptionSpace = ALL_OPTIONS,
           spec: Optional[str] = None, control: RunControl = DEFAULT_CONTROL) -> list[CaseResult]:
    """Every check of one op: not provided / refused / declined, the edge cases, the error inputs, then the
    Hypothesis property. Each check has a key ``op#...``; keys in ``control.skip`` are left out."""
    record = RECORDS[op]
    spec = spec or guess_spec(backend)
    label = backend_label(backend)
    if not callable(getattr(backend, op, None)):
        return [CaseResult(op, "op", label, device, dtype, NOT_PROVIDED, message=f"not provided by {label}")]
    try:
        reason = backend.refuses(op, device, dtype)
    except Exception:  # noqa: BLE001
        return [CaseResult(op, "refuses()", label, device, dtype, ERROR, message="refuses() raised",
                           traceback=traceback.format_exc())]
    if reason:
        return [CaseResult(op, "op", label, device, dtype, REFUSED, message=str(reason))]
    try:
        options, declined = restrict(backend, op, options)
    except Exception:  # noqa: BLE001 - a bug in the backend's supports()
        return [CaseResult(op, "supports()", label, device, dtype, ERROR, message="supports() raised",
                           traceback=traceback.format_exc())]
    results = [CaseResult(op, f"option {d.option}={d.value!r}", label, device, dtype, DECLINED,
                          kwargs={d.option: plain(d.value)}, message=d.reason) for d in declined]
    left_empty = empty_options(op, options)
    if left_empty:
        return results + [CaseResult(op, "op", label, device, dtype, DECLINED,
                                     message=f"every value of {', '.join(left_empty)} declined: nothing to draw")]
    for i, case in enumerate(record.edges(dtype, options)):
        key = f"{op}#edge{i}"
        if key in control.skip:
            continue
        control.begin(key, WARMUP.peek(backend, op, control.limits))
        t0 = time.perf_counter()
        ev = evaluate(record, backend, device, dtype, case, limits=control.limits)
        results.append(_result(record, backend, spec, device, dtype, f"edge: {case.label}", case, ev, 1,
                               time.perf_counter() - t0))
    refused_values = {(d.option, plain(d.value)) for d in declined}
    for i, err in enumerate(record.error_inputs(dtype)):
        key = f"{op}#error{i}"
        uses_declined = any((k, plain(v)) in refused_values for k, v in err.case.kwargs.items()
                            if not isinstance(v, dict))
        if key not in control.skip and not uses_declined:
            control.begin(key, WARMUP.peek(backend, op, control.limits))
            results.append(check_error_input(backend, spec, device, dtype, err, control))
    key = f"{op}#random"
    if key not in control.skip:
        results.append(run_property(record, backend, device, dtype, profile=profile, options=options, spec=spec,
                                    control=control, key=key))
    return results


def check_error_input(backend: Any, spec: str, device: str, dtype: str, err: ErrorCase,
                      control: RunControl = DEFAULT_CONTROL) -> CaseResult:
    """The backend must raise one of ``err.expected``; accepting the input (or another error) is reported,
    a failure under ``control.strict``, a warning otherwise. A hang, an exit or a crash is always a failure."""
    case = err.case
    t0 = time.perf_counter()
    label = backend_label(backend)

    def call() -> Any:
        try:
            dev_args = [None if a is None else backend.from_numpy(a, device) for _, a in case.arrays]
            getattr(backend, case.op)(*dev_args, **copy.deepcopy(case.kwargs))
        except err.expected as exc:
            return ("rejected", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        except Exception as exc:  # noqa: BLE001 - a rejection, but with another class than the contract's
            return ("other", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return ("accepted", "")
    answer, problem = guarded_call(call, WARMUP.limit(backend, case.op, control.limits))
    res = CaseResult(case.op, f"error input: {err.label}", label, device, dtype, PASS, 1,
                     shapes=case.shapes(), kwargs=plain(case.kwargs), seconds=time.perf_counter() - t0)
    if problem:
        res.outcome, res.message, res.traceback = ERROR, problem.splitlines()[0], problem
        return res
    verdict, text = answer
    if verdict == "rejected":
        res.message = f"rejected as expected ({text})"
        return res
    res.outcome = FAIL if control.strict else WARN
    res.message = (f"expected {err.expected_names()}, but the op accepted the input" if verdict == "accepted" else
                   f"expected {err.expected_names()}, got {text}") + ("" if control.strict else
                                                                     " (a failure with --strict)")
    res.reproduction = reproduction(case, spec, device, dtype)
    return res


def run_property(record: OpRecord, backend: Any, device: str, dtype: str, *, profile: Profile,
                 options: OptionSpace = ALL_OPTIONS, spec: Optional[str] = None,
                 control: RunControl = DEFAULT_CONTROL, key: str = "") -> CaseResult:
    """The Hypothesis property of one op; on failure the shrunk example is reported and reproduced.

    After a case that timed out, exited or was interrupted, the remaining examples fail at once (so that
    shrinking does not wait for the limit again); the first such case is the one reported."""
    spec = spec or guess_spec(backend)
    state: dict[str, Any] = {"n": 0, "fail": None, "stop": False}
    t0 = time.perf_counter()
    seeded = control.seed is not None

    @settings(max_examples=profile.examples, deadline=None, derandomize=profile.derandomize and not seeded,
              database=None, suppress_health_check=list(HealthCheck), print_blob=False,
              phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink), report_multiple_bugs=False)
    @given(record.strategy(dtype, options))
    def prop(case: Case) -> None:
        if state["stop"]:
            raise _CaseFailed("stopped after a case that hung, exited or was interrupted")
        state["n"] += 1
        control.begin(key, WARMUP.peek(backend, record.op, control.limits))
        ev = evaluate(record, backend, device, dtype, case, fd_seed=state["n"], limits=control.limits)
        m = ev.margin()
        if m is not None:
            state["margin"] = max(m, state.get("margin") or 0.0)
        if not ev.ok:
            state["fail"] = (case, ev)
            if ev.error.startswith(("CaseTimeout", "SystemExit", "KeyboardInterrupt")):
                state["stop"] = True
            raise _CaseFailed(ev.explain())

    if seeded:
        prop = hypothesis_seed(int(control.seed) + RECORD_INDEX[record.op])(prop)
    crash = ""
    try:
        prop()
    except _CaseFailed:
        pass
    except Exception:  # noqa: BLE001 - Hypothesis itself (Flaky etc.) or a bug in a strategy
        crash = traceback.format_exc()
    seconds = time.perf_counter() - t0
    how = f"seed {control.seed}" if seeded else ("derandomized" if profile.derandomize else "random seed")
    check = f"random ({profile.examples} examples, {how})"
    if state["fail"] is not None:
        case, ev = state["fail"]
        res = _result(record, backend, spec, device, dtype, check + ("" if state["stop"] else ", shrunk"), case, ev,
                      state["n"], seconds)
        if crash:
            res.message += "\n(Hypothesis: " + crash.strip().splitlines()[-1] + ")"
        return res
    if crash:
        return CaseResult(record.op, check, backend_label(backend), device, dtype, ERROR, state["n"],
                          message="the property could not run", traceback=crash, seconds=seconds)
    return CaseResult(record.op, check, backend_label(backend), device, dtype, PASS, state["n"], seconds=seconds,
                      margin=state.get("margin"))


def resolve_backend(backend: Union[str, Any]) -> tuple[Any, str]:
    """(op table, spec) from a name / ``module:object`` string or an op table object."""
    if isinstance(backend, str):
        from fdaref.backend_loader import load_backend
        return load_backend(backend), backend
    return backend, guess_spec(backend)


def run_suite(backend: Union[str, Any], *, device: str = "cpu", dtype: str = "float32",
              profile: Union[str, Profile] = DEFAULT_PROFILE, preset: Optional[str] = None,
              ops: Optional[Iterable[str]] = None, layers: Optional[bool] = None,
              progress: Any = None, seed: Optional[int] = None, strict: bool = False,
              limits: Limits = DEFAULT_LIMITS, control: Optional[RunControl] = None) -> SuiteReport:
    """Check ``backend`` against the reference; returns the :class:`SuiteReport` (``report.ok()``).

    ``backend`` is a name, ``package.module:object`` or an op table. ``preset`` restricts the drawn options to
    that preset's (SEMANTICS 7). ``ops`` restricts the ops; ``layers`` forces the layer / end-to-end checks on or off.
    ``seed`` seeds Hypothesis (a profile without ``derandomize`` draws one, kept in ``report.seed``); ``strict``
    makes an accepted error input a failure; ``limits`` are the per-case time limits (isolation.py).
    Raises :class:`fdaref.backend_loader.BackendUnavailable` when the backend cannot run here.
    """
    be, spec = resolve_backend(backend)
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    if seed is None and not prof.derandomize:
        seed = draw_seed()
    control = control or RunControl(limits=limits, seed=seed, strict=strict)
    options = OptionSpace.from_preset(preset) if preset else ALL_OPTIONS
    report = SuiteReport(backend_label(be), str(getattr(be, "version", "?")), device, dtype, prof.name, preset,
                         seed=control.seed, strict=control.strict)
    t0 = time.perf_counter()

    def add(res: CaseResult) -> None:
        report.add(res)
        if progress is not None:
            progress(res)

    if device not in tuple(getattr(be, "devices", ("cpu",))):
        add(CaseResult("*", "device", report.backend, device, dtype, REFUSED,
                       message=f"{report.backend} declares devices {tuple(getattr(be, 'devices', ()))}"))
    elif dtype not in tuple(getattr(be, "dtypes", ("float32", "float64"))):
        add(CaseResult("*", "dtype", report.backend, device, dtype, REFUSED,
                       message=f"{report.backend} declares dtypes {tuple(getattr(be, 'dtypes', ()))}"))
    else:
        for op in (list(ops) if ops is not None else CHECKED_OPS):
            for res in run_op(be, op, device, dtype, profile=prof, options=options, spec=spec, control=control):
                add(res)
        run_layers = prof.layers if layers is None else layers
        if run_layers and ops is None:
            from .layers import layer_checks
            for res in layer_checks(be, device, dtype, profile=prof, preset=preset, spec=spec, control=control):
                add(res)
    report.seconds = time.perf_counter() - t0
    return report


def draw_seed() -> int:
    """A fresh seed for a random profile (printed and stored in the report, so ``--seed`` replays it)."""
    import secrets
    return secrets.randbelow(2**31)
