"""``fdaref info``: versions, and which backends can run here (and why not)."""
from __future__ import annotations

import argparse
import platform

import numpy as np

import fdaref
from fdaref.backend_loader import BackendUnavailable, backend_names, load_backend


def backend_status() -> list[tuple[str, str, str]]:
    """(name, "ok" | "unavailable", detail) for every registered backend."""
    rows = []
    for name in backend_names():
        try:
            be = load_backend(name)
        except (BackendUnavailable, ImportError) as exc:
            rows.append((name, "unavailable", str(exc)))
            continue
        rows.append((name, "ok", f"{be.version}; devices {', '.join(be.devices)}; dtypes {', '.join(be.dtypes)}"))
    return rows


def run(args: argparse.Namespace) -> int:
    print(f"fdaref {fdaref.__version__}, numpy {np.__version__}, Python {platform.python_version()} "
          f"on {platform.machine()}")
    print("estimators:", ", ".join(fdaref.estimator_names()))
    print("presets:   ", ", ".join(fdaref.PRESETS))
    print("backends:")
    for name, state, detail in backend_status():
        print(f"  {name:<8} {state:<12} {detail}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="versions and the backends available here")
    p.set_defaults(func=run)
