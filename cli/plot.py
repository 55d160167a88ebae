"""``fdaref plot``: PNG figures (matplotlib, Agg backend).

  fdaref plot estimators [--out estimators.png]   sign, surrogates, truncated series, FDA gradient vs n
  fdaref plot curves --run RUN_DIR [--out ...]    loss / accuracy curves of a training run (metrics.jsonl)
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fdaref.errors import InputError
from fdaref.train import METRICS, read_jsonl

from .train import positive_float


def _parse_ns(text: str) -> list[int]:
    try:
        ns = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}") from None
    if not ns or min(ns) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}")
    return ns


def run(args: argparse.Namespace) -> int:
    from fdaref.train.plots import plot_estimators, plot_training_curves
    if args.what == "estimators":
        out = plot_estimators(args.out or "estimators.png", ns=args.n, omega=args.omega)
    else:
        if not args.run:
            raise InputError("plot curves: give --run RUN_DIR (a directory written by fdaref train)")
        records = read_jsonl(Path(args.run) / METRICS)
        if not records:
            raise InputError(f"{Path(args.run) / METRICS}: no metrics found (expected a run directory "
                             "written by fdaref train)")
        out = plot_training_curves(records, args.out or Path(args.run) / "curves.png", title=str(args.run))
    print(f"wrote {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="PNG figures: estimators (like the paper's Fig. 1), training curves",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("estimators", "curves"))
    p.add_argument("--out", default=None, help="PNG path (default estimators.png / RUN_DIR/curves.png)")
    p.add_argument("--run", default=None, help="run directory for 'curves'")
    p.add_argument("--n", type=_parse_ns, default=[1, 3, 9, 18], help="n values for 'estimators' (default 1,3,9,18)")
    p.add_argument("--omega", type=positive_float, default=0.1, help="omega for 'estimators' (default 0.1)")
    p.set_defaults(func=run)
