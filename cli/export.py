"""``fdaref export``: write a bit-packed model (binary weights as bits + their scales, float layers as they are,
the architecture config) from a training checkpoint, and print its size against the float checkpoint.

An existing --out file is refused unless --overwrite (the write itself is atomic).
Run it with ``fdaref evaluate --packed model.npz`` (XNOR-popcount kernels; see :mod:`fdaref.packed`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .args import check_output_file, non_empty


def run(args: argparse.Namespace) -> int:
    from fdaref.errors import InputError
    from fdaref.packed import export_packed
    if Path(args.out).resolve() == Path(args.checkpoint).resolve():
        raise InputError(f"--out {args.out} is the checkpoint itself; give another path for the packed model")
    check_output_file(args.out, "--out", overwrite=args.overwrite)
    print(export_packed(args.checkpoint, args.out).summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a bit-packed model (binary weights as bits) from a checkpoint",
                       description=__doc__)
    p.add_argument("--checkpoint", type=non_empty, required=True,
                   help="a checkpoint written by `fdaref train` (RUN_DIR/checkpoint.npz)")
    p.add_argument("--out", type=non_empty, required=True, help="the packed model to write (.npz)")
    p.add_argument("--overwrite", action="store_true", help="replace the --out file already there")
    p.set_defaults(func=run)
