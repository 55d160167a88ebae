"""``fdaref export``: write a bit-packed model (binary weights as bits + their scales, float layers as they are,
the architecture config) from a training checkpoint, and print its size against the float checkpoint.

Run it with ``fdaref evaluate --packed model.npz`` (XNOR-popcount kernels; see :mod:`fdaref.packed`)."""
from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from fdaref.errors import InputError
    from fdaref.packed import export_packed
    if Path(args.out).resolve() == Path(args.checkpoint).resolve():
        raise InputError(f"--out {args.out} is the checkpoint itself; give another path for the packed model")
    print(export_packed(args.checkpoint, args.out).summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a bit-packed model (binary weights as bits) from a checkpoint",
                       description=__doc__)
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by `fdaref train` (RUN/checkpoint.npz)")
    p.add_argument("--out", required=True, help="the packed model to write (.npz)")
    p.set_defaults(func=run)
