"""The golden vectors alone (what a port in another language has) fail every planted bug they can express.

A port checked only against the exported files never meets Hypothesis: each broken backend's results on the
default export (edges, large sizes, five random cases an op) must fail ``vectors check`` on its broken op,
in every dtype the bug shows in, while the reference's own results pass. Bugs in how memory is read
(``in_vectors = False``) are the op-table suite's alone.
"""
import numpy as np
import pytest

from fdaref.conformance import broken
from fdaref.conformance.vectors import check_results, compute_results, export_vectors
from fdaref.reference import REFERENCE

DTYPES = ("float32", "float64")
CASES = [(cls, dtype) for cls in broken.BROKEN if cls.in_vectors for dtype in cls.wrong_in]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("reach")
    dirs = {}
    for dtype in DTYPES:
        dirs[dtype] = str(root / dtype)
        export_vectors(dirs[dtype], dtype=dtype)
    return dirs


def _check(vectors: str, backend, out: str, ops=None):
    with np.errstate(all="ignore"):   # the cases' special values are deliberate
        compute_results(vectors, backend, out, ops=ops)
    return check_results(vectors, out, ops=ops)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_reference_passes_its_own_vectors(exported, tmp_path, dtype):
    report = _check(exported[dtype], REFERENCE, str(tmp_path / "ref"))
    assert report.ok and report.checked > 800


@pytest.mark.parametrize("cls,dtype", CASES, ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_each_planted_bug_fails_the_vectors(exported, tmp_path, cls, dtype):
    report = _check(exported[dtype], cls(), str(tmp_path / "out"), ops=[cls.broken_op])
    assert not report.ok, f"{cls.__name__} ({cls.bug}) passes the {dtype} golden vectors"
    assert report.per_op[cls.broken_op].failed > 0


def test_the_layout_bugs_are_left_to_the_op_table():
    # every bug the vectors skip is one the op-table suite reports from a non-contiguous or aliased input
    skipped = [cls.__name__ for cls in broken.BROKEN if not cls.in_vectors]
    assert sorted(skipped) == ["ConvBackwardCOrFOnly", "ConvIgnoresStrides", "ConvNchwOrNhwcOnly",
                               "ParamsChangedInPlace"]
