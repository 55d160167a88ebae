"""The ``fdaref`` command line. Each subcommand lives in its own module with ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int`` (the exit status)."""
from __future__ import annotations

import argparse
import importlib
import sys

# Order is the order of ``fdaref --help``. A module that is not there yet is skipped.
COMMANDS = ("train", "evaluate", "demo", "ablation", "plot", "conform", "vectors", "export", "info")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fdaref",
        description="Golden reference for binary neural networks trained with FDA (Xu et al., NeurIPS 2021): "
                    "train, evaluate, check a backend's conformance, export golden vectors and packed models.")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
