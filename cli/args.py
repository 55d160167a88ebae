"""What every subcommand shares: argparse types whose messages say what was expected, and the one rule for
outputs that already exist (refused unless ``--overwrite``; see :func:`refuse_existing`).

Not a subcommand (``cli/main.py`` lists those by name)."""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Iterable

from fdaref.atomic import nearest_existing
from fdaref.errors import InputError

class OutputExists(InputError):
    """An output file that is already there; the message names it and the flag that replaces it."""


def non_empty(text: str) -> str:
    """argparse type: a non-empty string (an empty ``--out ""`` would otherwise mean the current directory
    or the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a non-empty value, got ''")
    return text


def _int_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, with a message that says so."""
    return _int_at_least(1, text)


def nonneg_int(text: str) -> int:
    """argparse type: an integer >= 0, with a message that says so."""
    return _int_at_least(0, text)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def seconds(text: str) -> float:
    """argparse type: a time limit of the conformance suite, finite seconds in (0, a day]
    (conformance.isolation.MAX_LIMIT_S: beyond it the OS timers overflow)."""
    from fdaref.conformance.isolation import MAX_LIMIT_S
    value = positive_float(text)
    if value > MAX_LIMIT_S:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_LIMIT_S:g} seconds (a day), got {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def refuse_existing(paths: Iterable[str | os.PathLike[str]], overwrite: bool, option: str,
                    flag: str = "--overwrite") -> None:
    """OutputExists naming the first of ``paths`` that exists, unless ``overwrite``: a user's file is never
    replaced without being asked (the same rule as a run directory's, fdaref.train.rundir). Called before
    anything is computed or written, so a refused command leaves everything as it was."""
    if overwrite:
        return
    for p in map(Path, paths):
        if p.exists() or p.is_symlink():
            raise OutputExists(f"{p} already exists; replace it with {flag}, or give another {option}")


def refuse_non_empty_dir(path: str | os.PathLike[str], overwrite: bool, option: str) -> None:
    """OutputExists for a directory that already holds files, unless ``overwrite``."""
    d = Path(path)
    if not overwrite and d.is_dir() and any(d.iterdir()):
        raise OutputExists(f"{d} is not empty; write into it anyway with --overwrite, or give another {option}")


def check_output_file(path: str | os.PathLike[str], option: str, *, overwrite: bool,
                      parents: bool = True) -> Path:
    """Refuse, before anything is computed or written, an output file that could not be written or that
    would replace one already there without ``overwrite``. Writability is checked without writing (a
    placeholder would itself replace or create a file the command may then never finish). ``parents``: the
    writer creates missing parent directories (else the parent must exist)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: cannot write (is a directory, expected a file path)")
    refuse_existing([p], overwrite, option)
    d = nearest_existing(p.parent)
    if not d.is_dir():
        raise InputError(f"{p}: cannot create its directory {p.parent} ({d} is a file)")
    if d != p.parent and not parents:
        raise InputError(f"{p}: cannot write (no such directory {p.parent}; the {option} directory must exist)")
    if not os.access(d, os.W_OK | os.X_OK):
        raise InputError(f"{p}: cannot write ({d} is not writable)")
    return p
