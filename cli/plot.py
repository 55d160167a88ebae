"""``fdaref plot``: PNG figures (matplotlib, Agg backend).

  fdaref plot estimators [--out estimators.png]   sign, surrogates, truncated series, FDA gradient vs n
  fdaref plot curves --run RUN_DIR [--out ...]    loss / accuracy curves of a training run (metrics.jsonl)

An existing PNG is refused unless --overwrite (the write itself is atomic).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fdaref.errors import InputError
from fdaref.train import METRICS, read_jsonl
from fdaref.train.rundir import CURVES

from .args import check_output_file, non_empty, positive_float

DEFAULT_NS = [1, 3, 9, 18]
DEFAULT_OMEGA = 0.1


def _parse_ns(text: str) -> list[int]:
    try:
        ns = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}") from None
    if not ns or min(ns) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}")
    return ns


def _refuse(flags: dict[str, object], what: str) -> None:
    """Flags that ``plot what`` does not use would be silently ignored: refuse them."""
    given = [flag for flag, value in flags.items() if value is not None]
    if given:
        raise InputError(f"plot {what} does not use {', '.join(given)}; drop {'them' if len(given) > 1 else 'it'}")


def run(args: argparse.Namespace) -> int:
    from fdaref.train.plots import plot_estimators, plot_training_curves
    if args.what == "estimators":
        _refuse({"--run": args.run}, "estimators")
        out = check_output_file(args.out if args.out is not None else "estimators.png", "--out",
                                overwrite=args.overwrite)
        out = plot_estimators(out, ns=args.n if args.n is not None else DEFAULT_NS,
                              omega=args.omega if args.omega is not None else DEFAULT_OMEGA)
    else:
        _refuse({"--n": args.n, "--omega": args.omega}, "curves")
        if args.run is None:
            raise InputError("plot curves: give --run RUN_DIR (a directory written by fdaref train)")
        records = read_jsonl(Path(args.run) / METRICS)
        if not records:
            raise InputError(f"{Path(args.run) / METRICS}: no metrics found (expected a run directory "
                             "written by fdaref train)")
        out = check_output_file(args.out if args.out is not None else Path(args.run) / CURVES, "--out",
                                overwrite=args.overwrite)
        out = plot_training_curves(records, out, title=str(args.run))
    print(f"wrote {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="PNG figures: estimators (like the paper's Fig. 1), training curves",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("estimators", "curves"))
    p.add_argument("--out", type=non_empty, default=None,
                   help="PNG path (default estimators.png / RUN_DIR/curves.png)")
    p.add_argument("--overwrite", action="store_true", help="replace the PNG already there")
    p.add_argument("--run", type=non_empty, default=None, help="run directory for 'curves'")
    p.add_argument("--n", type=_parse_ns, default=None,
                   help="n values for 'estimators' (default " + ",".join(map(str, DEFAULT_NS)) + ")")
    p.add_argument("--omega", type=positive_float, default=None,
                   help=f"omega for 'estimators' (default {DEFAULT_OMEGA})")
    p.set_defaults(func=run)
