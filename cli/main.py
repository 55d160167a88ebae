"""The ``fdaref`` command line. Each subcommand lives in its own module with ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int`` (the exit status)."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback

from fdaref import __version__
from fdaref.allocator import keep_freed_memory
from fdaref.errors import InputError

EXIT_BAD_INPUT = 2

# Order is the order of ``fdaref --help``. A module that is not there yet is skipped.
COMMANDS = ("train", "evaluate", "demo", "ablation", "plot", "conform", "vectors", "export", "info")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fdaref",
        description="Golden reference for binary neural networks trained with FDA (Xu et al., NeurIPS 2021): "
                    "train, evaluate, check a backend's conformance, export golden vectors and packed models.")
    parser.add_argument("--version", action="version", version=f"fdaref {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of its one-line message")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"fdaref.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"fdaref.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def _show_library_notices() -> None:
    """fdaref's library code logs (it never prints); the CLI shows its INFO notices as ``fdaref: message``."""
    logger = logging.getLogger("fdaref")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("fdaref: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


TRAINING_COMMANDS = ("train", "ablation", "demo")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _show_library_notices()
    if args.command in TRAINING_COMMANDS:
        keep_freed_memory()   # steps reuse the heap instead of faulting pages in again (fdaref/allocator.py)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_went_away()
    except (InputError, OSError) as exc:
        # Bad input (or a file the OS refused): one line naming it, exit 2; --debug shows where it came from.
        if args.debug:
            traceback.print_exc()
        print(f"fdaref {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT


EXIT_BROKEN_PIPE = 128 + 13   # what a shell reports for a command ended by SIGPIPE


def _reader_went_away() -> int:
    """``fdaref info | head -1``: the reader closed the pipe. Exit quietly, as a command killed by SIGPIPE
    would; stdout goes to /dev/null so that Python's flush at exit does not complain about it either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):   # a stdout without a file descriptor (tests swap it)
        pass
    return EXIT_BROKEN_PIPE


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or type(exc).__name__}"
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
