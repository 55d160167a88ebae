"""Accuracy, confusion matrices, the metrics.jsonl log, and printing a confusion matrix."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; row = true class, column = predicted class."""
    labels = np.asarray(labels, np.int64)
    preds = np.asarray(preds, np.int64)
    if labels.shape != preds.shape:
        raise ValueError(f"labels {labels.shape} and predictions {preds.shape} differ in shape")
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def accuracy_of(cm: np.ndarray) -> float:
    total = int(cm.sum())
    return float(np.trace(cm)) / total if total else float("nan")


def format_confusion(cm: np.ndarray, classes: Sequence[str]) -> str:
    """The matrix as aligned text with class names (rows: true class, columns: predicted)."""
    short = [c[:9] for c in classes]
    w = max(5, max(len(str(int(cm.max()))) if cm.size else 1, max(len(s) for s in short)) + 1)
    lw = max(len(s) for s in short) + 1
    lines = [" " * lw + "".join(f"{i:>{w}}" for i in range(len(classes))) + "   <- predicted"]
    for i, row in enumerate(cm):
        acc = row[i] / row.sum() if row.sum() else float("nan")
        lines.append(f"{short[i]:<{lw}}" + "".join(f"{int(v):>{w}}" for v in row) + f"   {100 * acc:5.1f}%")
    legend = ", ".join(f"{i}={c}" for i, c in enumerate(classes))
    return "\n".join(lines) + f"\n(rows: true class; columns: predicted {legend})"


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, np.generic):
        return _clean(v.item())
    return v


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line (NaN written as null) and flush it to disk."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({k: _clean(v) for k, v in record.items()}, sort_keys=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_jsonl(path: str | os.PathLike[str], keep_epochs_below: int) -> None:
    """Drop records of epochs >= ``keep_epochs_below`` (a resumed run rewrites them)."""
    p = Path(path)
    if not p.exists():
        return
    keep = [r for r in read_jsonl(p) if r.get("epoch", 0) < keep_epochs_below]
    tmp = p.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
    os.replace(tmp, p)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_clean) + "\n", encoding="utf-8")
    os.replace(tmp, p)
