"""The run directory is a record of one training run: what may be written into it, and when.

Files (all written through :mod:`fdaref.atomic`, so a kill at any instant leaves each one old or new, never
half written):

- ``checkpoint.npz``: the model, the optimizer, the position, and the run's history, which holds every
  finished epoch's metrics record. It is the one source of truth.
- ``metrics.jsonl``: one line per finished epoch, derived from the checkpoint's history right after each
  epoch's checkpoint, and rewritten from it on ``--resume`` (so a kill between the two writes loses nothing).
- ``summary.json``: written after the last checkpoint (or when the run diverges); ``--resume`` of a finished
  run writes it if it is missing.

A directory that already holds a run is never trained into again unless the caller says how: ``resume``
(continue it) or ``overwrite`` (delete its run files first). The checks run before anything is touched.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

from ..atomic import nearest_existing, remove_stale_temps, write_bytes_atomic
from ..errors import InputError
from .metrics import format_jsonl

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CURVES = "curves.png"
RUN_FILES = (CHECKPOINT, METRICS, SUMMARY, CURVES)

log = logging.getLogger(__name__)


class RunDirError(InputError):
    """The run directory cannot be used as asked (it holds a run, it is a file, it is not writable)."""


def fresh_run_dir(root: str | os.PathLike[str] = "runs", stem: str = "train") -> Path:
    """A directory name under ``root`` that does not exist yet: ``root/stem-YYYYmmdd-HHMMSS[-k]``."""
    base = Path(root) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, k = base, 1
    while candidate.exists():
        candidate, k = base.with_name(f"{base.name}-{k}"), k + 1
    return candidate


def run_files(out: str | os.PathLike[str]) -> list[str]:
    """The run files already present in ``out`` (names from :data:`RUN_FILES`)."""
    d = Path(out)
    return [name for name in RUN_FILES if (d / name).exists()] if d.is_dir() else []


def check_output_dir(out: str | os.PathLike[str], option: str = "--out") -> None:
    """RunDirError unless ``out`` is a directory (or can become one: no file in its path) that is writable."""
    d = Path(out)
    p = nearest_existing(d)
    if not p.is_dir():
        where = "is a file" if p == d else f"is under {p}, which is a file"
        raise RunDirError(f"{option} {d}: {where}; expected a directory")
    if not os.access(p, os.W_OK | os.X_OK):
        raise RunDirError(f"{option} {d}: {p} is not writable")


def check_run_dir(out: str | os.PathLike[str], *, resume: bool, overwrite: bool) -> None:
    """Refuse (RunDirError, nothing touched) an ``out`` that cannot hold this run.

    ``out`` must be a directory or not exist, with no file in its path, and be writable; without
    ``resume`` it must not hold a run unless ``overwrite``.
    """
    d = Path(out)
    if resume and overwrite:
        raise RunDirError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    check_output_dir(d)
    present = run_files(d)
    if present and not resume and not overwrite:
        raise RunDirError(f"--out {d} already holds a run ({', '.join(present)}); continue it with --resume, "
                          "replace it with --overwrite, or give another --out")


def prepare_run_dir(out: str | os.PathLike[str], *, overwrite: bool) -> list[Path]:
    """Create ``out``, prove it writable, remove temp files a killed writer left, and with ``overwrite``
    delete the previous run's files. Returns the stale temp files removed."""
    d = Path(out)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"--out {d}: cannot create the directory ({exc.strerror or type(exc).__name__})") from exc
    probe = write_bytes_atomic(d / ".fdaref-write-test", b"")   # InputError naming the path if the OS refuses
    probe.unlink()
    removed = remove_stale_temps(d)
    for name in removed:
        log.info("removed %s, left by an interrupted write", name)
    if overwrite:
        for name in run_files(d):
            (d / name).unlink()
    return removed


def write_metrics(out: str | os.PathLike[str], records: Sequence[dict[str, Any]]) -> bool:
    """Make ``out/metrics.jsonl`` hold exactly ``records`` (the checkpoint's history); True if it changed."""
    path = Path(out) / METRICS
    text = format_jsonl(records).encode("utf-8")
    if path.is_file() and path.read_bytes() == text:
        return False
    write_bytes_atomic(path, text)
    return True
