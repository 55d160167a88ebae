"""``fdaref conform --torch-layer pkg.module:factory``: the torch layer adapter from the command line.

``cli/conform.py`` adds these flags with :func:`add_arguments` and hands over to :func:`run` when
``--torch-layer`` is given. The factory's ``fdaref_mapping`` attribute (a
:class:`~.torch_adapter.TorchLayerMapping`) says where the weights are, unless ``--torch-mapping`` names one.
"""
from __future__ import annotations

import argparse
import importlib
from typing import Any

from fdaref.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("torch layer adapter (instead of --backend)")
    g.add_argument("--torch-layer", default=None, metavar="PKG.MODULE:FACTORY",
                   help="check the binary torch layer FACTORY(in, out, kernel, stride, padding, bias) builds "
                        "against fdaref's reference layer")
    g.add_argument("--layer-kind", default="conv2d", choices=("conv2d", "linear"),
                   help="conv2d: FACTORY(in, out, kernel, stride, padding, bias); linear: FACTORY(in, out, bias)")
    g.add_argument("--torch-mapping", default=None, metavar="PKG.MODULE:MAPPING",
                   help="the TorchLayerMapping (default: the factory's fdaref_mapping attribute)")


def load_object(spec: str, what: str) -> Any:
    """The object named by ``pkg.module:attribute``; InputError saying why it cannot be loaded."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"{what} {spec!r}: expected pkg.module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"{what} {spec!r}: cannot import {module_name!r} ({exc}); is it on PYTHONPATH?") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise InputError(f"{what} {spec!r}: module {module_name!r} has no attribute {attr!r}") from None


def run(args: argparse.Namespace) -> int:
    """Run the layer check; print failures, declined cases and the summary; exit 0 only if all pass."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError("--torch-layer needs PyTorch, which is not installed here") from None
    from .torch_adapter import check_torch_layer
    factory = load_object(args.torch_layer, "--torch-layer")
    mapping = load_object(args.torch_mapping, "--torch-mapping") if args.torch_mapping else None
    report = check_torch_layer(factory, kind=args.layer_kind, mapping=mapping, preset=args.preset,
                               dtypes=(args.dtype,), profile=args.profile, raise_on_failure=False)
    print(report.render(verbose=args.verbose))
    if args.report:
        from fdaref.atomic import write_json_atomic
        write_json_atomic(args.report, report.to_dict())
        print(f"JSON report: {args.report}")
    return 0 if report.ok() else 1
