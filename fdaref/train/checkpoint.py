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
from ..archive import META, read_archive, write_archive

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


class _Corrupt(Exception):
    """Raised inside :func:`_decode`; load_checkpoint turns it into a CheckpointError naming the file."""


def _decode(obj: Any, arrays: Any, path: str = "") -> Any:
    if isinstance(obj, dict):
        if "__array__" in obj:
            key = obj["__array__"]
            if not isinstance(key, str) or key not in arrays:
                raise _Corrupt(f"the array {key!r} at {path or '/'} is not in the file")
            return arrays[key]
        items = obj.get("__dict__")
        if not isinstance(items, list) or not all(isinstance(kv, list) and len(kv) == 2 for kv in items):
            raise _Corrupt(f"the entry at {path or '/'} is neither an array reference nor a dict")
        return {k: _decode(v, arrays, f"{path}/{k}") for k, v in items}
    if isinstance(obj, list):
        return [_decode(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]
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
    if "state" not in meta:
        raise CheckpointError(f"{path}: corrupt checkpoint (its {META} member has no \"state\")")
    try:
        state = _decode(meta["state"], arrays)
    except _Corrupt as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint ({exc})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: corrupt checkpoint (its state is a {type(state).__name__}, expected a dict)")
    return state


# What each use of a training run's checkpoint reads from it (Trainer._checkpoint_state writes them all).
FOR_EVALUATION = ("config", "model", "data")
FOR_RESUME = FOR_EVALUATION + ("position", "optimizer", "history")


def load_run_checkpoint(path: str | os.PathLike[str], need: tuple[str, ...] = FOR_EVALUATION) -> dict[str, Any]:
    """A checkpoint of a training run holding the dicts ``need`` names (and, with "data", its normalisation
    statistics as float arrays); CheckpointError naming the path and what is missing otherwise."""
    ck = load_checkpoint(path)
    missing = [k for k in need if not isinstance(ck.get(k), dict)]
    if missing:
        raise CheckpointError(f"{path}: not a training run's checkpoint (no {', '.join(missing)} "
                              f"{'entry' if len(missing) == 1 else 'entries'}; expected one written by `fdaref train`)")
    if "data" in need:
        check_normalisation(ck["data"].get("mean"), ck["data"].get("std"), f"{path}: data", CheckpointError)
    return ck


def check_normalisation(mean: Any, std: Any, where: str, error: type[Exception] = CheckpointError,
                        channels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) as arrays, as stored, once checked: 1-D, one value per channel (``channels`` if given),
    finite, std > 0; ``error`` naming ``where`` otherwise (NaN statistics would turn every image into NaN,
    silently)."""
    mean, std = np.asarray(mean), np.asarray(std)
    if mean.dtype.kind not in "iuf" or std.dtype.kind not in "iuf":
        raise error(f"{where}: the normalisation mean / std are not numbers ({mean.dtype} / {std.dtype})")
    m, sd = mean.astype(np.float64), std.astype(np.float64)
    want = f"{channels} value(s)" if channels is not None else "one value per channel"
    if m.ndim != 1 or m.shape != sd.shape or m.size == 0 or (channels is not None and m.size != channels):
        raise error(f"{where}: normalisation mean {list(m.shape)} / std {list(sd.shape)} should each hold {want}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(sd)) and np.all(sd > 0)):
        raise error(f"{where}: normalisation mean {m.tolist()} / std {sd.tolist()} should be finite with std > 0")
    return mean, std


def check_model_state(expected: Any, state: Any, where: str, error: type[Exception] = CheckpointError, *,
                      finite: bool = True) -> None:
    """``error`` naming ``where`` unless ``state`` has exactly the tensors of ``expected`` (name -> array of the
    model), each an array of the same shape and dtype, with finite values if ``finite``. Loading casts and
    accepts all of that silently: an int64 or float16 weight, or a NaN one, would be evaluated as if it were
    trained."""
    if not isinstance(state, dict):
        raise error(f"{where}: the model state is a {type(state).__name__}, expected arrays by name")
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise error(f"{where}: the model state does not fit the architecture (missing {missing[:4]}"
                    f"{' ...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''})")
    for k, ref in expected.items():
        v = state[k]
        if not isinstance(v, np.ndarray):
            raise error(f"{where}: tensor {k} is a {type(v).__name__}, expected an array")
        if v.shape != ref.shape or v.dtype != ref.dtype:
            raise error(f"{where}: tensor {k} is {v.dtype} {list(v.shape)}, expected {ref.dtype} {list(ref.shape)}")
        if finite and v.dtype.kind in "fc" and not np.all(np.isfinite(v)):
            raise error(f"{where}: tensor {k} has {int(v.size - np.count_nonzero(np.isfinite(v)))} NaN or "
                        "infinite values (a run never saves those: the file is corrupt)")
