"""The proof of "no false failures": ``fdaref conform --profile P`` for every backend, preset, dtype and seed.

Each run is a separate ``fdaref conform`` process with its own JSON report; the sweep writes one JSON
(``bench/results/conform_sweep.json`` by default), rewritten after every run, so an interrupted sweep still
says exactly what ran. Seeds are the outer loop, so a partial sweep covers every configuration once first::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice .venv/bin/python bench/conform_sweep.py --seeds 1 2 3 4 5

(one thread per library: on a shared 2-core machine torch's second thread makes its cases ~4x slower).

A backend that cannot run here (cupy without a GPU) is recorded as unavailable, not as a failure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from fdaref.atomic import write_json_atomic

BACKENDS = ("numpy", "numba", "torch", "cupy")
PRESETS = ("any", "paper", "bibench", "release")   # any: no --preset, every option of SEMANTICS 1-7 drawn
DTYPES = ("float32", "float64")


def one_run(fdaref: str, backend: str, preset: str, dtype: str, seed: int, profile: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "r.json")
        cmd = ([fdaref, "conform", "--backend", backend] + (["--preset", preset] if preset != "any" else [])
               + ["--dtype", dtype, "--profile", profile, "--seed", str(seed), "--report", report])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        entry = {"backend": backend, "preset": preset, "dtype": dtype, "seed": seed, "profile": profile,
                 "command": " ".join(cmd[1:-2]), "exit_status": proc.returncode,
                 "seconds": round(time.perf_counter() - t0, 1)}
        if proc.returncode == 2:
            entry["unavailable"] = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return entry
        with open(report, encoding="utf-8") as fh:
            data = json.load(fh)
        entry["counts"] = data["summary"]["counts"]
        entry["sign_flips"] = data["summary"]["sign_flips"]
        entry["kink_crossings"] = data["summary"]["kink_crossings"]
        entry["failures"] = [f"{c['op']}: {c['check']}" for c in data["cases"] if c["outcome"] in ("fail", "error")]
        margins = [c["margin"] for c in data["cases"] if isinstance(c.get("margin"), (int, float))]
        entry["worst_margin"] = max(margins) if margins else None
        return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS))
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    ap.add_argument("--profile", default="thorough")
    ap.add_argument("--out", default=os.path.join("bench", "results", "conform_sweep.json"))
    args = ap.parse_args(argv)
    fdaref = os.path.join(os.path.dirname(sys.executable), "fdaref")
    runs: list[dict] = []
    unavailable: dict[str, str] = {}
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_CACHE_DIR")}
    for seed in args.seeds:
        for backend in args.backends:
            if backend in unavailable:
                continue
            for preset in args.presets:
                for dtype in args.dtypes:
                    entry = one_run(fdaref, backend, preset, dtype, seed, args.profile)
                    if "unavailable" in entry:
                        unavailable[backend] = entry["unavailable"]
                        break
                    runs.append(entry)
                    ok = entry["exit_status"] == 0
                    print(f"{'ok  ' if ok else 'FAIL'} {backend:6s} {preset:8s} {dtype} seed {seed}: "
                          f"{entry['counts']} {entry['seconds']} s {entry['failures'][:3]}", flush=True)
                    write_json_atomic(args.out, {"profile": args.profile, "env": env, "runs": runs,
                                                 "unavailable": unavailable,
                                                 "all_passed": all(r["exit_status"] == 0 for r in runs)})
                if backend in unavailable:
                    break
    write_json_atomic(args.out, {"profile": args.profile, "env": env, "runs": runs, "unavailable": unavailable,
                                 "all_passed": all(r["exit_status"] == 0 for r in runs), "finished": True})
    print(f"{sum(r['exit_status'] == 0 for r in runs)}/{len(runs)} runs passed; unavailable: {unavailable}")
    return 0 if all(r["exit_status"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
