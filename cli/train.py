"""``fdaref train``: train a binary network with FDA (or a baseline) on any backend.

Writes into --out: metrics.jsonl (one line per epoch), checkpoint.npz (after every epoch, atomically),
summary.json (at the end). Ctrl-C saves a checkpoint and exits with status 130; ``--resume`` continues
bit-exactly. A NaN / infinite loss stops the run (status 3) and keeps the last good checkpoint.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from fdaref.backend_loader import BackendUnavailable
from fdaref.data import DataError, dataset_names
from fdaref.estimators import estimator_names
from fdaref.noise import ETAS
from fdaref.presets import PRESETS
from fdaref.scale import SCALE_MODES
from fdaref.train import (MODELS, OPTIMIZERS, CheckpointError, ResumeError, TrainConfig, TrainingDiverged,
                          format_confusion, train)
from fdaref.train.config import BATCH_SIZE, EPOCHS, LR

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
USER_ERRORS = (ValueError, TypeError, KeyError, LookupError, DataError, ResumeError, CheckpointError,
               BackendUnavailable)


def _int_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, with a message that says so."""
    return _int_at_least(1, text)


def nonneg_int(text: str) -> int:
    """argparse type: an integer >= 0, with a message that says so."""
    return _int_at_least(0, text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The options shared by train / demo / ablation. Every default is None so that --resume can tell an
    explicit option (which must match the checkpoint) from an omitted one."""
    g = p.add_argument_group("model and binarization")
    g.add_argument("--model", choices=MODELS, default=None, help="network (default resnet20)")
    g.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="SEMANTICS 7 option set (default paper: FDA n 9->18, noise module, channel scale)")
    g.add_argument("--estimator", choices=tuple(estimator_names()), default=None,
                   help="override the preset's surrogate gradient (SEMANTICS 2)")
    g.add_argument("--noise", action=argparse.BooleanOptionalAction, default=None,
                   help="noise adaptation module on weights and activations (SEMANTICS 3; default from the preset)")
    g.add_argument("--eta", choices=ETAS, default=None, help="override the noise module's shortcut eta")
    g.add_argument("--scale", choices=SCALE_MODES, default=None, help="override the weight scale (SEMANTICS 5)")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=tuple(dataset_names()), default=None, help="default fashion-mnist")
    g.add_argument("--data-dir", default=None,
                   help="directory of the data files (default for fashion-mnist: /usr/share/datasets/fashion-mnist)")
    g.add_argument("--subset", type=positive_int, default=None, help="train on a seeded random N training images")
    g.add_argument("--test-subset", type=positive_int, default=None,
                   help="evaluate on the first M test images (default: the whole test set)")
    g.add_argument("--val-fraction", type=fraction, default=None,
                   help="fraction of the training images held out for validation (default 0.1)")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crop (zero padding) + horizontal flip (no flip for digits; default on)")
    g = p.add_argument_group("optimization (defaults: the paper's CIFAR-10 recipe, SEMANTICS 8, scaled to the data)")
    g.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs (default " + ", ".join(f"{k} {v}" for k, v in EPOCHS.items()) + ")")
    g.add_argument("--batch-size", type=positive_int, default=None,
                   help="batch size (default " + ", ".join(f"{k} {v}" for k, v in BATCH_SIZE.items()) + ")")
    g.add_argument("--lr", type=positive_float, default=None,
                   help="initial learning rate, cosine-annealed to 0 per step (default sgd 0.1, adam 1e-3)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="default sgd (momentum 0.9, wd 1e-4)")
    g.add_argument("--momentum", type=float, default=None, help="SGD momentum (default 0.9)")
    g.add_argument("--weight-decay", type=float, default=None, help="default sgd 1e-4, adam 0")
    g.add_argument("--label-smoothing", type=fraction, default=None, help="default 0")
    g.add_argument("--seed", type=nonneg_int, default=None, help="seed of init, split and data order (default 0)")
    g = p.add_argument_group("execution")
    g.add_argument("--backend", default=None, help="op table: numpy (fast NumPy kernels), reference (the literal "
                                                   "oracle), torch, numba, cupy, or package.module:object "
                                                   "(default numpy)")
    g.add_argument("--engine", default=None,
                   help="how steps are computed: the backend's own engine (torch: torch autograd, the default; "
                        "torch-compile) or fdaref (fdaref's autodiff engine over the op table, for validation)")
    g.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default cpu")
    g.add_argument("--dtype", choices=("float32", "float64"), default=None, help="default float32")
    g.add_argument("--eval-every", type=positive_int, default=None,
                   help="evaluate validation and test every k epochs and at the end (default 1)")


CONFIG_FIELDS = ("model", "preset", "estimator", "noise", "eta", "scale", "dataset", "data_dir", "subset",
                 "test_subset", "val_fraction", "augment", "epochs", "batch_size", "lr", "optimizer", "momentum",
                 "weight_decay", "label_smoothing", "seed", "backend", "engine", "device", "dtype", "eval_every")


def explicit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given on the command line (those not None)."""
    return {k: getattr(args, k) for k in CONFIG_FIELDS if getattr(args, k, None) is not None}


def config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    values = explicit_options(args)
    values.update(overrides)
    return TrainConfig(**values)


def _resume_config(args: argparse.Namespace) -> TrainConfig:
    """The checkpoint's config, with explicitly given options applied (the loop refuses contradictions)."""
    from pathlib import Path

    from fdaref.train import CHECKPOINT, load_checkpoint
    path = Path(args.out) / CHECKPOINT
    if not path.is_file():
        raise ResumeError(f"--resume: no checkpoint at {path} (expected a run directory written by "
                          "`fdaref train --out DIR`)")
    saved = TrainConfig.from_dict(load_checkpoint(path)["config"])
    for k, v in explicit_options(args).items():
        setattr(saved, k, v)
    saved.out = args.out
    return saved


def run(args: argparse.Namespace) -> int:
    try:
        cfg = _resume_config(args) if args.resume else config_from_args(args, out=args.out)
        result = train(cfg, resume=args.resume, progress=not args.quiet)
    except TrainingDiverged as exc:
        print(f"fdaref train: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except USER_ERRORS as exc:
        print(f"fdaref train: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if result.status == "interrupted":
        return EXIT_INTERRUPTED
    s = result.summary
    if s.get("test_acc") is not None:
        print(f"test accuracy {100 * s['test_acc']:.2f}% on {s['sizes']['test']} images after {s['epochs']} epochs "
              f"({s['train_time_s']:.0f}s of training, {s['images_per_s'] or 0:.0f} img/s)")
        print(format_confusion(__import__("numpy").asarray(s["confusion_matrix"]), s["classes"]))
    print(f"metrics: {s.get('metrics')}\ncheckpoint: {s.get('checkpoint')}\nsummary: {result.out / 'summary.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a binary network (FDA, noise module, baselines) on any backend",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--out", default="runs/train", help="run directory (default runs/train)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (same settings; bit-exact)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
