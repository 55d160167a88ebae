"""One record per op of :data:`fdaref.optable.OP_NAMES`: everything the suite knows about checking it.

A record ties together the reference (``REFERENCE.<op>``, run in float64 on float64 copies of the given
inputs), the Hypothesis strategy that constructs valid inputs, the fixed edge cases, the tolerance policy
(:mod:`.tolerances`), the names and dtypes of the outputs, and the gradient rule (:mod:`.gradients`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from hypothesis import strategies as st

from fdaref.optable import OP_NAMES

from .case import Case
from .edges import edge_cases
from .gradients import FD_RULES, FDRule
from .strategies import ALL_OPTIONS, OptionSpace, strategy_for
from .tolerances import Tol, tolerance

SAME = "same"  # the dtype under test


@dataclass(frozen=True)
class OpRecord:
    """How to check one op."""

    op: str
    outputs: tuple[str, ...]
    output_dtypes: tuple[str, ...]      # "same", "uint64" or "int32", per output
    gradient: str                       # "fd" (finite differences), "surrogate-fd", "reference-only", "none"
    note: str = ""

    def tolerance(self, dtype: str) -> Tol:
        return tolerance(self.op, dtype)

    def strategy(self, dtype: str, options: OptionSpace = ALL_OPTIONS) -> st.SearchStrategy[Case]:
        return strategy_for(self.op, dtype, options)

    def edges(self, dtype: str, options: OptionSpace = ALL_OPTIONS) -> list[Case]:
        return edge_cases(self.op, dtype, options)

    def expected_dtype(self, index: int, dtype: str) -> str:
        d = self.output_dtypes[index]
        return dtype if d == SAME else d

    @property
    def fd_rule(self) -> Optional[FDRule]:
        return FD_RULES.get(self.op)

    def reference(self) -> Callable:
        from fdaref.reference import REFERENCE
        return getattr(REFERENCE, self.op)


def _r(op: str, outputs: tuple[str, ...], gradient: str = "none", dtypes: Optional[tuple[str, ...]] = None,
       note: str = "") -> OpRecord:
    return OpRecord(op, outputs, dtypes or (SAME,) * len(outputs), gradient, note)


RECORDS: dict[str, OpRecord] = {r.op: r for r in (
    _r("sign", ("y",), note="exact on given inputs; sign(0) = zero; NaN stays NaN"),
    _r("surrogate", ("grad",), "surrogate-fd", note="vs the reference and the central difference of its "
       "antiderivative (s_n of Eq. 9 for fda)"),
    _r("noise_forward", ("e",)),
    _r("noise_backward", ("dt", "dw1", "dw2"), "fd"),
    _r("quantize_forward", ("z",), note="exactly sign(t) in eval, with alpha == 0 or without a module"),
    _r("quantize_backward", ("dt", "dw1", "dw2"), "fd"),
    _r("weight_scale", ("s",), note="no gradient flows through the scale (checked at layer level)"),
    _r("conv2d_forward", ("y",)),
    _r("conv2d_backward", ("dx", "dw", "db"), "fd"),
    _r("linear_forward", ("y",)),
    _r("linear_backward", ("dx", "dw", "db"), "fd"),
    _r("batch_norm_forward", ("y", "mean", "invstd", "running_mean", "running_var")),
    _r("batch_norm_backward", ("dx", "dgamma", "dbeta"), "fd"),
    _r("relu_forward", ("y",)),
    _r("relu_backward", ("dx",), "fd"),
    _r("prelu_forward", ("y",)),
    _r("prelu_backward", ("dx", "dslope"), "fd"),
    _r("max_pool2d_forward", ("y",)),
    _r("max_pool2d_backward", ("dx",), "reference-only", note="ties: first maximal element in window order"),
    _r("avg_pool2d_forward", ("y",)),
    _r("avg_pool2d_backward", ("dx",), "fd"),
    _r("cross_entropy_forward", ("loss",)),
    _r("cross_entropy_backward", ("dlogits",), "fd"),
    _r("pack_signs", ("words",), dtypes=("uint64",), note="bit-exact"),
    _r("xnor_conv2d", ("y",), dtypes=("int32",), note="exact"),
    _r("xnor_linear", ("y",), dtypes=("int32",), note="exact"),
)}

missing = set(OP_NAMES) ^ set(RECORDS)
if missing:  # pragma: no cover - the op table and the suite must move together
    raise RuntimeError(f"conformance records and fdaref.optable.OP_NAMES differ: {sorted(missing)}")
