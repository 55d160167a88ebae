"""Proof of teeth: each deliberately broken backend fails, with a report naming the op and the difference;
the numpy backend passes; a missing op is "not provided"; a raising op is a failed case with its traceback."""
from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")

from fdaref.conformance import broken  # noqa: E402
from fdaref.conformance.runner import run_suite  # noqa: E402


BROKEN_IN = [(cls, dtype) for cls in broken.BROKEN for dtype in cls.wrong_in]


@pytest.mark.parametrize("cls,dtype", BROKEN_IN, ids=lambda v: getattr(v, "__name__", v))
def test_broken_backend_fails_the_ci_profile_naming_the_op(cls, dtype):
    report = run_suite(cls(), dtype=dtype, profile="ci", ops=[cls.broken_op], layers=False)
    failures = report.failures()
    assert failures, f"{cls.__name__} ({cls.bug}) passed the suite in {dtype}"
    text = failures[0].render()
    assert cls.broken_op in text and dtype in text and "reproduce with:" in text
    if cls.reported_as:
        assert cls.reported_as in text
    else:
        assert ("outside tolerance" in text) or ("finite-difference" in text)
        assert "worst element" in text or "central difference" in text
    assert not report.ok()


@pytest.mark.parametrize("cls", [c for c in broken.BROKEN if c.wrong_in == ("float32",)], ids=lambda c: c.__name__)
def test_float32_only_bug_passes_in_float64(cls):
    # the port bug lives in its float32 path: the suite must not blame the float64 path for it
    report = run_suite(cls(), dtype="float64", profile="ci", ops=[cls.broken_op], layers=False)
    assert report.ok(), report.render()


def test_numpy_backend_passes_every_op_float32():
    report = run_suite("numpy", dtype="float32", profile="quick", layers=False)
    assert report.ok(), report.render()


def test_numpy_backend_passes_float64_with_layers():
    report = run_suite("numpy", dtype="float64", profile="quick")
    assert report.ok(), report.render()
    assert {"binary_conv2d", "resnet20_block", "end-to-end"} <= set(report.op_status())


def test_missing_op_is_not_provided():
    report = run_suite(broken.MissingOp(), dtype="float32", profile="quick", ops=["xnor_linear", "relu_forward"],
                       layers=False)
    status = report.op_status()
    assert status["xnor_linear"] == "not_provided" and status["relu_forward"] == "pass"
    assert "not provided by broken-MissingOp" in report.render()
    assert not report.ok() and report.ok(allow_missing=True)


def test_raising_op_is_a_failed_case_with_traceback_and_the_run_goes_on():
    report = run_suite(broken.RaisingOp(), dtype="float32", profile="quick", ops=["relu_forward", "relu_backward"],
                       layers=False)
    status = report.op_status()
    assert status["relu_forward"] == "error" and status["relu_backward"] == "pass"
    bad = report.failures()[0]
    assert "kernel launch failed" in bad.traceback and "Traceback" in bad.render()


def test_scale_leak_caught_at_layer_level():
    from fdaref.conformance.layers import ScaleLeakingBinaryConv2d, layer_checks
    from fdaref.conformance.runner import PROFILES
    from fdaref.reference import REFERENCE
    results = layer_checks(REFERENCE, "cpu", "float64", profile=PROFILES["quick"], conv_class=ScaleLeakingBinaryConv2d)
    conv = results[0]
    assert conv.op == "binary_conv2d" and conv.outcome == "fail"
    assert "grad weight" in conv.message and "NOT detached" in conv.message


def test_json_report_and_reproduction_runs(tmp_path):
    import json
    import subprocess
    import sys
    report = run_suite(broken.PackBitsReversed(), dtype="float32", profile="quick", ops=["pack_signs"], layers=False)
    path = tmp_path / "r.json"
    report.write_json(str(path))
    data = json.loads(path.read_text())
    assert data["backend"]["name"] == "broken-PackBitsReversed" and data["suite"]["version"]
    assert data["target"] == {"device": "cpu", "dtype": "float32"} and data["summary"]["ok"] is False
    assert all("outcome" in c for c in data["cases"])
    repro = report.failures()[0].reproduction
    out = subprocess.run([sys.executable, "-c", repro], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "max |got - ref| =" in out.stdout and "max |got - ref| = 0.0 " not in out.stdout
