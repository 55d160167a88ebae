"""``fdaref train``: train a binary network with FDA (or a baseline) on any backend.

Writes into --out (default: a new directory runs/train-YYYYmmdd-HHMMSS): checkpoint.npz (after every epoch,
atomically; it holds the model, the optimizer and every epoch's metrics), metrics.jsonl (one line per epoch,
derived from the checkpoint) and summary.json (at the end). A directory that already holds a run is refused
unless --resume (continue it) or --overwrite (replace it). Ctrl-C or SIGTERM saves a checkpoint and exits with
status 130 / 143; ``--resume`` continues bit-exactly. A NaN / infinite loss, parameter or buffer stops the run
(status 3) and keeps the last good checkpoint.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from fdaref.data import dataset_names
from fdaref.errors import InputError
from fdaref.estimators import estimator_names
from fdaref.noise import ETAS
from fdaref.presets import PRESETS, BinaryOptions
from fdaref.scale import SCALE_MODES
from fdaref.train import (CHECKPOINT, METRICS, MODELS, OPTIMIZERS, SUMMARY, ResumeError, RunResult, TrainConfig,
                          TrainingDiverged, format_confusion, fresh_run_dir, train)
from fdaref.train.config import BATCH_SIZE, EPOCHS

from .args import fraction, non_empty, nonneg_int, positive_float, positive_int

EXIT_DIVERGED = 3


def add_run_arguments(p: argparse.ArgumentParser, defaults: Mapping[str, Any] | None = None) -> None:
    """The options shared by train / demo / ablation. Every default is None so that --resume can tell an
    explicit option (which must match the checkpoint) from an omitted one. ``defaults``: the values a
    command uses instead of train's (demo, ablation), shown in its --help."""
    own = dict(defaults or {})

    def default(name: str, train_default: str) -> str:
        return f"default {_show(own[name])}" if name in own else f"default {train_default}"

    g = p.add_argument_group("model and binarization")
    g.add_argument("--model", choices=MODELS, default=None, help=f"network ({default('model', 'resnet20')})")
    g.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help=f"SEMANTICS 7 option set ({default('preset', 'paper')}); "
                        + "; ".join(f"{name}: {describe_options(opts)}" for name, opts in PRESETS.items()))
    g.add_argument("--estimator", choices=tuple(estimator_names()), default=None,
                   help="override the preset's surrogate gradient (SEMANTICS 2)")
    g.add_argument("--noise", action=argparse.BooleanOptionalAction, default=None,
                   help="noise adaptation module on weights and activations (SEMANTICS 3; default from the preset)")
    g.add_argument("--eta", choices=ETAS, default=None, help="override the noise module's shortcut eta")
    g.add_argument("--scale", choices=SCALE_MODES, default=None,
                   help=f"override the weight scale (SEMANTICS 5; {default('scale', 'from the preset')})")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=tuple(dataset_names()), default=None, help=default("dataset", "fashion-mnist"))
    g.add_argument("--data-dir", type=non_empty, default=None,
                   help="directory of the data files (default for fashion-mnist: /usr/share/datasets/fashion-mnist)")
    g.add_argument("--subset", type=positive_int, default=None,
                   help=f"train on a seeded random N training images ({default('subset', 'all')})")
    g.add_argument("--test-subset", type=positive_int, default=None,
                   help="evaluate on the first M test images (default: the whole test set)")
    g.add_argument("--val-fraction", type=fraction, default=None,
                   help=f"fraction of the training images held out for validation ({default('val_fraction', '0.1')})")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crop (zero padding) + horizontal flip (no flip for digits; "
                        f"{default('augment', 'on')})")
    g = p.add_argument_group("optimization (defaults: the paper's CIFAR-10 recipe, SEMANTICS 8, scaled to the data)"
                             if not own else "optimization")
    g.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs (" + default("epochs", ", ".join(f"{k} {v}" for k, v in EPOCHS.items())) + ")")
    g.add_argument("--batch-size", type=positive_int, default=None,
                   help="batch size (" + default("batch_size", ", ".join(f"{k} {v}" for k, v in BATCH_SIZE.items()))
                        + ")")
    g.add_argument("--lr", type=positive_float, default=None,
                   help=f"initial learning rate, cosine-annealed to 0 per step ({default('lr', 'sgd 0.1, adam 1e-3')})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help=default("optimizer", "sgd") + " (sgd: momentum 0.9, wd 1e-4; adam: wd 0)")
    g.add_argument("--momentum", type=float, default=None, help="SGD momentum (default 0.9)")
    g.add_argument("--weight-decay", type=float, default=None, help=default("weight_decay", "sgd 1e-4, adam 0"))
    g.add_argument("--label-smoothing", type=fraction, default=None, help="default 0")
    g.add_argument("--seed", type=nonneg_int, default=None,
                   help=f"seed of init, split and data order ({default('seed', '0')})")
    g = p.add_argument_group("execution")
    g.add_argument("--backend", type=non_empty, default=None, help="op table: numpy (fast NumPy kernels), reference (the literal "
                                                   "oracle), torch, numba, cupy, or package.module:object "
                                                   f"({default('backend', 'numpy')})")
    g.add_argument("--engine", default=None,
                   help="how steps are computed: the backend's own engine (torch: torch autograd, the default; "
                        "torch-compile) or fdaref (fdaref's autodiff engine over the op table, for validation)")
    g.add_argument("--device", choices=("cpu", "cuda"), default=None, help=default("device", "cpu"))
    g.add_argument("--dtype", choices=("float32", "float64"), default=None, help=default("dtype", "float32"))
    g.add_argument("--eval-every", type=positive_int, default=None,
                   help="evaluate validation and test every k epochs and at the end (default 1)")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def describe_options(opts: BinaryOptions) -> str:
    """What a set of binarization options really is, in one phrase (for --help and run banners)."""
    if opts.uses_n:
        n = f" n {opts.n_start}" if opts.n_schedule == "fixed" else f" n {opts.n_start}->{opts.n_end}"
    else:
        n = ""
    noise = f"noise module (eta {opts.eta})" if opts.noise else "no noise module"
    clip = f", clip {opts.clip:g}" if opts.clip is not None else ""
    return f"{opts.estimator}{n}{clip}, {noise}, {opts.scale} scale, sign(0) = {opts.zero:g}"


CONFIG_FIELDS = ("model", "preset", "estimator", "noise", "eta", "scale", "dataset", "data_dir", "subset",
                 "test_subset", "val_fraction", "augment", "epochs", "batch_size", "lr", "optimizer", "momentum",
                 "weight_decay", "label_smoothing", "seed", "backend", "engine", "device", "dtype", "eval_every")


def explicit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given on the command line (those not None)."""
    return {k: getattr(args, k) for k in CONFIG_FIELDS if getattr(args, k, None) is not None}


def check_optimizer_flags(explicit: Mapping[str, Any], optimizer: str) -> None:
    """Refuse an optimizer option the run's optimizer does not have (Adam has no momentum), which would
    otherwise be stored in the config and silently ignored."""
    if explicit.get("momentum") is not None and optimizer != "sgd":
        raise InputError(f"--momentum applies to --optimizer sgd only; this run's optimizer is {optimizer} "
                         "(drop --momentum)")


def config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    values = explicit_options(args)
    values.update(overrides)
    cfg = TrainConfig(**values)
    check_optimizer_flags(values, cfg.optimizer)
    return cfg


def _resume_config(args: argparse.Namespace) -> TrainConfig:
    """The checkpoint's config, with explicitly given options applied (the loop refuses contradictions)."""
    from fdaref.train import CHECKPOINT
    from fdaref.train.checkpoint import FOR_RESUME, load_run_checkpoint
    if args.out is None:
        raise ResumeError("--resume needs --out RUN_DIR, the run directory to continue")
    path = Path(args.out) / CHECKPOINT
    if not path.is_file():
        raise ResumeError(f"--resume: no checkpoint at {path} (expected a run directory written by "
                          "`fdaref train --out DIR`)")
    saved = TrainConfig.from_dict(load_run_checkpoint(path, FOR_RESUME)["config"])
    explicit = explicit_options(args)
    for k, v in explicit.items():
        setattr(saved, k, v)
    check_optimizer_flags(explicit, saved.optimizer)
    saved.out = args.out
    return saved


def exit_status(result: RunResult) -> int | None:
    """The exit status of an interrupted run (128 + the signal, as a shell reports it), None otherwise."""
    if result.status != "interrupted":
        return None
    return 128 + (result.stop_signal or signal.SIGINT)


def run(args: argparse.Namespace) -> int:
    if args.resume:
        cfg = _resume_config(args)
    else:
        out = args.out if args.out is not None else str(fresh_run_dir("runs", "train"))
        cfg = config_from_args(args, out=out)
        if args.out is None:
            print(f"fdaref train: writing the run into {out}", file=sys.stderr, flush=True)
    try:
        result = train(cfg, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    except TrainingDiverged as exc:
        print(f"fdaref train: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    status = exit_status(result)
    if status is not None:
        return status
    s = result.summary
    if s.get("test_acc") is not None:
        print(f"test accuracy {100 * s['test_acc']:.2f}% on {s['sizes']['test']} images after {s['epochs']} epochs "
              f"({s['train_time_s']:.0f}s of training, {s['images_per_s'] or 0:.0f} img/s)")
        print(format_confusion(np.asarray(s["confusion_matrix"]), s["classes"]))
    print(f"metrics: {result.out / METRICS}\ncheckpoint: {result.out / CHECKPOINT}\nsummary: {result.out / SUMMARY}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a binary network (FDA, noise module, baselines) on any backend",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--out", type=non_empty, default=None,
                   help="run directory (default: a new runs/train-YYYYmmdd-HHMMSS); one that holds a run is refused "
                        "unless --resume or --overwrite")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (same settings; bit-exact)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
