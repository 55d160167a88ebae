"""The callables adapters check float32 and float64 unless told one dtype: a callable that computes in
float32 whatever it is given is right in float32 only."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from fdaref.conformance.adapters import check_sign, check_surrogate  # noqa: E402


def sign_in_float32(x):   # rounds float64 input to float32 first: a float64 subnormal becomes 0, then -1
    with np.errstate(over="ignore"):
        y = x.astype(np.float32)
    return np.where(y > 0, 1.0, np.where(y < 0, -1.0, np.where(np.isnan(y), np.nan, -1.0))).astype(x.dtype)


def ste_with_float32_clip(x):   # |x| <= 1 tested after rounding to float32: 1 + 2^-40 counts as inside
    return (np.abs(x.astype(np.float32)) <= 1).astype(x.dtype)


def test_a_float32_only_sign_fails_by_default_and_passes_float32():
    report = check_sign(sign_in_float32, raise_on_failure=False)
    assert not report.ok() and report.dtype == "float32, float64"
    assert {r.dtype for r in report.failures()} == {"float64"}
    assert check_sign(sign_in_float32, dtype="float32").ok()


def test_a_float32_only_clip_fails_in_float64():
    report = check_surrogate(ste_with_float32_clip, estimator="clipped_ste", raise_on_failure=False)
    assert {r.dtype for r in report.failures()} == {"float64"}
    with pytest.raises(AssertionError, match="float64"):
        check_surrogate(ste_with_float32_clip, estimator="clipped_ste")
