"""Checkpoints: one .npz file holding arrays plus a JSON tree for everything else, written atomically.

A checkpoint is a nested structure of dicts, lists, scalars, strings and arrays (model state, optimizer
state, epoch, data-order state, config, metrics). Arrays are stored as npz members; the rest as JSON in
the member ``__meta__``, with ``{"__array__": key}`` where an array was. Nothing is pickled, so loading a
checkpoint never runs code. Writing goes to a temporary file in the same directory, is fsync'ed, and then
``os.replace``d over the target: a crash leaves either the old or the new checkpoint, never half of one.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "fdaref-checkpoint-1"
META = "__meta__"


class CheckpointError(RuntimeError):
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
    """Write ``state`` to ``path`` atomically (temp file in the same directory, fsync, os.replace)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "state": _encode(state, arrays, "")}
    arrays[META] = np.frombuffer(json.dumps(meta, allow_nan=True).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; CheckpointError naming the path otherwise."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found (expected a file written by `fdaref train`, "
                              "e.g. RUN_DIR/checkpoint.npz)")
    try:
        with np.load(p, allow_pickle=False) as z:
            if META not in z.files:
                raise CheckpointError(f"{p}: not a fdaref checkpoint (no {META} member)")
            meta = json.loads(bytes(z[META]).decode())
            arrays = {k: z[k] for k in z.files if k != META}
    except CheckpointError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError, EOFError) as exc:
        raise CheckpointError(f"{p}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{p}: unknown checkpoint format {meta.get('format')!r} (expected {FORMAT!r})")
    return _decode(meta["state"], arrays)


def state_bytes(state: dict[str, Any]) -> bytes:
    """The serialized form of ``state`` in memory (used by tests to compare checkpoints)."""
    buf = io.BytesIO()
    arrays: dict[str, np.ndarray] = {}
    meta = _encode(state, arrays, "")
    np.savez(buf, **arrays, **{META: np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)})
    return buf.getvalue()
