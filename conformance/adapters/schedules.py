"""Check a training loop's own per-epoch schedules (SEMANTICS 6) against fdaref's.

The schedules are the engine's, not an op's, so the op-table suite never sees them; a port that trains
computes n_e and alpha_e itself, and the classic slips live there: BiBench's floor((n_p - n_s) e / E), which
never reaches n_p; cos(pi e / E) for cos(pi (e + 1) / E); a division by E - 1 at E = 1; alpha not 0 at the
last epoch. :func:`check_schedule` compares ``n_fn(epoch, epochs)`` and ``alpha_fn(epoch, epochs)`` with the
preset's, at every epoch of runs of SCHEDULE_EPOCHS epochs: n exactly, alpha to ALPHA_RTOL of alpha_0.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional

from ..report import FAIL, PASS, CaseResult, SuiteReport

Schedule = Callable[[int, int], Any]
SCHEDULE_EPOCHS = (1, 2, 3, 7, 10, 12, 100, 400)   # E = 1 and 2 are the edges of (E - 1) and of the cosine
ALPHA_RTOL = 1e-6   # of alpha_0: a float32 cosine is well inside it, an epoch off by one is far outside


def _label(fn: Any) -> str:
    return getattr(fn, "__qualname__", type(fn).__name__)


def _compare(name: str, fn: Schedule, want: Schedule, epochs: int, tol: float) -> tuple[int, str]:
    """(number of epochs that differ, the first difference described)."""
    bad, first = 0, ""
    for epoch in range(epochs):
        expected = want(epoch, epochs)
        try:
            got = fn(epoch, epochs)
        except Exception as exc:  # noqa: BLE001 - a crash at some epoch is a failure of that epoch
            got, ok = f"{type(exc).__name__}: {exc}", False
        else:
            ok = (isinstance(got, (int, float)) and not isinstance(got, bool) and math.isfinite(got)
                  and abs(got - expected) <= tol)
        if not ok:
            bad += 1
            first = first or f"{name}({epoch}, {epochs}) = {got!r}, expected {expected!r}"
    return bad, first


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
        checks.append(("alpha_e", alpha_fn, options.alpha_at, ALPHA_RTOL * abs(options.alpha0)))
    for name, fn, want, tol in checks:
        for epochs in SCHEDULE_EPOCHS:
            start = time.perf_counter()
            bad, first = _compare(name, fn, want, epochs, tol)
            res = CaseResult(f"schedule {name}", f"{epochs} epochs", _label(fn), "host", "float64",
                             FAIL if bad else PASS, examples=epochs, kwargs={"preset": preset, "epochs": epochs},
                             seconds=time.perf_counter() - start)
            if bad:
                res.message = (f"{bad} of {epochs} epochs differ (tolerance {tol:g}); first: {first}")
            report.add(res)
    report.seconds = time.perf_counter() - t0
    if raise_on_failure and not report.ok():
        raise AssertionError(report.render())
    return report
