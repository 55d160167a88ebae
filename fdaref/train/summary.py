"""summary.json: the record of a finished run, built from the checkpoint's history (never from metrics.jsonl,
which is derived from the same history and may lag behind it after a kill)."""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import Splits
from .config import TrainConfig


def run_summary(cfg: TrainConfig, history: dict[str, Any], splits: Splits, ops: Any, engine: str, out: Path,
                wall_time_this_session: float) -> dict[str, Any]:
    """The summary of a complete run: final metrics, confusion matrix, speed, sizes, config, versions."""
    from .rundir import CHECKPOINT, METRICS
    records = history.get("records") or []
    last = records[-1] if records else {}
    rates = [r["images_per_s"] for r in records if r.get("images_per_s")]
    confusion = history.get("test_confusion")
    return {
        "status": "complete",
        "test_acc": last.get("test_acc"), "test_loss": last.get("test_loss"),
        "val_acc": last.get("val_acc"), "best_val_acc": history.get("best_val"),
        "best_val_epoch": history.get("best_epoch"),
        "train_acc": last.get("train_acc"), "train_loss": last.get("train_loss"),
        "confusion_matrix": None if confusion is None else np.asarray(confusion).tolist(),
        "classes": list(splits.info.classes),
        "epochs": cfg.epochs, "images_per_s": float(np.mean(rates)) if rates else None,
        "train_time_s": float(sum(r.get("train_time_s") or 0.0 for r in records)),
        "wall_time_s_this_session": wall_time_this_session,
        "sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        "config": cfg.to_dict(), "options": cfg.options().to_dict(),
        "backend": {"name": ops.name, "version": getattr(ops, "version", "?"), "device": cfg.device,
                    "engine": engine},
        "python": platform.python_version(), "numpy": np.__version__,
        "checkpoint": str(out / CHECKPOINT), "metrics": str(out / METRICS),
    }
