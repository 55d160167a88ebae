"""A worked backend that implements only BiBench's conventions, and says so through ``supports``.

BiBench's FDA layers (htqin/BiBench, bibench/models/layers/fda.py; /work/shared/paper-notes.md section 9)
binarize with torch.sign (sign(0) = 0), train only the FDA estimator with a 0.1 sin shortcut, scale
weights per output channel, pad with 0, and add alpha * e(t) in eval too (there is no eval branch). This
op table behaves that way: ``sign`` and the quantizer's forward are its own, everything else is delegated
to the reference. It declines every other option value (``supports``), so the suite draws only what it
implements and lists the rest as declined::

    PYTHONPATH=examples/bibench_backend fdaref conform --backend bibench_backend:backend
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fdaref.reference import REFERENCE, NumpyReference

# option -> (the one value BiBench implements, why it declines the others)
_ONLY = {
    "zero": (0.0, "BiBench binarizes with torch.sign, so sign(0) = 0"),
    "estimator": ("fda", "BiBench implements only the FDA estimator"),
    "eta_kind": ("sin", "BiBench's noise module has the shortcut 0.1 sin(t) only"),
    "mode": ("channel", "BiBench scales weights by their mean |W| per output channel only"),
    "pad_value": (0.0, "BiBench pads the binarized input with zeros only"),
    "eval_noise": (True, "BiBench adds alpha * e(t) in eval too (no eval branch), unlike SEMANTICS 4"),
}


class BiBenchBackend(NumpyReference):
    """The reference with BiBench's sign and eval, declaring what it does not do."""

    name = "bibench-example"
    version = "0.1"

    def supports(self, op: str, option: str, value: Any) -> Optional[str]:
        if option == "zero" and op == "pack_signs":
            return None  # packing stores -1 / +1 bits whatever the training convention
        if option not in _ONLY:
            return None
        only, reason = _ONLY[option]
        return None if value == only else reason

    def sign(self, x: np.ndarray, zero: float = 0.0) -> np.ndarray:
        if zero != 0.0:
            raise ValueError(f"zero: BiBench's sign maps 0 to 0 only, got {zero!r}")
        out = np.sign(x)  # NaN stays NaN (torch.sign would give 0: not a convention fdaref offers)
        return out

    def quantize_forward(self, t, w1, w2, *, alpha, zero, layout, eta_kind, a, training=True):
        # BiBench: sign(t) + alpha e(t) whenever the module exists, in training and in eval alike
        return REFERENCE.quantize_forward(t, w1, w2, alpha=alpha, zero=zero, layout=layout, eta_kind=eta_kind,
                                          a=a, training=True)


backend = BiBenchBackend()
