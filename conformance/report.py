"""Results of a conformance run: one :class:`CaseResult` per checked case, a text report and a JSON report."""
from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

SUITE_VERSION = "1.0.0"

# Outcomes. pass / fail / error are verdicts; not_provided, refused and declined (an option value the backend
# declines through ``supports``, see capabilities.py) are declarations by the backend: neither pass nor fail.
PASS, FAIL, ERROR, NOT_PROVIDED, REFUSED, DECLINED = "pass", "fail", "error", "not_provided", "refused", "declined"


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
        return _jsonable(asdict(self))

    def render(self) -> str:
        """The failure report: op, backend, device, dtype, shapes, errors with index and tolerance, repro."""
        head = f"[{self.outcome.upper()}] {self.op} on {self.backend} ({self.device}, {self.dtype}) -- {self.check}"
        if self.outcome in (NOT_PROVIDED, REFUSED, DECLINED, PASS):
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
        rank = {ERROR: 5, FAIL: 4, NOT_PROVIDED: 3, REFUSED: 2, PASS: 1, DECLINED: 0}  # a declined value only shows alone
        out: dict[str, str] = {}
        for r in self.results:
            if r.op not in out or rank[r.outcome] > rank[out[r.op]]:
                out[r.op] = r.outcome
        return out

    def summary(self) -> str:
        c = self.counts
        parts = ", ".join(f"{c[k]} {k.replace('_', ' ')}" for k in (PASS, FAIL, ERROR, NOT_PROVIDED, REFUSED, DECLINED)
                          if c.get(k))
        flips = sum(r.sign_flips for r in self.results)
        extra = f"; {flips} sign flips near 0 tolerated" if flips else ""
        return (f"{self.backend} {self.backend_version} on {self.device} in {self.dtype} "
                f"(profile {self.profile}{', preset ' + self.preset if self.preset else ''}): "
                f"{parts} in {self.seconds:.1f} s{extra}")

    def render(self, verbose: bool = False) -> str:
        lines = []
        for r in self.results:
            if r.failed or verbose or r.outcome in (NOT_PROVIDED, REFUSED, DECLINED):
                lines.append(r.render())
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        from fdaref import __version__ as fdaref_version

        from .tolerances import policy_table
        return _jsonable({
            "suite": {"name": "fdaref.conformance", "version": SUITE_VERSION, "fdaref": fdaref_version},
            "backend": {"name": self.backend, "version": self.backend_version},
            "target": {"device": self.device, "dtype": self.dtype},
            "platform": {"python": sys.version.split()[0], "system": platform.platform(),
                         "machine": platform.machine(), "numpy": np.__version__},
            "profile": self.profile, "preset": self.preset,
            "started": self.started, "seconds": self.seconds,
            "summary": {"ok": self.ok(), "counts": self.counts,
                        "sign_flips": sum(r.sign_flips for r in self.results)},
            "ops": self.op_status(),
            "tolerances": policy_table(),
            "cases": [r.to_dict() for r in self.results],
        })

    def write_json(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=1)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return repr(value)
    return value
