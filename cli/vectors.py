"""``fdaref vectors``: export golden vectors for any implementation, and check its results against them.

Bad input (a missing or corrupt vectors directory, a garbage results file, an unknown op, an unwritable
place) raises InputError, which ``fdaref`` prints as one line with exit status 2. Vectors or results already
there are refused unless --overwrite.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .args import non_empty, nonneg_int, refuse_existing, refuse_non_empty_dir


def _ops(text: str | None) -> list[str] | None:
    return None if text is None else text.split(",")


def run(args: argparse.Namespace) -> int:
    from fdaref.conformance.vectors import BLOB, MANIFEST, NPZ, check_results, compute_results, export_vectors
    if args.action == "export":
        d = Path(args.dir)
        refuse_existing([d / MANIFEST, d / (NPZ if args.format == "npz" else BLOB)], args.overwrite, "DIR")
        m = export_vectors(args.dir, dtype=args.dtype, random_cases=args.random, ops=_ops(args.ops), fmt=args.format)
        print(f"wrote {len(m['cases'])} cases ({args.dtype}) to {args.dir}/{m['storage']['file']} and "
              f"{args.dir}/manifest.json")
        return 0
    if args.action == "compute":
        from fdaref.backend_loader import BackendUnavailable, load_backend
        if Path(args.results).suffix == ".npz":
            refuse_existing([args.results], args.overwrite, "RESULTS")
        else:
            refuse_non_empty_dir(args.results, args.overwrite, "RESULTS")
        try:
            be = load_backend(args.backend)
        except BackendUnavailable as exc:
            print(f"fdaref vectors: backend {args.backend!r} cannot run here: {exc}", file=sys.stderr)
            return 2
        n = compute_results(args.dir, be, args.results, device=args.device, ops=_ops(args.ops))
        print(f"wrote {n} outputs to {args.results}")
        return 0
    report = check_results(args.dir, args.results, ops=_ops(args.ops), require_all=args.require_all)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vectors", help="golden vectors: export DIR | check DIR RESULTS | compute DIR RESULTS")
    vs = p.add_subparsers(dest="action", metavar="ACTION")
    vs.required = True
    ops_help = "comma-separated op names (default: every op)"
    e = vs.add_parser("export", help="write inputs, parameters, expected outputs, tolerances and op contracts")
    e.add_argument("dir", type=non_empty)
    e.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    e.add_argument("--random", type=nonneg_int, default=5, help="random cases per op besides the edge cases")
    e.add_argument("--ops", type=non_empty, default=None, help=ops_help)
    e.add_argument("--format", default="bin", choices=("bin", "npz"),
                   help="bin (default): one raw little-endian blob located by the manifest; npz: a NumPy archive")
    e.add_argument("--overwrite", action="store_true", help="replace the vectors already in DIR")
    c = vs.add_parser("check", help="check RESULTS (a directory of <case id>/out/<name>.bin files, or an NPZ "
                                    "with those keys); exit 1 if anything checked fails")
    c.add_argument("dir", type=non_empty)
    c.add_argument("results", type=non_empty)
    c.add_argument("--ops", type=non_empty, default=None,
                   help=ops_help + "; 'schedules' names the schedule results (schedules/<preset>/<E>/{n,alpha})")
    c.add_argument("--require-all", action="store_true", help="missing outputs fail too (completeness)")
    r = vs.add_parser("compute", help="run a backend on the vectors and write RESULTS (an example producer; "
                                      "a path ending in .npz writes an NPZ, anything else a directory)")
    r.add_argument("dir", type=non_empty)
    r.add_argument("results", type=non_empty)
    r.add_argument("--backend", type=non_empty, default="numpy")
    r.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="default cpu; the backend must run there")
    r.add_argument("--ops", type=non_empty, default=None, help=ops_help)
    r.add_argument("--overwrite", action="store_true",
                   help="write over an existing RESULTS file, or into a RESULTS directory that is not empty")
    p.set_defaults(func=run)
