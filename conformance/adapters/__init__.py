"""Adapters: check an implementation written in a framework (or as plain callables) with the suite."""
from .callables import (CallableOps, check_quantizer, check_sign, check_surrogate, run_wrapped, sign_table,
                        surrogate_table)
from .declared import Declaration
from .schedules import check_schedule


def __getattr__(name: str):  # the torch adapters import torch only when used
    import importlib
    torch_adapter = importlib.import_module(f"{__name__}.torch_adapter")
    if name in torch_adapter.__all__:
        return getattr(torch_adapter, name)
    raise AttributeError(name)

__all__ = ["check_sign", "check_surrogate", "check_quantizer", "check_schedule", "CallableOps", "Declaration",
           "run_wrapped",
           "sign_table", "surrogate_table",
           "TorchLayerMapping", "TorchQuantizerMapping", "check_torch_layer", "check_torch_model",
           "torch_sign_table", "torch_quantizer_table", "compare_with_reference"]
