"""The conformance suite: checks any op table against the fdaref reference (SEMANTICS 9).

Main entry points:
- :func:`run_suite` (``fdaref conform``): every op of :data:`fdaref.optable.OP_NAMES` on one backend / device /
  dtype, plus the layer and end-to-end checks; returns a :class:`SuiteReport` (``.ok()``, ``.render()``,
  ``.write_json(path)``);
- :func:`run_matrix`: a pass/fail table of every installed backend (for the demo);
- :mod:`.pytest_plugin`: ``check_op`` / ``conformance_params`` to use the suite from pytest;
- :mod:`.vectors` (``fdaref vectors``): golden vectors for implementations in any language (VECTORS.md).
Per-op knowledge lives in :data:`RECORDS` (records.py), strategies.py, edges.py, tolerances.py (the
tolerance policy as data) and gradients.py (finite-difference rules).
"""
from .matrix import format_matrix, run_matrix
from .records import RECORDS, OpRecord
from .report import SUITE_VERSION, CaseResult, SuiteReport
from .runner import DEFAULT_PROFILE, PROFILES, Profile, run_op, run_suite
from .tolerances import TOLERANCES, Tol

__all__ = ["run_suite", "run_op", "run_matrix", "format_matrix", "RECORDS", "OpRecord", "SuiteReport",
           "CaseResult", "PROFILES", "Profile", "DEFAULT_PROFILE", "TOLERANCES", "Tol", "SUITE_VERSION"]
