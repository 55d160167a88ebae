"""``fdaref conform --torch-layer pkg.module:factory``: the torch layer adapter from the command line.

``cli/conform.py`` adds these flags with :func:`add_arguments` and hands over to :func:`run` when
``--torch-layer`` is given. The factory's ``fdaref_mapping`` attribute (a
:class:`~.torch_adapter.TorchLayerMapping`) says where the weights are, unless ``--torch-mapping`` names one.
"""
from __future__ import annotations

import argparse
import importlib
from typing import Any, Callable

from fdaref.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The torch layer flags."""
    g = p.add_argument_group("torch layer adapter (instead of --backend)")
    g.add_argument("--torch-layer", default=None, metavar="PKG.MODULE:FACTORY",
                   help="check the binary torch layer FACTORY(in, out, kernel, stride, padding, bias) builds "
                        "against fdaref's reference layer, in float64 and float32 (only --dtype's, if given)")
    g.add_argument("--layer-kind", default=None, choices=("conv2d", "linear"),
                   help="conv2d (default): FACTORY(in, out, kernel, stride, padding, bias); linear: "
                        "FACTORY(in, out, bias)")
    g.add_argument("--torch-mapping", default=None, metavar="PKG.MODULE:MAPPING",
                   help="the TorchLayerMapping (default: the factory's fdaref_mapping attribute)")


def load_object(spec: str, what: str, check: Callable[[Any], bool] = lambda obj: True,
                expected: str = "") -> Any:
    """The object named by ``pkg.module:attribute``; InputError saying why it cannot be loaded, or, when
    ``check(obj)`` is false, that it is not ``expected``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"{what} {spec!r}: expected pkg.module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"{what} {spec!r}: cannot import {module_name!r} ({exc}); is it on PYTHONPATH?") from None
    except Exception as exc:  # a third party's module: whatever its import raises (a relative name's
        # TypeError, a SyntaxError, a RuntimeError) is one line naming it, not a traceback
        raise InputError(f"{what} {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise InputError(f"{what} {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not check(obj):
        raise InputError(f"{what} {spec!r}: expected {expected}, got a {type(obj).__name__}")
    return obj


def run(args: argparse.Namespace) -> int:
    """Run the layer check; print failures, declined cases and the summary; exit 0 only if all pass."""
    try:
        import torch
    except ImportError:
        raise InputError("--torch-layer needs PyTorch, which is not installed here") from None
    from .torch_adapter import TorchLayerMapping, check_torch_layer
    factory = load_object(args.torch_layer, "--torch-layer", callable,
                          "a layer factory FACTORY(in, out, ...) (a callable)")
    mapping = None
    if args.torch_mapping is not None:
        mapping = load_object(args.torch_mapping, "--torch-mapping", lambda m: isinstance(m, TorchLayerMapping),
                              "a fdaref.conformance.adapters.TorchLayerMapping")
    device = args.device or "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False)")
    kind = args.layer_kind if args.layer_kind is not None else "conv2d"
    # both dtypes unless --dtype: a layer that computes in float32 whatever it is given is right there only
    dtypes = ("float64", "float32") if args.dtype is None else (args.dtype,)
    report = check_torch_layer(factory, kind=kind, mapping=mapping, preset=args.preset,
                               dtypes=dtypes, profile=args.profile, device=device, raise_on_failure=False)
    print(report.render(verbose=args.verbose))
    if args.report is not None:   # checked by cli/conform.py before anything ran
        from fdaref.atomic import write_json_atomic
        write_json_atomic(args.report, report.to_dict())
        print(f"JSON report: {args.report}")
    return 0 if report.ok() else 1
