"""CIFAR-10 from the standard python pickle batches (data_batch_1 .. 5, test_batch, batches.meta).

The batches are pickles, so they are read with a restricted unpickler that only accepts the types such a
batch contains (dicts, lists, strings and plain numpy arrays); anything else is reported as corrupt.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import ArrayDataset, DatasetInfo
from .errors import DataError, how_to_get

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_INFO = DatasetInfo("cifar10", CIFAR10_CLASSES, 3, 32, 32, flip=True, pad=4)
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR batch")


def _key(d: dict, name: str) -> Any:
    for k in (name, name.encode()):
        if k in d:
            return d[k]
    raise KeyError(name)


def read_cifar_batch(path: str | os.PathLike[str], hint: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of one CIFAR-10 python batch file."""
    hint = how_to_get("cifar10") if hint is None else hint
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "file not found" if not p.exists() else "not a regular file", hint)
    try:
        raw = p.read_bytes()
        d = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except OSError as exc:
        raise DataError(p, f"cannot read: {exc.strerror or exc}", hint) from exc
    except Exception as exc:  # any unpickling failure means a corrupt or foreign file
        raise DataError(p, f"not a CIFAR-10 python batch ({type(exc).__name__}: {exc})", hint) from exc
    if not isinstance(d, dict):
        raise DataError(p, f"not a CIFAR-10 python batch (a {type(d).__name__}, expected a dict)", hint)
    try:
        data, labels = _key(d, "data"), _key(d, "labels")
    except KeyError as exc:
        raise DataError(p, f"CIFAR batch lacks the key {exc.args[0]!r}", hint) from None
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(p, f"CIFAR batch data: expected uint8 of shape (N, 3072), got {data.dtype} {data.shape}",
                        hint)
    if labels.ndim != 1 or len(labels) != len(data) or labels.dtype.kind not in "iu":
        raise DataError(p, f"CIFAR batch labels: expected {len(data)} integers, got {labels.dtype} "
                           f"{labels.shape}", hint)
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(p, f"CIFAR batch labels out of range 0 .. 9 ({labels.min()} .. {labels.max()})", hint)
    return data.reshape(-1, 3, 32, 32).copy(), labels.astype(np.int64)


def write_cifar_batch(path: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray) -> None:
    """Write images (N, 3, 32, 32) uint8 and labels in the CIFAR-10 python batch format (for tests)."""
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[1:] != (3, 32, 32):
        raise ValueError(f"images: expected shape (N, 3, 32, 32), got {images.shape}")
    d = {b"batch_label": b"synthetic", b"labels": [int(v) for v in labels],
         b"data": images.reshape(len(images), -1), b"filenames": [b"img%d.png" % i for i in range(len(images))]}
    Path(path).write_bytes(pickle.dumps(d, protocol=2))


def load_cifar10(directory: str | os.PathLike[str] | None) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of CIFAR-10 from the python batches in ``directory``."""
    hint = how_to_get("cifar10")
    if directory is None:
        raise DataError("<no --data-dir>", "CIFAR-10 has no default location", hint)
    d = Path(directory)
    if not d.is_dir():
        raise DataError(d, "data directory not found", hint)
    parts = [read_cifar_batch(d / name, hint) for name in TRAIN_BATCHES]
    train = ArrayDataset(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                         CIFAR10_INFO)
    test = ArrayDataset(*read_cifar_batch(d / TEST_BATCH, hint), CIFAR10_INFO)
    return train, test
