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

Writes into --out (default runs/ablation): runs/<variant>/seed<S>/ (complete training runs; when the command
is run again, a finished run is reused only if it was trained with exactly the requested settings, an
unfinished one is resumed, and one with other settings is refused, or retrained with --overwrite),
results.json, table.md (mean +- std of the final test accuracy next to the paper's
CIFAR-10 ResNet-20 numbers) and curves.png (test accuracy per epoch, mean +- std over seeds). Those three
are brought up to date by a rerun of the same command (the one recorded in results.json); another command's
are replaced only with --overwrite.
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

from fdaref.atomic import write_json_atomic, write_text_atomic
from fdaref.errors import InputError
from fdaref.train import CHECKPOINT, METRICS, SUMMARY, TrainConfig, TrainingDiverged, read_jsonl, train
from fdaref.train.checkpoint import load_run_checkpoint
from fdaref.train.rundir import CURVES, check_output_dir, run_files

from .args import non_empty, nonneg_int, positive_int, refuse_existing
from .train import add_run_arguments, check_optimizer_flags, explicit_options

TABLE, RESULTS = "table.md", "results.json"
OUTPUTS = (TABLE, RESULTS, CURVES)   # what a run of the ablation writes into --out itself

# What the ablation uses where train has other defaults (DoReFa's one scale per layer: the paper's baseline).
ABLATION_DEFAULTS: dict[str, Any] = dict(dataset="fashion-mnist", model="resnet20", scale="layer")

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


def _comparable(cfg: TrainConfig) -> dict[str, Any]:
    """The settings that decide a run's numbers (where the data and the run live do not)."""
    d = cfg.resolved().to_dict()
    for k in ("out", "data_dir"):
        d.pop(k)
    return d


def _stored_config(run_dir: Path) -> TrainConfig | None:
    """The config of the run in ``run_dir`` (from its checkpoint, else its summary), None if there is none."""
    if (run_dir / CHECKPOINT).is_file():
        return TrainConfig.from_dict(load_run_checkpoint(run_dir / CHECKPOINT, ("config",))["config"])
    if (run_dir / SUMMARY).is_file():
        return TrainConfig.from_dict(_summary(run_dir).get("config", {}))
    return None


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError as exc:   # UnicodeDecodeError included
        raise InputError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(summary, dict):
        raise InputError(f"{path}: a JSON {type(summary).__name__}, expected the summary object written by "
                         "fdaref train")
    return summary


def plan_run(cfg: TrainConfig, overwrite: bool) -> str:
    """What to do with the run directory of ``cfg``: "reuse" (a finished run with exactly these settings),
    "resume" (an unfinished one), "train" (none there) or "retrain" (another run there, and ``overwrite``).
    InputError, naming the differences, for another run without ``overwrite``."""
    run_dir = Path(cfg.out)
    stored = _stored_config(run_dir)
    if stored is None:
        return "retrain" if run_files(run_dir) else "train"
    want, have = _comparable(cfg), _comparable(stored)
    diffs = [f"{k}: stored {have.get(k)!r}, requested {want.get(k)!r}" for k in want if have.get(k) != want.get(k)]
    if diffs:
        if overwrite:
            return "retrain"
        raise InputError(f"{run_dir} holds a run with other settings ({'; '.join(diffs)}); its numbers would be "
                         "reported under the new ones. Give another --out, or --overwrite to retrain it")
    return "reuse" if _summary(run_dir).get("status") in ("complete", "diverged") else "resume"


def run_variant(cfg: TrainConfig, variant: str, action: str, progress: bool) -> dict[str, Any]:
    """Train, resume or reuse one (variant, seed) as ``action`` says; its test accuracy curve."""
    run_dir = Path(cfg.out)
    if action != "reuse":
        t0 = time.perf_counter()
        note = {"resume": " (resuming)", "retrain": " (replacing the run there)"}.get(action, "")
        print(f"== {variant} seed {cfg.seed} -> {run_dir}{note}", file=sys.stderr, flush=True)
        try:
            train(cfg, resume=action == "resume", overwrite=action == "retrain", progress=progress)
        except TrainingDiverged as exc:
            print(f"   {variant} seed {cfg.seed} diverged: {exc}", file=sys.stderr)
        print(f"   {variant} seed {cfg.seed} took {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    records = read_jsonl(run_dir / METRICS)
    summary = _summary(run_dir)
    return {"variant": variant, "seed": cfg.seed, "status": summary.get("status", "missing"),
            "test_acc": summary.get("test_acc"), "curve": [r["test_acc"] for r in records],
            "train_time_s": summary.get("train_time_s"), "reused": action == "reuse"}


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


def _previous_command(out: Path) -> str | None:
    """The command recorded in ``out/results.json`` by an earlier ablation, None if there is none (or it
    cannot be read: then its outputs count as someone else's)."""
    try:
        previous = json.loads((out / RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return previous.get("command") if isinstance(previous, dict) else None


def variant_config(base: dict[str, Any], variant: str, seed: int, out: Path) -> TrainConfig:
    overrides, _, _ = VARIANTS[variant]
    return TrainConfig(**{**base, **overrides, "seed": seed, "out": str(_run_dir(out, variant, seed))})


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_output_dir(out)
    explicit = explicit_options(args)
    base = {**ABLATION_DEFAULTS, **explicit}
    check_optimizer_flags(explicit, base.get("optimizer", "sgd"))
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    cfg = TrainConfig(**base, out=str(out)).resolved()  # fail fast on bad options, before any training
    jobs = [(v, variant_config(base, v, s, out)) for v in args.variants for s in seeds]
    plans = [plan_run(c, args.overwrite) for _, c in jobs]   # refuses before anything is trained or written
    command = canonical_command(args)
    if _previous_command(out) != command:   # the same command only brings its own table up to date
        refuse_existing([out / name for name in OUTPUTS], args.overwrite, "--out")
    results = [run_variant(c, v, action, not args.quiet) for (v, c), action in zip(jobs, plans)]
    header = (f"Ablation on {cfg.dataset} ({cfg.subset or 'all'} training images, "
              f"{cfg.test_subset or 'all'} test images), model {cfg.model}, {cfg.epochs} epochs, batch "
              f"{cfg.batch_size}, {cfg.optimizer} lr {cfg.lr}, backend {cfg.backend}, seeds {seeds}.\n"
              f"Command: `{command}`\n\nThe paper's numbers are ResNet-20 on CIFAR-10 after 400 epochs "
              "(Tables 2-4); ours are a short small-scale run, so compare the ordering, not the values.")
    table = markdown_table(results, args.variants, header)
    write_text_atomic(out / TABLE, table)
    write_json_atomic(out / RESULTS, {"command": command, "config": cfg.to_dict(), "results": results})
    curves = {v: [r["curve"] for r in results if r["variant"] == v and r["curve"]] for v in args.variants}
    curves = {k: c for k, c in curves.items() if c}
    plot_msg = ""
    try:
        from fdaref.train.plots import plot_accuracy_curves
        if curves:
            plot_accuracy_curves(curves, out / CURVES, title=f"test accuracy, {cfg.model} on {cfg.dataset}")
            plot_msg = f", {out / CURVES}"
    except ImportError as exc:
        plot_msg = f" (no plot: {exc})"
    reused = sum(r["reused"] for r in results)
    print(table)
    print(f"wrote {out / TABLE}, {out / RESULTS}{plot_msg}"
          + (f" ({reused} of {len(results)} runs reused: same settings, already finished)" if reused else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablation", help="Tables 2-4 ablations (STE, FDA, noise module, eta, DSQ, BNN+) over seeds",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, defaults=ABLATION_DEFAULTS)
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per variant (default 3)")
    p.add_argument("--first-seed", type=nonneg_int, default=0, help="default 0")
    p.add_argument("--variants", type=_parse_variants, default=list(VARIANTS),
                   help="comma-separated subset of: " + ", ".join(VARIANTS))
    p.add_argument("--out", type=non_empty, default="runs/ablation",
                   help="output directory (default runs/ablation; the committed results/ are never the default)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the table.md, results.json and curves.png another command wrote into --out, "
                        "and retrain (variant, seed) runs there that were trained with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
