"""Capabilities: a backend declares the option values it implements; the suite draws only those and lists
the declined ones (the worked BiBench example); registered estimators are drawn and checked."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from fdaref import estimators  # noqa: E402
from fdaref.conformance.capabilities import OPTION_NAMES, restrict  # noqa: E402
from fdaref.conformance.runner import run_suite  # noqa: E402
from fdaref.conformance.strategies import ALL_OPTIONS  # noqa: E402

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "bibench_backend")


@pytest.fixture
def bibench(monkeypatch):
    monkeypatch.syspath_prepend(os.path.abspath(EXAMPLE))
    import bibench_backend
    return bibench_backend


def test_bibench_example_runs_clean_and_lists_what_it_declines(bibench):
    report = run_suite(bibench.backend, dtype="float32", profile="quick")
    assert report.ok(), report.render()
    declined = [r for r in report.results if r.outcome == "declined"]
    said = {(r.op, next(iter(r.kwargs))) for r in declined if r.kwargs}
    assert ("sign", "zero") in said and ("quantize_backward", "estimator") in said
    assert ("quantize_forward", "eval_noise") in said and ("conv2d_forward", "pad_value") in said
    assert all(r.message for r in declined)  # every declined value carries its reason
    # declined values were never drawn: no passing case of sign uses zero = -1
    assert not any(r.op == "sign" and r.outcome == "pass" and r.kwargs.get("zero") == -1.0 for r in report.results)
    layer = [r for r in report.results if r.op in ("binary_conv2d", "end-to-end")]
    assert layer and all(r.outcome == "pass" for r in layer)  # run with the bibench preset it supports
    data = report.to_dict()
    assert data["declined"] and data["summary"]["ok"] is True


def test_the_same_backend_without_its_declaration_fails(bibench):
    class Undeclared(bibench.BiBenchBackend):
        supports = None

    report = run_suite(Undeclared(), dtype="float32", profile="quick", ops=["sign", "quantize_forward"],
                       layers=False)
    status = report.op_status()
    assert status["sign"] == "error" or status["sign"] == "fail"
    assert status["quantize_forward"] == "fail"  # BiBench's eval adds the noise term: not SPEC 4
    assert "eval: exactly sign" in report.render()


def test_restrict_keeps_supported_values_and_reports_the_rest():
    class OnlyLayout:
        def supports(self, op, option, value):
            return "no activation rows here" if (option, value) == ("layout", "activation") else None

    space, declined = restrict(OnlyLayout(), "noise_forward", ALL_OPTIONS)
    assert space.layouts == ("weight",) and space.etas == ALL_OPTIONS.etas
    assert [(d.option, d.value, d.reason) for d in declined] == [("layout", "activation", "no activation rows here")]
    same, none_declined = restrict(object(), "noise_forward", ALL_OPTIONS)  # no supports(): everything drawn
    assert same == ALL_OPTIONS and none_declined == []
    assert {"zero", "estimator", "eta_kind", "layout", "mode", "pad_value", "eval_noise"} <= set(OPTION_NAMES)


def _register(monkeypatch, name, grad, antiderivative, peak=2.0):
    est = estimators.Estimator(name, grad, {}, lambda p: p, "test", (lambda p: peak) if peak else None,
                               antiderivative)
    monkeypatch.setitem(estimators._REGISTRY, name, est)


def test_a_registered_estimator_is_drawn_and_checked(monkeypatch):
    _register(monkeypatch, "twice_ste", lambda x: np.full_like(x, 2.0), lambda x: 2.0 * x)
    report = run_suite("numpy", dtype="float64", profile="quick", ops=["surrogate"], layers=False)
    assert report.ok(), report.render()
    assert any(r.kwargs.get("estimator") == "twice_ste" for r in report.results)


def test_a_wrong_antiderivative_fails_the_finite_difference_check(monkeypatch):
    # the registry's claim (d/dx of 3x is 2) is checked, so a wrong declaration cannot pass silently
    _register(monkeypatch, "twice_ste", lambda x: np.full_like(x, 2.0), lambda x: 3.0 * x)
    report = run_suite("numpy", dtype="float64", profile="quick", ops=["surrogate"], layers=False)
    assert "central difference of its antiderivative" in report.render()


def test_an_estimator_without_antiderivative_is_checked_without_fd_and_said_so(monkeypatch):
    _register(monkeypatch, "twice_ste", lambda x: np.full_like(x, 2.0), None)
    report = run_suite("numpy", dtype="float64", profile="quick", ops=["surrogate"], layers=False)
    assert report.ok(), report.render()
    assert any("twice_ste: no finite-difference check" in s for s in report.to_dict()["estimators_without_fd"])
