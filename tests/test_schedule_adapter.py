"""check_schedule: a training loop's own n_e / alpha_e against SEMANTICS 6, written out here as formulas."""
from __future__ import annotations

import math

import pytest

pytest.importorskip("hypothesis")

from fdaref.conformance.adapters import check_schedule  # noqa: E402


def paper_n(e, E):   # n_e = 9 + floor(9 e / (E - 1)), 18 for a one-epoch run
    return 18 if E == 1 else 9 + (9 * e) // (E - 1)


def paper_alpha(e, E):   # alpha_e = 0.05 (1 + cos(pi (e + 1) / E)), exactly 0 at the last epoch
    return 0.0 if e == E - 1 else 0.05 * (1 + math.cos(math.pi * (e + 1) / E))


def test_a_faithful_schedule_passes_every_run_length():
    report = check_schedule(paper_n, paper_alpha, preset="paper")
    assert report.ok() and len(report.results) == 16
    assert all(r.outcome == "pass" for r in report.results)


def test_a_float32_cosine_is_within_tolerance():
    import numpy as np
    f32 = lambda e, E: float(np.float32(0.05) * (np.float32(1) + np.cos(np.float32(np.pi * (e + 1) / E))))
    assert check_schedule(alpha_fn=f32, raise_on_failure=False).ok()


@pytest.mark.parametrize("n_fn,where", [
    (lambda e, E: 9 + (9 * e) // E, "n_e(1, 2) = 13, expected 18"),                # BiBench's: never 18
    (lambda e, E: 9 + (9 * e) // (E - 1), "ZeroDivisionError"),                  # E = 1 divides by zero
])
def test_the_classic_n_slips_fail_naming_the_epoch(n_fn, where):
    report = check_schedule(n_fn, preset="paper", raise_on_failure=False)
    assert not report.ok()
    assert any(where in r.message for r in report.failures()), [r.message for r in report.failures()]


def test_alpha_one_epoch_early_fails():
    early = lambda e, E: 0.05 * (1 + math.cos(math.pi * e / E))
    report = check_schedule(alpha_fn=early, raise_on_failure=False)
    assert not report.ok()
    assert "alpha_e(0, 1) = 0.1, expected 0.0" in report.failures()[0].message
    with pytest.raises(AssertionError, match="schedule alpha_e"):
        check_schedule(alpha_fn=early)


def test_bibench_preset_has_its_own_n():
    bibench_n = lambda e, E: 9 + (9 * e) // E
    assert check_schedule(bibench_n, preset="bibench", raise_on_failure=False).ok()
    assert not check_schedule(paper_n, preset="bibench", raise_on_failure=False).ok()


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="give n_fn, alpha_fn or both"):
        check_schedule()
