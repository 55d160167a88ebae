"""``fdaref conform``: check a backend against the reference (exit 0 only when every case passes).

The suite runs in a supervised worker process (conformance/isolation.py): a case that crashes the process or
hangs past its limit is that case's failure, the run goes on, and the JSON report is always written. An
unwritable ``--report`` is found before the suite starts; a backend that cannot be loaded is one line.
"""
from __future__ import annotations

import argparse
import sys
import time


def _check_report_path(path: str) -> None:
    """Fail now (InputError, one line, exit 2) rather than after the run: write a placeholder report."""
    from fdaref.atomic import write_json_atomic
    write_json_atomic(path, {"status": "running", "command": "fdaref conform"})


def _load(spec: str):
    """The backend, or InputError with one line (a factory that raises, ``--backend :``, a bad name)."""
    from fdaref.errors import InputError
    from fdaref.backend_loader import BackendUnavailable, load_backend
    try:
        return load_backend(spec)
    except BackendUnavailable as exc:
        raise InputError(f"backend {spec!r} cannot run here: {str(exc).splitlines()[0]}") from exc
    except Exception as exc:  # noqa: BLE001 - a third party's factory may raise anything: one line, not a traceback
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(f"backend {spec!r} cannot be loaded: {type(exc).__name__}: {text}") from exc


def run(args: argparse.Namespace) -> int:
    from fdaref.errors import InputError
    if args.torch_layer:
        from fdaref.conformance.adapters.cli import run as run_torch_layer
        return run_torch_layer(args)
    if not args.backend:
        raise InputError("give --backend NAME (or --torch-layer PKG.MODULE:FACTORY)")
    from fdaref.conformance.isolation import Limits, run_supervised
    from fdaref.conformance.report import ERROR, CaseResult, SuiteReport
    from fdaref.conformance.runner import PROFILES, RunControl, backend_label, draw_seed, run_suite

    t0 = time.perf_counter()
    if args.report:
        _check_report_path(args.report)
    be = _load(args.backend)  # in the parent too: a backend that cannot load is one line before anything runs
    prof = PROFILES[args.profile]
    seed = args.seed if args.seed is not None else (None if prof.derandomize else draw_seed())
    if seed is not None:
        print(f"seed {seed} (replay with --seed {seed})", flush=True)
    limits = Limits(case=args.case_timeout, warmup=max(args.case_timeout, args.warmup_timeout),
                    layer=max(args.case_timeout, args.layer_timeout))
    ops = args.ops.split(",") if args.ops else None
    if ops:
        from fdaref.optable import OP_NAMES
        unknown = [op for op in ops if op not in OP_NAMES]
        if unknown:
            raise InputError(f"--ops: unknown op(s) {', '.join(unknown)}; known: {', '.join(OP_NAMES)}")

    def progress(res) -> None:
        if args.verbose or res.failed:
            print(res.render(), flush=True)

    def work(begin, done, skip) -> None:
        control = RunControl(limits=limits, seed=seed, strict=args.strict, skip=frozenset(skip), begin=begin)
        run_suite(be, device=args.device, dtype=args.dtype, profile=prof, preset=args.preset, ops=ops,
                  control=control, progress=done)

    def failure(key: str, what: str) -> CaseResult:
        op = key.split("#")[0]
        return CaseResult(op, f"check {key}", backend_label(be), args.device, args.dtype, ERROR, 1,
                          message=f"the worker running this check {what}; the run went on in a new worker")

    report = SuiteReport(backend_label(be), str(getattr(be, "version", "?")), args.device, args.dtype, prof.name,
                         args.preset, seed=seed, strict=args.strict)
    if args.no_isolation:
        report.results = run_suite(be, device=args.device, dtype=args.dtype, profile=prof, preset=args.preset,
                                   ops=ops, control=RunControl(limits=limits, seed=seed, strict=args.strict),
                                   progress=progress).results
        fatal = None
    else:
        dicts, fatal = run_supervised(work, limits, failure, on_result=lambda d: progress(CaseResult(**d)))
        report.results = [CaseResult(**d) for d in dicts]
    report.seconds = time.perf_counter() - t0
    for r in report.results:
        if r.outcome in ("not_provided", "refused", "declined", "warn"):
            print(r.render())
    if args.report:
        report.write_json(args.report)
        print(f"JSON report: {args.report}")
    if fatal:
        print(f"fdaref conform: error: {fatal}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    return 0 if report.ok(allow_missing=args.allow_missing) else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("conform", help="check a backend against the reference (conformance suite)")
    p.add_argument("--backend", default=None, help="a registered backend name or package.module:object")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--profile", default="ci", choices=("quick", "ci", "thorough"),
                   help="Hypothesis examples per op: quick 10, ci 40 (default, derandomized), thorough 300 "
                        "(random seed, printed)")
    p.add_argument("--seed", type=int, default=None, help="seed Hypothesis with N (replays a thorough run exactly)")
    p.add_argument("--preset", default=None, help="draw only this preset's options (paper, bibench, release)")
    p.add_argument("--ops", default=None, help="comma-separated ops to check (default: all, plus layer checks)")
    p.add_argument("--report", default=None, metavar="FILE.json", help="write the JSON report here")
    p.add_argument("--allow-missing", action="store_true", help="ops a backend does not provide do not fail")
    p.add_argument("--strict", action="store_true", help="a bad input the backend accepts fails the run")
    p.add_argument("--case-timeout", type=float, default=10.0, metavar="S",
                   help="seconds per case (each call into the backend; default 10)")
    p.add_argument("--warmup-timeout", type=float, default=120.0, metavar="S",
                   help="seconds for the first call of each op, which may compile (default 120)")
    p.add_argument("--layer-timeout", type=float, default=300.0, metavar="S",
                   help="seconds per layer / end-to-end check (default 300)")
    p.add_argument("--no-isolation", action="store_true",
                   help="run in this process (a crash then ends the run; time limits still apply)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every case, not only failures")
    from fdaref.conformance.adapters.cli import add_arguments
    add_arguments(p)
    p.set_defaults(func=run)
