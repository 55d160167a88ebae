"""``fdaref evaluate``: test accuracy and confusion matrix of a trained checkpoint (or a bit-packed model).

``--checkpoint RUN/checkpoint.npz`` rebuilds the model (on its training backend, or --backend) and
evaluates it in inference mode (pure sign, SEMANTICS 4) on the test set it was trained for, normalised with
the training statistics stored in the checkpoint.

``--packed model.npz`` evaluates a bit-packed model written by ``fdaref export`` instead, with XNOR-popcount
kernels (:mod:`fdaref.packed`); its data set and normalisation come from the file (or from --checkpoint).
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from fdaref.data import BatchLoader, load_splits
from fdaref.errors import InputError
from fdaref.train import format_confusion, load_trained
from fdaref.train.checkpoint import load_run_checkpoint
from fdaref.train.evaluation import describe_position, evaluate, test_loader
from fdaref.train.metrics import accuracy_of, confusion_matrix

from .args import non_empty, positive_int


# Options of the float model's evaluation that a packed model does not use (it runs on the XNOR kernels of
# fdaref.packed, on the CPU): given with --packed they would be silently ignored, so they are refused.
NOT_FOR_PACKED = {"backend": "--backend", "device": "--device"}


def _evaluate_packed(args: argparse.Namespace) -> dict[str, Any]:
    from fdaref.packed import load_packed, normalisation
    ignored = [flag for dest, flag in NOT_FOR_PACKED.items() if getattr(args, dest) is not None]
    if ignored:
        raise InputError(f"--packed runs on fdaref's XNOR kernels on the CPU: {', '.join(ignored)} would be ignored; "
                         "drop it (or evaluate the float model with --checkpoint)")
    model = load_packed(args.packed)
    meta = dict(model.meta)
    if args.checkpoint is not None:
        ck = load_run_checkpoint(args.checkpoint)
        meta.setdefault("dataset", ck["config"]["dataset"])
        meta.setdefault("mean", ck["data"]["mean"])
        meta.setdefault("std", ck["data"]["std"])
        meta.setdefault("data_dir", ck["config"].get("data_dir"))
    missing = [k for k in ("dataset", "mean", "std") if k not in meta]
    if missing:
        raise InputError(f"--packed {args.packed}: the model does not record {missing}; add --checkpoint of the "
                         "run it was exported from")
    mean, std = normalisation(meta, args.packed)   # also refuses an unknown data set name, as one line
    splits = load_splits(meta["dataset"], args.data_dir if args.data_dir is not None else meta.get("data_dir"),
                         subset=1, val_fraction=0.0, test_subset=args.test_subset)
    loader = BatchLoader(splits.test, args.batch_size, mean, std)
    labels, preds = [], []
    for x, y in loader.epoch(0):
        preds.append(np.argmax(np.asarray(model.predict(x)), axis=1))
        labels.append(y)
    cm = confusion_matrix(np.concatenate(labels), np.concatenate(preds), splits.info.num_classes)
    return {"mode": "packed", "accuracy": accuracy_of(cm), "confusion": cm, "classes": list(splits.info.classes),
            "count": int(cm.sum())}


def _evaluate_checkpoint(args: argparse.Namespace) -> dict[str, Any]:
    run = load_trained(args.checkpoint, backend=args.backend, device=args.device)
    loader = test_loader(run, data_dir=args.data_dir, batch_size=args.batch_size, test_subset=args.test_subset)
    res = evaluate(run.model, loader, run.ops, run.config.device)
    return {"mode": "float", "accuracy": res.accuracy, "loss": res.loss, "confusion": res.confusion,
            "classes": list(run.info.classes), "count": res.count, "backend": run.config.backend,
            "saved": describe_position(run.checkpoint, run.config.epochs),
            "epoch": run.checkpoint["position"]["epoch"], "epochs": run.config.epochs}


def run(args: argparse.Namespace) -> int:
    if args.checkpoint is None and args.packed is None:
        raise InputError("give --checkpoint RUN/checkpoint.npz (or --packed model.npz)")
    t0 = time.perf_counter()
    res = _evaluate_packed(args) if args.packed is not None else _evaluate_checkpoint(args)
    seconds = time.perf_counter() - t0
    if args.json:
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()}
        out["seconds"] = seconds
        print(json.dumps(out, indent=2))
        return 0
    what = args.packed if args.packed is not None else args.checkpoint
    extra = f", saved {res['saved']}, on backend {res['backend']}" if "saved" in res else ""
    print(f"{what}: test accuracy {100 * res['accuracy']:.2f}% on {res['count']} images "
          f"({res['mode']} inference{extra}; {seconds:.1f}s)")
    print(format_confusion(res["confusion"], res["classes"]))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a checkpoint",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=non_empty, help="checkpoint.npz written by fdaref train")
    p.add_argument("--packed", type=non_empty, help="bit-packed model.npz written by fdaref export")
    p.add_argument("--backend", type=non_empty, default=None,
                   help="evaluate on this backend (default: the training backend; not with --packed)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: the training device (not with --packed)")
    p.add_argument("--data-dir", type=non_empty, default=None, help="data directory (default: the one used for training)")
    p.add_argument("--test-subset", type=positive_int, default=None,
                   help="only the first M test images (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="default 256")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
