"""``fdaref vectors``: export golden vectors for any implementation, and check its results against them."""
from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from fdaref.conformance.vectors import check_results, compute_results, export_vectors
    if args.action == "export":
        m = export_vectors(args.dir, dtype=args.dtype, random_cases=args.random)
        print(f"wrote {len(m['cases'])} cases ({args.dtype}) to {args.dir}/vectors.npz and {args.dir}/manifest.json")
        return 0
    if args.action == "compute":
        from fdaref.backend_loader import BackendUnavailable, load_backend
        try:
            be = load_backend(args.backend)
        except BackendUnavailable as exc:
            print(f"fdaref vectors: backend {args.backend!r} cannot run here: {exc}", file=sys.stderr)
            return 2
        compute_results(args.dir, be, args.results, device=args.device)
        print(f"wrote {args.results}")
        return 0
    ok, lines = check_results(args.dir, args.results)
    print("\n".join(lines))
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vectors", help="golden vectors: export DIR | check DIR RESULTS | compute DIR RESULTS")
    vs = p.add_subparsers(dest="action", metavar="ACTION")
    vs.required = True
    e = vs.add_parser("export", help="write inputs, parameters, expected outputs and tolerances for every op")
    e.add_argument("dir")
    e.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    e.add_argument("--random", type=int, default=5, help="random cases per op besides the edge cases")
    c = vs.add_parser("check", help="check RESULTS (NPZ: one array per case output, key '<case id>/<output>')")
    c.add_argument("dir")
    c.add_argument("results")
    r = vs.add_parser("compute", help="run a backend on the vectors and write RESULTS (an example producer)")
    r.add_argument("dir")
    r.add_argument("results")
    r.add_argument("--backend", default="numpy")
    r.add_argument("--device", default="cpu")
    p.set_defaults(func=run)
