"""The conformance suite: checks any op table against the fdaref reference (SEMANTICS 9).

Main entry points:
- :func:`run_suite` (``fdaref conform``): every op of :data:`fdaref.optable.CHECKED_OPS` (the op table and
  ``sum_to_shape``) on one backend / device / dtype, plus the layer and end-to-end checks; returns a
  :class:`SuiteReport` (``.ok()``, ``.render()``,
  ``.write_json(path)``);
- :func:`run_matrix`: a pass/fail table of every installed backend (for the demo);
- :mod:`.pytest_plugin`: ``check_op`` / ``conformance_params`` to use the suite from pytest;
- :mod:`.vectors` (``fdaref vectors``): golden vectors for implementations in any language (VECTORS.md).
- :mod:`.adapters`: check plain callables (``check_sign`` / ``check_surrogate`` / ``check_quantizer``) and
  torch code (a sign Function, a quantizer module, a binary layer, a whole model) without an op table.
Per-op knowledge lives in ONE record per op, :data:`RECORDS` (records.py): it names the strategy
(strategies.py), the edge cases (edges.py), the tolerance (tolerances.py), the finite-difference rule
(gradients.py) and the error inputs (error_inputs.py). What a backend may decline is capabilities.py.
"""
from .matrix import format_matrix, run_matrix
from .records import RECORDS, OpRecord
from .report import SUITE_VERSION, CaseResult, SuiteReport
from .runner import DEFAULT_PROFILE, PROFILES, Profile, run_op, run_suite
from .tolerances import Tol, policy_table

__all__ = ["run_suite", "run_op", "run_matrix", "format_matrix", "RECORDS", "OpRecord", "SuiteReport",
           "CaseResult", "PROFILES", "Profile", "DEFAULT_PROFILE", "policy_table", "Tol", "SUITE_VERSION"]
