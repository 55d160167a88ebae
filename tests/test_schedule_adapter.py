"""check_schedule: a training loop's own n_e / alpha_e against SEMANTICS 6, written out here as formulas."""
from __future__ import annotations

import math

import pytest

pytest.importorskip("hypothesis")

from fdaref.conformance.adapters import check_schedule  # noqa: E402
from fdaref.conformance.adapters.schedules import SCHEDULE_EPOCHS, SWEEP_EPOCHS  # noqa: E402


def paper_n(e, E):   # n_e = 9 + floor(9 e / (E - 1)), 18 for a one-epoch run
    return 18 if E == 1 else 9 + (9 * e) // (E - 1)


def paper_alpha(e, E):   # alpha_e = 0.05 (1 + cos(pi (e + 1) / E)), exactly 0 at the last epoch
    return 0.0 if e == E - 1 else 0.05 * (1 + math.cos(math.pi * (e + 1) / E))


def test_a_faithful_schedule_passes_every_run_length():
    report = check_schedule(paper_n, paper_alpha, preset="paper")
    assert report.ok() and len(report.results) == 2 * (len(SCHEDULE_EPOCHS) + 1)   # + the sweep of 1 .. 300
    assert all(r.outcome == "pass" for r in report.results)
    assert sum(r.examples for r in report.results) == 2 * SWEEP_EPOCHS * (SWEEP_EPOCHS + 1) // 2 + 2 * 400


def test_numpy_scalars_are_numbers_but_n_must_be_an_integer():
    import numpy as np
    assert check_schedule(lambda e, E: np.int64(paper_n(e, E)), lambda e, E: np.float32(paper_alpha(e, E)),
                          raise_on_failure=False).ok()
    report = check_schedule(lambda e, E: float(paper_n(e, E)), raise_on_failure=False)   # 14.0 is not an n
    assert not report.ok() and "n_e(0, 1) = 18.0, expected 18" in report.failures()[0].message


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


@pytest.mark.parametrize("preset,n_fn,where", [
    # the step in floating point: e * (9 / (E - 1)) truncates below 9 e / (E - 1) first at E = 142 (bibench: 141)
    ("paper", lambda e, E: 18 if E == 1 else 9 + int(e * (9 / (E - 1))), "expected 12"),
    ("bibench", lambda e, E: 9 + int(e * (9 / E)), ", 141)"),
])
def test_a_floating_point_step_fails_where_it_truncates(preset, n_fn, where):
    report = check_schedule(n_fn, preset=preset, raise_on_failure=False)
    assert not report.ok() and any(where in r.message for r in report.failures())


def test_the_sweep_finds_a_run_length_off_the_fixed_list():
    odd = lambda e, E: paper_n(e, E) + (E == 57 and e == 3)
    report = check_schedule(odd, raise_on_failure=False)
    assert [r.check for r in report.failures()] == [f"1 .. {SWEEP_EPOCHS} epochs"]
    assert "n_e(3, 57) = 10, expected 9" in report.failures()[0].message


@pytest.mark.parametrize("alpha_fn", [
    lambda e, E: 0.1 * math.cos(math.pi * (e + 1) / (2 * E)) ** 2,   # the half-angle form: 3.7e-34 at the end
    lambda e, E: max(paper_alpha(e, E), 5e-8),                        # floored "to keep the module alive"
])
def test_alpha_must_be_exactly_zero_where_the_presets_is(alpha_fn):
    report = check_schedule(alpha_fn=alpha_fn, raise_on_failure=False)
    assert not report.ok()
    assert all("exactly 0 where alpha_e is" in r.message and ", expected 0.0" in r.message for r in report.failures())


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
