"""Results of a conformance run: one :class:`CaseResult` per checked case, a text report and a JSON report."""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from fdaref.atomic import json_safe, write_json_atomic

SUITE_VERSION = "1.0.0"

# Outcomes. pass / fail / error are verdicts; not_provided, refused and declined (an option value the backend
# declines through ``supports``, see capabilities.py) are declarations by the backend: neither pass nor fail.
# warn: a bad input the backend did not reject (error inputs; a failure only under --strict).
PASS, FAIL, ERROR, NOT_PROVIDED, REFUSED, DECLINED = "pass", "fail", "error", "not_provided", "refused", "declined"
WARN = "warn"


@dataclass
class CaseResult:
    """The outcome of one case: an edge case, a Hypothesis property, a gradient or a layer check."""

    op: str
    check: str                 # "edge: <label>", "random (N examples)", "layer: ...", "end-to-end: ..."
    backend: str
    device: str
    dtype: str
    outcome: str
    examples: int = 0
    message: str = ""
    shapes: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    diffs: list[dict[str, Any]] = field(default_factory=list)
    gradient: dict[str, Any] = field(default_factory=dict)
    sign_flips: int = 0
    sign_band: Optional[float] = None
    kink_crossings: dict[str, int] = field(default_factory=dict)  # PReLU / ReLU at 0, max-pool ties (layers)
    margin: Optional[float] = None  # worst |error| / allowed over the case's outputs (< 1 passes)
    reproduction: str = ""
    traceback: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.outcome == PASS

    @property
    def failed(self) -> bool:
        return self.outcome in (FAIL, ERROR)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    def render(self) -> str:
        """The failure report: op, backend, device, dtype, shapes, errors with index and tolerance, repro."""
        head = f"[{self.outcome.upper()}] {self.op} on {self.backend} ({self.device}, {self.dtype}) -- {self.check}"
        if self.outcome in (NOT_PROVIDED, REFUSED, DECLINED, PASS, WARN):
            return head + (f": {self.message}" if self.message else "")
        lines = [head]
        if self.shapes:
            lines.append(f"  shapes: {self.shapes}")
        if self.kwargs:
            lines.append(f"  parameters: {self.kwargs}")
        if self.message:
            lines += ["  " + line for line in self.message.splitlines()]
        if self.sign_band is not None:
            lines.append(f"  sign flips within |ref| <= {self.sign_band:.3g} of 0: {self.sign_flips} (tolerated, reported)")
        if self.kink_crossings:
            lines.append(f"  kinks crossed within the same band: {self.kink_crossings} (tolerated, reported)")
        if self.traceback:
            lines.append("  traceback:")
            lines += ["    " + line for line in self.traceback.rstrip().splitlines()]
        if self.reproduction:
            lines.append("  reproduce with:")
            lines += ["    " + line for line in self.reproduction.splitlines()]
        return "\n".join(lines)


@dataclass
class SuiteReport:
    """Everything about one run of the suite on one backend / device / dtype."""

    backend: str
    backend_version: str
    device: str
    dtype: str
    profile: str
    preset: Optional[str]
    results: list[CaseResult] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    seconds: float = 0.0
    seed: Optional[int] = None      # the Hypothesis seed (``--seed`` replays it); None: derandomized
    strict: bool = False

    def add(self, result: CaseResult) -> None:
        self.results.append(result)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.outcome] = out.get(r.outcome, 0) + 1
        return out

    def ok(self, allow_missing: bool = False) -> bool:
        """Every case passed (refusals declared by the backend do not count against it)."""
        bad = {FAIL, ERROR} | (set() if allow_missing else {NOT_PROVIDED})
        return not any(r.outcome in bad for r in self.results)

    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.failed]

    def op_status(self) -> dict[str, str]:
        """One word per op: fail / error beats not_provided / refused beats pass."""
        rank = {ERROR: 6, FAIL: 5, NOT_PROVIDED: 4, REFUSED: 3, WARN: 2, PASS: 1, DECLINED: 0}  # a declined value only shows alone
        out: dict[str, str] = {}
        for r in self.results:
            if r.op not in out or rank[r.outcome] > rank[out[r.op]]:
                out[r.op] = r.outcome
        return out

    def summary(self) -> str:
        c = self.counts
        parts = ", ".join(f"{c[k]} {k.replace('_', ' ')}" for k in (PASS, FAIL, ERROR, WARN, NOT_PROVIDED, REFUSED, DECLINED)
                          if c.get(k))
        flips = sum(r.sign_flips for r in self.results)
        kinks = sum(sum(r.kink_crossings.values()) for r in self.results)
        extra = (f"; {flips} sign flips near 0 tolerated" if flips else "") + (
            f"; {kinks} kink crossings (PReLU / ReLU / max pool) tolerated" if kinks else "")
        seed = f", seed {self.seed}" if self.seed is not None else ""
        return (f"{self.backend} {self.backend_version} on {self.device} in {self.dtype} "
                f"(profile {self.profile}{', preset ' + self.preset if self.preset else ''}{seed}): "
                f"{parts} in {self.seconds:.1f} s{extra}")

    def render(self, verbose: bool = False) -> str:
        lines = []
        for r in self.results:
            if r.failed or verbose or r.outcome in (NOT_PROVIDED, REFUSED, DECLINED, WARN):
                lines.append(r.render())
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        from fdaref import __version__ as fdaref_version

        from .tolerances import policy_table
        return json_safe({
            "suite": {"name": "fdaref.conformance", "version": SUITE_VERSION, "fdaref": fdaref_version},
            "backend": {"name": self.backend, "version": self.backend_version},
            "target": {"device": self.device, "dtype": self.dtype},
            "platform": {"python": sys.version.split()[0], "system": platform.platform(),
                         "machine": platform.machine(), "numpy": np.__version__},
            "profile": self.profile, "preset": self.preset, "seed": self.seed, "strict": self.strict,
            "started": self.started, "seconds": self.seconds,
            "summary": {"ok": self.ok(), "counts": self.counts,
                        "sign_flips": sum(r.sign_flips for r in self.results),
                        "kink_crossings": sum(sum(r.kink_crossings.values()) for r in self.results)},
            "ops": self.op_status(),
            "declined": [{"op": r.op, "check": r.check, "reason": r.message} for r in self.results
                         if r.outcome == DECLINED],
            "estimators_without_fd": estimators_without_fd(),
            "tolerances": policy_table(),
            "cases": [r.to_dict() for r in self.results],
        })

    def write_json(self, path: str) -> None:
        """The JSON report, written atomically (an unwritable path raises InputError naming it)."""
        write_json_atomic(path, self.to_dict())


def estimators_without_fd() -> list[str]:
    """Registered estimators that opt out of the finite-difference check (no antiderivative declared) or
    are not checked at all (no peak declared)."""
    from fdaref.estimators import estimator_names, get_estimator
    out = []
    for name in estimator_names():
        est = get_estimator(name)
        if est.peak is None:
            out.append(f"{name}: not checked (declares no peak)")
        elif est.antiderivative is None:
            out.append(f"{name}: no finite-difference check (declares no antiderivative)")
    return out
