"""The one file format fdaref saves (training checkpoints, packed models): an NPZ of arrays plus a JSON
metadata member. Writes go through :mod:`fdaref.atomic` (a temp file in the same directory, fsync, rename), so a crash
leaves either the old file or the new one, never half of one. No pickle is ever read."""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .atomic import write_bytes_atomic
from .errors import InputError

META = "__meta__"


def archive_bytes(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """The NPZ bytes of ``arrays`` plus the JSON-able ``meta`` as the member ``__meta__``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{META: np.frombuffer(json.dumps(meta, allow_nan=True).encode(), dtype=np.uint8)})
    return buf.getvalue()


def write_archive(path: str | os.PathLike[str], meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` and the JSON-able ``meta`` (which must hold a "format" string) to ``path`` atomically
    (:func:`fdaref.atomic.write_bytes_atomic`; InputError naming the path if it cannot be written)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{p}: cannot create its directory {p.parent} ({exc.strerror or type(exc).__name__})") from exc
    return write_bytes_atomic(p, archive_bytes(meta, arrays))


def read_archive(path: str | os.PathLike[str], *, fmt: str, kind: str, missing_hint: str,
                 error: type[Exception]) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of an archive of format ``fmt``; ``error`` naming the path and what a ``kind`` is otherwise."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {kind} not found ({missing_hint})")
    try:
        with np.load(p, allow_pickle=False) as z:
            if META not in z.files:
                raise error(f"{p}: not a fdaref {kind} (no {META} member)")
            meta = json.loads(bytes(z[META]).decode())
            arrays = {k: z[k] for k in z.files if k != META}
    except error:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError, EOFError) as exc:
        raise error(f"{p}: unreadable {kind} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(meta, dict):
        raise error(f"{p}: corrupt {kind} (its {META} member is not a JSON object)")
    if meta.get("format") != fmt:
        raise error(f"{p}: unknown {kind} format {meta.get('format')!r} (expected {fmt!r})")
    return meta, arrays
