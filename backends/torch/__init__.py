"""The ``torch`` backend: fdaref's op table in PyTorch (CPU and CUDA), a fused FDA surrogate, and idiomatic
torch modules (:mod:`fdaref.backends.torch.modules`) for people who train in plain PyTorch.

``backend`` is the op table the fdaref engine and the conformance suite use (``--backend torch``).
"""
from .fused import fda_grad, fda_grad_auto, fda_grad_compiled, fda_series_naive
from .ops import TorchBackend, backend, ieee_fp32, register_surrogate, surrogate_grad, surrogate_names

__all__ = ["backend", "TorchBackend", "ieee_fp32", "register_surrogate", "surrogate_grad", "surrogate_names",
           "fda_grad", "fda_grad_auto", "fda_grad_compiled", "fda_series_naive"]
