"""The one way fdaref writes a file: to a temporary name in the same directory, fsync, then rename.

A reader (or a process killed at any instant) therefore sees either the old file or the new one, never a
half-written one. Temporary names are ``.<name>.<pid>.tmp``; :func:`remove_stale_temps` deletes those a
killed writer left behind. A path that cannot be written raises :class:`fdaref.errors.InputError` naming it.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

TEMP_SUFFIX = ".tmp"


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def _unwritable(path: Path, exc: OSError) -> InputError:
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        reason = "is a directory, expected a file path"
    return InputError(f"{path}: cannot write ({reason})")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically; returns the path."""
    p = Path(path)
    tmp = _temp_name(p)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException as exc:
        with contextlib.suppress(OSError):   # the directory itself may be missing or not writable
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unwritable(p, exc) from exc
        raise
    return p


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def json_safe(v: Any) -> Any:
    """``v`` with numpy scalars and arrays as Python values and NaN / inf as null / "inf" / "-inf"."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, np.ndarray):
        return json_safe(v.tolist())
    if isinstance(v, np.generic):
        return json_safe(v.item())
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, Path):
        return str(v)
    return v


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON (see :func:`json_safe`) atomically; the one JSON writer of fdaref."""
    return write_text_atomic(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n")


def nearest_existing(path: str | os.PathLike[str]) -> Path:
    """``path`` itself or its nearest ancestor that exists (a dangling symlink counts: it is not a
    directory), the place whose kind and permissions decide whether ``path`` can be written."""
    p = Path(path)
    for candidate in (p, *p.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")   # a relative path with nothing of it present: the working directory


def remove_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files a killed writer left in ``directory``; returns what was removed."""
    d = Path(directory)
    if not d.is_dir():
        return []
    removed = []
    for p in d.glob(f".*{TEMP_SUFFIX}"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
