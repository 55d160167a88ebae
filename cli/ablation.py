"""``fdaref ablation``: the paper's ablations (Tables 2-4) at small scale, several seeds per variant.

Variants (all on the same model, data, seeds and recipe; only the named factor changes):
  ste              DoReFa baseline: identity STE, no noise module            (Table 2 row 1, 84.44)
  fda              sine module only: FDA estimator, no noise module          (Table 2 row 2, 85.83)
  fda+noise        FDA + noise module, eta = a sin(x)                        (Table 2 row 3 / Table 4, 86.20)
  fda+noise/linear FDA + noise module, eta = a x                             (Table 4, 85.93)
  fda+noise/none   FDA + noise module without shortcut                       (Table 4, 85.27)
  dsq, dsq+noise   tanh-alike (DSQ) estimator without / with the module      (Table 3, 84.11 / 84.46)
  bnn+, bnn+noise  SignSwish (BNN+) without / with the module                (Table 3, 84.59 / 84.87)
Every variant uses DoReFa's one scalar per layer (``--scale layer``, the paper's baseline quantizer); the
rest is the ``paper`` preset (sign(0) = -1, n 9 -> 18, alpha 0.1 -> 0 cosine, k 64, a 0.1).

Writes into --out: runs/<variant>/seed<S>/ (complete training runs; finished ones are reused when the
command is run again), results.json, table.md (mean +- std of the final test accuracy next to the paper's
CIFAR-10 ResNet-20 numbers) and curves.png (test accuracy per epoch, mean +- std over seeds).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fdaref.train import SUMMARY, TrainConfig, TrainingDiverged, read_jsonl, train

from .train import EXIT_BAD_INPUT, USER_ERRORS, add_run_arguments, explicit_options, positive_int

# name -> (config overrides, paper figure (ResNet-20, CIFAR-10), where the paper gives it)
VARIANTS: dict[str, tuple[dict[str, Any], float, str]] = {
    "ste": (dict(estimator="ste", noise=False), 84.44, "Table 2 (DoReFa / STE baseline)"),
    "fda": (dict(estimator="fda", noise=False), 85.83, "Table 2 (sine module only)"),
    "fda+noise": (dict(estimator="fda", noise=True, eta="sin"), 86.20, "Tables 2, 4 (eta = a sin x)"),
    "fda+noise/linear": (dict(estimator="fda", noise=True, eta="linear"), 85.93, "Table 4 (eta = a x)"),
    "fda+noise/none": (dict(estimator="fda", noise=True, eta="none"), 85.27, "Table 4 (eta = 0)"),
    "dsq": (dict(estimator="tanh", noise=False), 84.11, "Table 3 (DSQ, tanh-alike)"),
    "dsq+noise": (dict(estimator="tanh", noise=True, eta="sin"), 84.46, "Table 3 (DSQ + noise module)"),
    "bnn+": (dict(estimator="sign_swish", noise=False), 84.59, "Table 3 (BNN+, SignSwish)"),
    "bnn+noise": (dict(estimator="sign_swish", noise=True, eta="sin"), 84.87, "Table 3 (BNN+ + noise module)"),
}


def _parse_variants(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown variants {bad}; expected a comma-separated subset of "
                                         f"{', '.join(VARIANTS)}")
    return names


def _run_dir(out: Path, variant: str, seed: int) -> Path:
    return out / "runs" / variant.replace("/", "-") / f"seed{seed}"


def _finished(run_dir: Path) -> bool:
    s = run_dir / SUMMARY
    return s.is_file() and json.loads(s.read_text()).get("status") == "complete"


def run_variant(base: dict[str, Any], variant: str, seed: int, out: Path, progress: bool) -> dict[str, Any]:
    """Train one (variant, seed) unless a finished run is already there; its test accuracy curve."""
    overrides, _, _ = VARIANTS[variant]
    run_dir = _run_dir(out, variant, seed)
    cfg = TrainConfig(**{**base, **overrides, "seed": seed, "scale": base.get("scale", "layer"),
                         "out": str(run_dir)})
    if not _finished(run_dir):
        resume = (run_dir / "checkpoint.npz").is_file()
        t0 = time.perf_counter()
        print(f"== {variant} seed {seed} -> {run_dir}{' (resuming)' if resume else ''}", file=sys.stderr, flush=True)
        try:
            train(cfg, resume=resume, progress=progress)
        except TrainingDiverged as exc:
            print(f"   {variant} seed {seed} diverged: {exc}", file=sys.stderr)
        print(f"   {variant} seed {seed} took {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    records = read_jsonl(run_dir / "metrics.jsonl")
    summary = json.loads((run_dir / SUMMARY).read_text()) if (run_dir / SUMMARY).is_file() else {}
    return {"variant": variant, "seed": seed, "status": summary.get("status", "missing"),
            "test_acc": summary.get("test_acc"), "curve": [r["test_acc"] for r in records],
            "train_time_s": summary.get("train_time_s")}


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = 100 * np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def markdown_table(results: list[dict[str, Any]], variants: list[str], header: str) -> str:
    lines = [header, "",
             "| variant | estimator | noise module | eta | ours: test acc % (mean ± std) | seeds | "
             "paper (ResNet-20, CIFAR-10) | source |",
             "|---|---|---|---|---|---|---|---|"]
    for v in variants:
        overrides, paper, source = VARIANTS[v]
        accs = [r["test_acc"] for r in results if r["variant"] == v and r["test_acc"] is not None]
        ours = "n/a" if not accs else "{:.2f} ± {:.2f}".format(*_mean_std(accs))
        noise = "yes" if overrides.get("noise") else "no"
        eta = overrides.get("eta", "–") if overrides.get("noise") else "–"
        lines.append(f"| {v} | {overrides['estimator']} | {noise} | {eta} | {ours} | {len(accs)} | {paper:.2f} | "
                     f"{source} |")
    return "\n".join(lines) + "\n"


def canonical_command(args: argparse.Namespace) -> str:
    """An ``fdaref ablation`` command line equivalent to ``args`` (recorded next to the results)."""
    parts = ["fdaref", "ablation"]
    for k, v in explicit_options(args).items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            parts.append(flag if v else "--no-" + k.replace("_", "-"))
        else:
            parts += [flag, str(v)]
    parts += ["--seeds", str(args.seeds)]
    if args.first_seed:
        parts += ["--first-seed", str(args.first_seed)]
    if args.variants != list(VARIANTS):
        parts += ["--variants", ",".join(args.variants)]
    parts += ["--out", str(args.out)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    base = explicit_options(args)
    base.setdefault("dataset", "fashion-mnist")
    base.setdefault("model", "resnet20")
    base.setdefault("scale", "layer")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    try:
        TrainConfig(**base, out=str(out)).resolved()  # fail fast on bad options, before any training
        results = [run_variant(base, v, s, out, not args.quiet) for v in args.variants for s in seeds]
    except USER_ERRORS as exc:
        print(f"fdaref ablation: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    cfg = TrainConfig(**base, out=str(out)).resolved()
    command = canonical_command(args)
    header = (f"Ablation on {cfg.dataset} ({cfg.subset or 'all'} training images, "
              f"{cfg.test_subset or 'all'} test images), model {cfg.model}, {cfg.epochs} epochs, batch "
              f"{cfg.batch_size}, {cfg.optimizer} lr {cfg.lr}, backend {cfg.backend}, seeds {seeds}.\n"
              f"Command: `{command}`\n\nThe paper's numbers are ResNet-20 on CIFAR-10 after 400 epochs "
              "(Tables 2-4); ours are a short small-scale run, so compare the ordering, not the values.")
    table = markdown_table(results, args.variants, header)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table)
    (out / "results.json").write_text(json.dumps({"command": command, "config": cfg.to_dict(),
                                                  "results": results}, indent=2))
    curves = {v: [r["curve"] for r in results if r["variant"] == v and r["curve"]] for v in args.variants}
    curves = {k: c for k, c in curves.items() if c}
    plot_msg = ""
    try:
        from fdaref.train.plots import plot_accuracy_curves
        if curves:
            plot_accuracy_curves(curves, out / "curves.png", title=f"test accuracy, {cfg.model} on {cfg.dataset}")
            plot_msg = f", {out / 'curves.png'}"
    except ImportError as exc:
        plot_msg = f" (no plot: {exc})"
    print(table)
    print(f"wrote {out / 'table.md'}, {out / 'results.json'}{plot_msg}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablation", help="Tables 2-4 ablations (STE, FDA, noise module, eta, DSQ, BNN+) over seeds",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per variant (default 3)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--variants", type=_parse_variants, default=list(VARIANTS),
                   help="comma-separated subset of: " + ", ".join(VARIANTS))
    p.add_argument("--out", default="results/ablation", help="output directory (default results/ablation)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
