"""A pass/fail matrix of every installed backend (for the demo): ``run_matrix(backends, profile="quick")``."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from fdaref.optable import CHECKED_OPS

from .report import SuiteReport
from .runner import run_suite

SYMBOL = {"pass": "ok", "fail": "FAIL", "error": "ERR", "not_provided": "-", "refused": "refused"}


def run_matrix(backends: Optional[Sequence[str]] = None, *, profile: str = "quick", dtype: str = "float32",
               devices: Iterable[str] = ("cpu", "cuda"), print_table: bool = True) -> dict[str, object]:
    """Run the suite on each backend (every registered one by default) on each device it declares.

    Returns {"columns": [...], "rows": {op: {column: outcome}}, "reports": {column: SuiteReport},
    "unavailable": {backend: reason}} and prints the table unless ``print_table`` is False.
    """
    from fdaref.backend_loader import BackendUnavailable, backend_names, load_backend
    names = list(backends) if backends is not None else backend_names()
    reports: dict[str, SuiteReport] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        try:
            be = load_backend(name)
        except (BackendUnavailable, ImportError, LookupError) as exc:
            unavailable[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        for device in devices:
            if device in tuple(be.devices):
                reports[f"{name}/{device}"] = run_suite(be, device=device, dtype=dtype, profile=profile)
    rows = {op: {col: rep.op_status().get(op, "-") for col, rep in reports.items()}
            for op in list(CHECKED_OPS) + ["binary_conv2d", "resnet20_block", "end-to-end"]}
    table = {"columns": list(reports), "rows": rows, "reports": reports, "unavailable": unavailable}
    if print_table:
        print(format_matrix(table))
    return table


def format_matrix(table: dict) -> str:
    cols = table["columns"]
    width = max([len(op) for op in table["rows"]] + [10])
    lines = [" " * width + "  " + "  ".join(f"{c:>12}" for c in cols)]
    for op, row in table["rows"].items():
        lines.append(f"{op:<{width}}  " + "  ".join(f"{SYMBOL.get(row[c], row[c]):>12}" for c in cols))
    for col in cols:
        lines.append(table["reports"][col].summary())
    for name, why in table["unavailable"].items():
        lines.append(f"{name}: unavailable here ({why})")
    return "\n".join(lines)
