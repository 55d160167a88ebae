"""Checkpoints: one .npz file holding arrays plus a JSON tree for everything else, written atomically.

A checkpoint is a nested structure of dicts, lists, scalars, strings and arrays (model state, optimizer
state, epoch, data-order state, config, metrics). Arrays are stored as npz members; the rest as JSON in
the member ``__meta__``, with ``{"__array__": key}`` where an array was. Nothing is pickled, so loading a
checkpoint never runs code. Writing is atomic (:mod:`fdaref.archive` through :mod:`fdaref.atomic`): a crash
leaves either the old or the new checkpoint, never half of one.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..archive import read_archive, write_archive

FORMAT = "fdaref-checkpoint-1"


class CheckpointError(InputError, RuntimeError):
    """A checkpoint is missing, unreadable or not a fdaref checkpoint; the message names the path."""


def _host_array(x: Any) -> np.ndarray | None:
    """A numpy copy of an array of any backend (numpy, torch, cupy), or None if ``x`` is no array."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):
        return None
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        if hasattr(x, "detach"):  # torch
            return x.detach().cpu().numpy()
        if hasattr(x, "get"):  # cupy
            return x.get()
        return np.asarray(x)
    return None


def _encode(obj: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    arr = _host_array(obj)
    if arr is not None:
        key = f"a{len(arrays)}"
        arrays[key] = np.ascontiguousarray(arr)
        return {"__array__": key}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint: key {k!r} at {path} is not a str or int")
        return {"__dict__": [[k, _encode(v, arrays, f"{path}/{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint: cannot store {type(obj).__name__} at {path}")


def _decode(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        return {k: _decode(v, arrays) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (see :mod:`fdaref.archive`)."""
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "state": _encode(state, arrays, "")}
    return write_archive(path, meta, arrays)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; CheckpointError naming the path otherwise."""
    meta, arrays = read_archive(path, fmt=FORMAT, kind="checkpoint", error=CheckpointError,
                                missing_hint="expected a file written by `fdaref train`, e.g. RUN_DIR/checkpoint.npz")
    return _decode(meta["state"], arrays)
