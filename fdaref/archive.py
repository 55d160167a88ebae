"""The one file format fdaref saves (training checkpoints, packed models): an NPZ of arrays plus a JSON
metadata member. Writes are atomic (a temp file in the same directory, fsync, ``os.replace``), so a crash
leaves either the old file or the new one, never half of one. No pickle is ever read."""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

META = "__meta__"


def write_archive(path: str | os.PathLike[str], meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` and the JSON-able ``meta`` (which must hold a "format" string) to ``path`` atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    members = {**arrays, META: np.frombuffer(json.dumps(meta, allow_nan=True).encode(), dtype=np.uint8)}
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
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
    if meta.get("format") != fmt:
        raise error(f"{p}: unknown {kind} format {meta.get('format')!r} (expected {fmt!r})")
    return meta, arrays
