"""``fdaref conform``: check a backend against the reference (exit 0 only when every case passes)."""
from __future__ import annotations

import argparse
import sys
import time


def run(args: argparse.Namespace) -> int:
    if args.torch_layer:
        from fdaref.conformance.adapters.cli import run as run_torch_layer
        return run_torch_layer(args)
    if not args.backend:
        print("fdaref conform: error: give --backend NAME (or --torch-layer PKG.MODULE:FACTORY)", file=sys.stderr)
        return 2
    from fdaref.backend_loader import BackendUnavailable
    from fdaref.conformance.runner import run_suite
    t0 = time.perf_counter()

    def progress(res) -> None:
        if args.verbose or res.failed:
            print(res.render(), flush=True)

    try:
        report = run_suite(args.backend, device=args.device, dtype=args.dtype, profile=args.profile,
                           preset=args.preset, ops=args.ops.split(",") if args.ops else None, progress=progress)
    except BackendUnavailable as exc:
        print(f"fdaref conform: backend {args.backend!r} cannot run here: {exc}", file=sys.stderr)
        return 2
    except (LookupError, TypeError) as exc:
        print(f"fdaref conform: {exc}", file=sys.stderr)
        return 2
    for r in report.results:
        if r.outcome in ("not_provided", "refused"):
            print(r.render())
    if args.report:
        report.write_json(args.report)
        print(f"JSON report: {args.report}")
    print(report.summary())
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    return 0 if report.ok(allow_missing=args.allow_missing) else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("conform", help="check a backend against the reference (conformance suite)")
    p.add_argument("--backend", default=None, help="a registered backend name or package.module:object")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--profile", default="ci", choices=("quick", "ci", "thorough"),
                   help="Hypothesis examples per op: quick 10, ci 40 (default, derandomized), thorough 300")
    p.add_argument("--preset", default=None, help="draw only this preset's options (paper, bibench, release)")
    p.add_argument("--ops", default=None, help="comma-separated ops to check (default: all, plus layer checks)")
    p.add_argument("--report", default=None, metavar="FILE.json", help="write the JSON report here")
    p.add_argument("--allow-missing", action="store_true", help="ops a backend does not provide do not fail")
    p.add_argument("-v", "--verbose", action="store_true", help="print every case, not only failures")
    from fdaref.conformance.adapters.cli import add_arguments
    add_arguments(p)
    p.set_defaults(func=run)
