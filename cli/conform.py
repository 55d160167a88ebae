"""``fdaref conform``: check a backend against the reference (exit 0 only when every case passes).

The suite runs in a supervised worker process (conformance/isolation.py): a case that crashes the process or
hangs past its limit is that case's failure, the run goes on, and the JSON report is always written, once, at
the end. An unwritable or existing ``--report`` (without --overwrite), an unknown op and a backend that cannot
be loaded are each one line before the suite starts, and nothing is written.
"""
from __future__ import annotations

import argparse
import sys
import time

from .args import check_output_file, non_empty, seconds


# Options of the backend suite that the torch layer adapter does not use: given with --torch-layer they would
# be silently ignored, so they are refused (dest -> flag).
BACKEND_ONLY = {"backend": "--backend", "ops": "--ops", "seed": "--seed",
                "strict": "--strict", "allow_missing": "--allow-missing", "no_isolation": "--no-isolation",
                "case_timeout": "--case-timeout", "warmup_timeout": "--warmup-timeout",
                "layer_timeout": "--layer-timeout"}
LAYER_ONLY = {"layer_kind": "--layer-kind", "torch_mapping": "--torch-mapping"}
LIMIT_DEFAULTS = {"case_timeout": 10.0, "warmup_timeout": 120.0, "layer_timeout": 300.0}


def _given(args: argparse.Namespace, names: dict[str, str]) -> list[str]:
    """The flags of ``names`` given on the command line (every such option defaults to None or False)."""
    return [flag for dest, flag in names.items() if getattr(args, dest) not in (None, False)]


def _refuse_flags_that_do_not_apply(args: argparse.Namespace) -> None:
    from fdaref.errors import InputError
    if args.torch_layer is not None:
        ignored = _given(args, BACKEND_ONLY)
        if ignored:
            raise InputError(f"--torch-layer checks a torch layer, not a backend: {', '.join(ignored)} "
                             "would be ignored; drop them (or check a backend with --backend instead)")
    else:
        ignored = _given(args, LAYER_ONLY)
        if ignored:
            raise InputError(f"{', '.join(ignored)} apply only with --torch-layer PKG.MODULE:FACTORY")


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
    # Everything is validated before anything runs or is written; the report is written once, at the end.
    _refuse_flags_that_do_not_apply(args)
    if args.report is not None:
        check_output_file(args.report, "--report", overwrite=args.overwrite, parents=False)
    if args.torch_layer is not None:
        from fdaref.conformance.adapters.cli import run as run_torch_layer
        return run_torch_layer(args)
    if args.backend is None:
        raise InputError("give --backend NAME (or --torch-layer PKG.MODULE:FACTORY)")
    from fdaref.conformance.isolation import Limits, run_supervised
    from fdaref.conformance.report import ERROR, CaseResult, SuiteReport
    from fdaref.conformance.runner import PROFILES, RunControl, backend_label, draw_seed, run_suite

    t0 = time.perf_counter()
    ops = args.ops.split(",") if args.ops is not None else None
    if ops is not None:
        from fdaref.optable import CHECKED_OPS
        unknown = [op for op in ops if op not in CHECKED_OPS]
        if unknown:
            raise InputError(f"--ops: unknown op(s) {', '.join(map(repr, unknown))}; known: {', '.join(CHECKED_OPS)}")
    device = args.device if args.device is not None else "cpu"
    dtype = args.dtype if args.dtype is not None else "float32"
    case_s, warmup_s, layer_s = (getattr(args, k) if getattr(args, k) is not None else v
                                 for k, v in LIMIT_DEFAULTS.items())
    limits = Limits(case=case_s, warmup=max(case_s, warmup_s), layer=max(case_s, layer_s))
    be = _load(args.backend)  # in the parent too: a backend that cannot load is one line before anything runs
    prof = PROFILES[args.profile]
    seed = args.seed if args.seed is not None else (None if prof.derandomize else draw_seed())
    if seed is not None:
        print(f"seed {seed} (replay with --seed {seed})", flush=True)

    def progress(res) -> None:
        if args.verbose or res.failed:
            print(res.render(), flush=True)

    def work(begin, done, skip) -> None:
        control = RunControl(limits=limits, seed=seed, strict=args.strict, skip=frozenset(skip), begin=begin)
        run_suite(be, device=device, dtype=dtype, profile=prof, preset=args.preset, ops=ops,
                  control=control, progress=done)

    def failure(key: str, what: str) -> CaseResult:
        op = key.split("#")[0]
        return CaseResult(op, f"check {key}", backend_label(be), device, dtype, ERROR, 1,
                          message=f"the worker running this check {what}; the run went on in a new worker")

    report = SuiteReport(backend_label(be), str(getattr(be, "version", "?")), device, dtype, prof.name,
                         args.preset, seed=seed, strict=args.strict)
    if args.no_isolation:
        report.results = run_suite(be, device=device, dtype=dtype, profile=prof, preset=args.preset,
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
    if args.report is not None:
        report.write_json(args.report)
        print(f"JSON report: {args.report}")
    if fatal:
        print(f"fdaref conform: error: {fatal}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    return 0 if report.ok(allow_missing=args.allow_missing) else 1


def register(sub: argparse._SubParsersAction) -> None:
    from fdaref.presets import PRESETS
    p = sub.add_parser("conform", help="check a backend against the reference (conformance suite)")
    p.add_argument("--backend", type=non_empty, default=None,
                   help="a registered backend name or package.module:object")
    p.add_argument("--device", default=None, choices=("cpu", "cuda"), help="default cpu (also for --torch-layer)")
    p.add_argument("--dtype", default=None, choices=("float32", "float64"),
                   help="default float32 for --backend; --torch-layer checks both unless given")
    p.add_argument("--profile", default="ci", choices=("quick", "ci", "thorough"),
                   help="Hypothesis examples per op: quick 10, ci 40 (default, derandomized), thorough 300 "
                        "(random seed, printed)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed Hypothesis with N (replays a thorough run exactly)")
    p.add_argument("--preset", default=None, choices=tuple(PRESETS), help="draw only this preset's options")
    p.add_argument("--ops", type=non_empty, default=None,
                   help="comma-separated ops to check (default: all, plus layer checks)")
    p.add_argument("--report", type=non_empty, default=None, metavar="FILE.json",
                   help="write the JSON report here (its directory must exist; an existing file is refused "
                        "unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace the --report file already there")
    p.add_argument("--allow-missing", action="store_true", help="ops a backend does not provide do not fail")
    p.add_argument("--strict", action="store_true", help="a bad input the backend accepts fails the run")
    p.add_argument("--case-timeout", type=seconds, default=None, metavar="S",
                   help="seconds per case (each call into the backend; default 10; at most a day)")
    p.add_argument("--warmup-timeout", type=seconds, default=None, metavar="S",
                   help="seconds for the first call of each op, which may compile (default 120)")
    p.add_argument("--layer-timeout", type=seconds, default=None, metavar="S",
                   help="seconds per layer / end-to-end check (default 300)")
    p.add_argument("--no-isolation", action="store_true",
                   help="run in this process (a crash then ends the run; time limits still apply)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every case, not only failures")
    from fdaref.conformance.adapters.cli import add_arguments
    add_arguments(p)
    p.set_defaults(func=run)
