"""Check a training loop's own per-epoch schedules (SEMANTICS 6) against fdaref's.

The schedules are the engine's, not an op's, so the op-table suite never sees them; a port that trains
computes n_e and alpha_e itself, and the classic slips live there: BiBench's floor((n_p - n_s) e / E), which
never reaches n_p; cos(pi e / E) for cos(pi (e + 1) / E); a division by E - 1 at E = 1; alpha not 0 at the
last epoch. :func:`check_schedule` compares ``n_fn(epoch, epochs)`` and ``alpha_fn(epoch, epochs)`` with the
preset's, at every epoch of runs of SCHEDULE_EPOCHS epochs and of every run length up to SWEEP_EPOCHS: n
exactly (an integer), alpha to ALPHA_RTOL of alpha_0, and exactly 0 where the preset's is 0 (alpha == 0 turns
the noise module off, SEMANTICS 4, so 1e-34 is not 0).
"""
from __future__ import annotations

import math
import numbers
import time
from typing import Any, Callable, Optional

from ..report import FAIL, PASS, CaseResult, SuiteReport

Schedule = Callable[[int, int], Any]
# E = 1 and 2 are the edges of (E - 1) and of the cosine; 141 and 142 the first run lengths where a step written
# in floating point, e * (9 / E) (bibench) or e * (9 / (E - 1)) (paper), truncates below the exact quotient.
SCHEDULE_EPOCHS = (1, 2, 3, 7, 10, 12, 100, 141, 142, 400)
SWEEP_EPOCHS = 300   # check_schedule also runs every E = 1 .. 300 (45,150 calls a function)
ALPHA_RTOL = 1e-6   # of alpha_0: a float32 cosine is well inside it, an epoch off by one is far outside


def alpha_atol(preset: str) -> float:
    """The absolute tolerance of alpha_e under ``preset``: ALPHA_RTOL of its alpha_0 (where the preset's alpha_e
    is 0 the port's must be exactly 0; the callers compare that)."""
    from fdaref.presets import get_preset
    return ALPHA_RTOL * abs(get_preset(preset).alpha0)


def _label(fn: Any) -> str:
    return getattr(fn, "__qualname__", type(fn).__name__)


def _agrees(got: Any, expected: float, tol: float, integral: bool) -> bool:
    """``got`` a number (a Python or NumPy scalar, or a 0-d array or tensor; an integer for n) within ``tol`` of ``expected``, and
    exactly ``expected`` where that is 0 and the tolerance is not already exact."""
    kind = numbers.Integral if integral else numbers.Real
    if getattr(got, "ndim", None) == 0 and hasattr(got, "item") and not isinstance(got, (bool, numbers.Number)):
        got = got.item()   # a 0-d array or tensor (a buffer): its value, of its own kind (int64 -> int)
    if not isinstance(got, kind) or isinstance(got, bool) or not math.isfinite(got):
        return False
    return got == expected if expected == 0 else abs(float(got) - expected) <= tol


def _compare(name: str, fn: Schedule, want: Schedule, runs: Any, tol: float) -> tuple[int, int, str]:
    """(epochs checked, epochs that differ, the first difference described) over every run length in ``runs``."""
    checked, bad, first = 0, 0, ""
    for epochs in runs:
        for epoch in range(epochs):
            expected = want(epoch, epochs)
            try:
                got = fn(epoch, epochs)
            except Exception as exc:  # noqa: BLE001 - a crash at some epoch is a failure of that epoch
                got, ok = f"{type(exc).__name__}: {exc}", False
            else:
                ok = _agrees(got, expected, tol, integral=name == "n_e")
            checked += 1
            if not ok:
                bad += 1
                first = first or f"{name}({epoch}, {epochs}) = {got!r}, expected {expected!r}"
    return checked, bad, first


def check_schedule(n_fn: Optional[Schedule] = None, alpha_fn: Optional[Schedule] = None, *,
                   preset: str = "paper", raise_on_failure: bool = True) -> SuiteReport:
    """Check ``n_fn(epoch, epochs) -> n_e`` and / or ``alpha_fn(epoch, epochs) -> alpha_e`` against the
    schedules of ``preset`` (SEMANTICS 6, ``fdaref.presets``) for every epoch of each run length in
    SCHEDULE_EPOCHS. One result per function and run length; a function that raises or returns a
    non-number at some epoch fails there. Raises AssertionError with the report on a failure unless
    ``raise_on_failure`` is False."""
    from fdaref.presets import get_preset

    if n_fn is None and alpha_fn is None:
        raise ValueError("check_schedule: give n_fn, alpha_fn or both")
    options = get_preset(preset)
    t0 = time.perf_counter()
    label = " / ".join(_label(f) for f in (n_fn, alpha_fn) if f is not None)
    report = SuiteReport(label, "schedules", "host", "float64", "schedule", preset)
    checks = []
    if n_fn is not None:
        checks.append(("n_e", n_fn, options.n_at, 0.0))
    if alpha_fn is not None:
        checks.append(("alpha_e", alpha_fn, options.alpha_at, alpha_atol(preset)))
    sweep = [e for e in range(1, SWEEP_EPOCHS + 1) if e not in SCHEDULE_EPOCHS]
    for name, fn, want, tol in checks:
        for label, runs in [(f"{e} epochs", [e]) for e in SCHEDULE_EPOCHS] + [(f"1 .. {SWEEP_EPOCHS} epochs", sweep)]:
            start = time.perf_counter()
            checked, bad, first = _compare(name, fn, want, runs, tol)
            res = CaseResult(f"schedule {name}", label, _label(fn), "host", "float64", FAIL if bad else PASS,
                             examples=checked, kwargs={"preset": preset, "epochs": runs[0] if len(runs) == 1 else None},
                             seconds=time.perf_counter() - start)
            if bad:
                res.message = (f"{bad} of {checked} epochs differ (tolerance {tol:g}; exactly 0 where alpha_e is); "
                               f"first: {first}")
            report.add(res)
    report.seconds = time.perf_counter() - t0
    if raise_on_failure and not report.ok():
        raise AssertionError(report.render())
    return report
