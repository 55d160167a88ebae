"""One record per op of :data:`fdaref.optable.CHECKED_OPS`: everything the suite knows about checking it.

A record holds, in one place (in the spirit of PyTorch's OpInfo): the outputs and their dtypes, the
Hypothesis strategy that constructs valid inputs (strategies.py), the fixed edge cases (edges.py), the
tolerance per dtype and its magnitude rule (tolerances.py), the finite-difference rule (gradients.py), and
the error inputs with the exception each must raise (error_inputs.py). The reference is ``REFERENCE.<op>``,
run in float64 on float64 copies of the given inputs. The surrogates' own knowledge (peak, antiderivative)
lives in the estimator registry (:func:`fdaref.estimators.register_estimator`), one record per estimator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from hypothesis import strategies as st

from fdaref.optable import CHECKED_OPS

from . import edges as E
from . import error_inputs as X
from . import gradients as G
from . import sizes as Z
from . import strategies as S
from .case import Case
from .error_inputs import ErrorCase
from .strategies import ALL_OPTIONS, OptionSpace
from .tolerances import EXACT, Tol, both

SAME = "same"  # the dtype under test


@dataclass(frozen=True)
class OpRecord:
    """How to check one op."""

    op: str
    outputs: tuple[str, ...]
    strategy_fn: Callable[[str, OptionSpace], st.SearchStrategy[Case]]
    edges_fn: Callable[[str, OptionSpace], list[Case]]
    tol: dict[str, Tol]
    fd: Optional[G.FDRule] = None       # None: checked against the reference only
    errors_fn: Callable[[str], list[ErrorCase]] = X.none
    output_dtypes: Optional[tuple[str, ...]] = None  # "same", "uint64" or "int32" per output; None: all same
    note: str = ""
    sizes_fn: Callable[[str, OptionSpace], list[Case]] = Z.none   # large sizes (sizes.py), run with the edges

    def tolerance(self, dtype: str) -> Tol:
        return self.tol[dtype]

    def strategy(self, dtype: str, options: OptionSpace = ALL_OPTIONS) -> st.SearchStrategy[Case]:
        return self.strategy_fn(dtype, options)

    def edges(self, dtype: str, options: OptionSpace = ALL_OPTIONS) -> list[Case]:
        return self.edges_fn(dtype, options) + self.sizes_fn(dtype, options)

    def error_inputs(self, dtype: str) -> list[ErrorCase]:
        return self.errors_fn(dtype)

    def expected_dtype(self, index: int, dtype: str) -> str:
        d = (self.output_dtypes or (SAME,) * len(self.outputs))[index]
        return dtype if d == SAME else d

    @property
    def fd_rule(self) -> Optional[G.FDRule]:
        return self.fd

    @property
    def gradient(self) -> str:
        """How the gradient is checked: "surrogate-fd", "fd" or "reference-only" / "none"."""
        if self.fd is G.SURROGATE_RULE:
            return "surrogate-fd"
        return "fd" if self.fd is not None else ("reference-only" if self.op.endswith("_backward") else "none")

    def reference(self) -> Callable:
        from fdaref.reference import REFERENCE
        return getattr(REFERENCE, self.op)


def _tol(f32_atol: float, f64_atol: float, rule: str) -> dict[str, Tol]:
    return both(Tol(f32_atol, 0.0, rule), Tol(f64_atol, 0.0, rule))


EXACT_BOTH = both(EXACT, EXACT)
REDUCTION = _tol(1e-5, 1e-13, "abs_reduction")

_LIST = (
    OpRecord("sign", ("y",), S.sign_cases, E.sign_edges, EXACT_BOTH, errors_fn=X.sign_errors,
             note="exact on given inputs; sign(0) = zero; NaN stays NaN", sizes_fn=Z.sign),
    OpRecord("surrogate", ("grad",), S.surrogate_cases, E.surrogate_edges, _tol(1e-4, 1e-11, "estimator_peak"),
             G.SURROGATE_RULE, X.surrogate_errors,
             note="vs the reference and the central difference of its antiderivative (s_n of Eq. 9 for fda)",
             sizes_fn=Z.surrogate),
    OpRecord("noise_forward", ("e",), S.noise_forward_cases, E.noise_edges(False), _tol(1e-5, 1e-13, "noise"),
             errors_fn=X.noise_errors("noise_forward"), sizes_fn=Z.noise(False)),
    OpRecord("noise_backward", ("dt", "dw1", "dw2"), S.noise_backward_cases, E.noise_edges(True),
             _tol(1e-5, 1e-13, "noise"), G.NOISE_RULE, X.noise_errors("noise_backward"), sizes_fn=Z.noise(True)),
    OpRecord("quantize_forward", ("z",), S.quantize_cases(False), E.quantize_forward_edges,
             _tol(1e-5, 1e-13, "quantizer"), errors_fn=X.quantize_forward_errors,
             note="exactly sign(t) in eval, with alpha == 0 or without a module", sizes_fn=Z.quantize(False)),
    OpRecord("quantize_backward", ("dt", "dw1", "dw2"), S.quantize_cases(True), E.quantize_backward_edges,
             _tol(1e-4, 1e-11, "quantizer"), G.QUANTIZE_RULE, X.quantize_backward_errors, sizes_fn=Z.quantize(True)),
    OpRecord("weight_scale", ("s",), S.weight_scale_cases, E.weight_scale_edges,
             both(Tol(0.0, 1e-5, "unit"), Tol(0.0, 1e-13, "unit")), errors_fn=X.weight_scale_errors,
             note="no gradient flows through the scale (checked at layer level)", sizes_fn=Z.weight_scale),
    OpRecord("conv2d_forward", ("y",), S.conv_cases(False), E.conv_edges(False), REDUCTION,
             errors_fn=X.conv_errors("conv2d_forward"), sizes_fn=Z.conv(False)),
    OpRecord("conv2d_backward", ("dx", "dw", "db"), S.conv_cases(True), E.conv_edges(True), REDUCTION, G.CONV_RULE,
             X.conv_errors("conv2d_backward"), sizes_fn=Z.conv(True)),
    OpRecord("linear_forward", ("y",), S.linear_cases(False), E.linear_edges(False), REDUCTION,
             errors_fn=X.linear_errors("linear_forward"), sizes_fn=Z.linear(False)),
    OpRecord("linear_backward", ("dx", "dw", "db"), S.linear_cases(True), E.linear_edges(True), REDUCTION,
             G.LINEAR_RULE, X.linear_errors("linear_backward"), sizes_fn=Z.linear(True)),
    OpRecord("batch_norm_forward", ("y", "mean", "invstd", "running_mean", "running_var"),
             S.batch_norm_forward_cases, E.bn_edges(False), _tol(2e-5, 1e-12, "batch_norm"),
             sizes_fn=Z.batch_norm(False)),
    OpRecord("batch_norm_backward", ("dx", "dgamma", "dbeta"), S.batch_norm_backward_cases, E.bn_edges(True),
             _tol(2e-5, 1e-12, "batch_norm"), G.BATCH_NORM_RULE, sizes_fn=Z.batch_norm(True)),
    OpRecord("relu_forward", ("y",), S.relu_cases(False), E.relu_edges(False), EXACT_BOTH, sizes_fn=Z.relu(False)),
    OpRecord("relu_backward", ("dx",), S.relu_cases(True), E.relu_edges(True), EXACT_BOTH, G.RELU_RULE,
             sizes_fn=Z.relu(True)),
    # x, or slope * x rounded once: within half an ulp, subnormals included (2^-150 is half float32's smallest
    # subnormal; float64 is the reference's own dtype), so no floor: a flush-to-zero kernel differs
    OpRecord("prelu_forward", ("y",), S.prelu_cases(False), E.prelu_edges(False),
             both(Tol(2.0 ** -150, 1e-6, "unit", floor=False), Tol(0.0, 1e-14, "unit", floor=False)), sizes_fn=Z.prelu(False)),
    OpRecord("prelu_backward", ("dx", "dslope"), S.prelu_cases(True), E.prelu_edges(True), REDUCTION, G.PRELU_RULE,
             sizes_fn=Z.prelu(True)),
    OpRecord("max_pool2d_forward", ("y",), S.pool_cases("max", False), E.pool_edges("max", False), EXACT_BOTH,
             errors_fn=X.pool_errors("max_pool2d_forward"), sizes_fn=Z.pool("max", False)),
    OpRecord("max_pool2d_backward", ("dx",), S.pool_cases("max", True), E.pool_edges("max", True), REDUCTION,
             errors_fn=X.pool_errors("max_pool2d_backward"),
             note="ties: first maximal element in window order (no finite differences: not differentiable there)",
             sizes_fn=Z.pool("max", True)),
    OpRecord("avg_pool2d_forward", ("y",), S.pool_cases("avg", False), E.pool_edges("avg", False), REDUCTION,
             errors_fn=X.pool_errors("avg_pool2d_forward"), sizes_fn=Z.pool("avg", False)),
    OpRecord("avg_pool2d_backward", ("dx",), S.pool_cases("avg", True), E.pool_edges("avg", True), REDUCTION,
             G.AVG_POOL_RULE, X.pool_errors("avg_pool2d_backward"), sizes_fn=Z.pool("avg", True)),
    OpRecord("cross_entropy_forward", ("loss",), S.cross_entropy_cases(False), E.cross_entropy_edges(False),
             _tol(1e-5, 1e-13, "cross_entropy"), errors_fn=X.cross_entropy_errors("cross_entropy_forward"),
             sizes_fn=Z.cross_entropy(False)),
    OpRecord("cross_entropy_backward", ("dlogits",), S.cross_entropy_cases(True), E.cross_entropy_edges(True),
             _tol(1e-5, 1e-13, "cross_entropy"), G.CROSS_ENTROPY_RULE,
             X.cross_entropy_errors("cross_entropy_backward"), sizes_fn=Z.cross_entropy(True)),
    OpRecord("pack_signs", ("words",), S.pack_signs_cases, E.pack_signs_edges, EXACT_BOTH, errors_fn=X.pack_signs_errors,
             output_dtypes=("uint64",), note="bit-exact", sizes_fn=Z.pack_signs),
    OpRecord("xnor_conv2d", ("y",), S.xnor_conv2d_cases, E.xnor_conv2d_edges, EXACT_BOTH, output_dtypes=("int32",),
             note="exact", sizes_fn=Z.xnor_conv2d),
    OpRecord("xnor_linear", ("y",), S.xnor_linear_cases, E.xnor_linear_edges, EXACT_BOTH,
             errors_fn=X.xnor_linear_errors, output_dtypes=("int32",), note="exact", sizes_fn=Z.xnor_linear),
    OpRecord("sum_to_shape", ("y",), S.sum_to_shape_cases, E.sum_to_shape_edges, REDUCTION,
             note="undoes numpy broadcasting: sums the leading axes and the stretched size-1 axes",
             sizes_fn=Z.sum_to_shape),
)
RECORDS: dict[str, OpRecord] = {r.op: r for r in _LIST}

missing = set(CHECKED_OPS) ^ set(RECORDS)
if missing:  # pragma: no cover - the op table and the suite must move together
    raise RuntimeError(f"conformance records and fdaref.optable.CHECKED_OPS differ: {sorted(missing)}")
