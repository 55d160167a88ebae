"""Accuracy, confusion matrices, the metrics.jsonl format (written by :mod:`.rundir`), and printing a confusion
matrix."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import json_safe
from ..errors import InputError


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


def format_jsonl(records: Sequence[dict[str, Any]]) -> str:
    """``records`` as JSON lines (NaN as null, infinities as "inf" / "-inf"; see fdaref.atomic.json_safe)."""
    return "".join(json.dumps(json_safe(r), allow_nan=False) + "\n" for r in records)


# The fields every epoch record has (loop.Trainer._end_epoch writes them all, None where not measured) and
# that the readers use: plots index "epoch", the ablation reads "test_acc".
RECORD_KEYS = ("epoch", "train_loss", "train_acc", "test_acc")


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file ([] if there is none); InputError naming a line that is no JSON
    record (not JSON, not an object, or without the fields of an epoch record), or a file that is no text."""
    p = Path(path)
    if not p.exists():
        return []
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not a metrics file (binary data at byte {exc.start}; expected JSON lines "
                         "written by fdaref train)") from exc
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{p}, line {number}: not a JSON record ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise InputError(f"{p}, line {number}: a JSON {type(record).__name__}, expected an epoch record "
                                 "(an object)")
            missing = [k for k in RECORD_KEYS if k not in record]
            if missing or isinstance(record["epoch"], bool) or not isinstance(record["epoch"], int):
                raise InputError(f"{p}, line {number}: not an epoch record (expected the fields "
                                 f"{', '.join(RECORD_KEYS)} with an integer epoch; "
                                 + (f"missing {', '.join(missing)})" if missing else f"epoch {record['epoch']!r})"))
            records.append(record)
    return records
