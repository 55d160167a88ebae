"""Inputs built to probe where implementations break, the tolerance floor, kinks crossed by rounding in the
layer checks, error inputs and the per-case margin."""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from fdaref.conformance import probes  # noqa: E402
from fdaref.conformance.case import Case  # noqa: E402
from fdaref.conformance.records import RECORDS  # noqa: E402
from fdaref.conformance.runner import evaluate, run_suite  # noqa: E402
from fdaref.reference import REFERENCE  # noqa: E402


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [0, 9, 20])
def test_argument_limit_is_the_largest_power_of_two_meeting_both_rules(dtype, n):
    limit = probes.fda_argument_limit(dtype, n)
    eps = np.finfo(dtype).eps
    m = 2 * (n + 1)

    def ok(t):  # resolution of cos((2n+1) t) and (float64) the precision of t = omega x
        return m * eps * t <= 1 / 16 and (dtype == "float32" or (n + 1) * eps * t <= 1e-11 / 8)
    assert ok(limit) and not ok(2 * limit) and math.log2(limit).is_integer()


def test_kpi_points_cover_ulps_and_every_distance():
    omega = 0.1
    pts = np.asarray(probes.kpi_points(1000, omega, "float32"), np.float64)
    dist = np.abs(pts * omega - 1000 * math.pi)
    ulp = float(np.spacing(np.float32(1000 * math.pi / omega))) * omega
    assert dist.min() <= 2 * ulp  # the nearest float32 neighbours of k pi / omega
    for d in (1e-5, 1e-3, 0.1, 0.5):
        assert np.any(np.abs(dist - d) <= 1e-6 + 1e-3 * d), d


def test_surrogate_edges_reach_the_argument_limit_and_subnormals():
    cases = [c for c in RECORDS["surrogate"].edges("float32") if c.kwargs["estimator"] == "fda"]
    x = np.concatenate([c.get("x").astype(np.float64) for c in cases])
    finite = x[np.isfinite(x)]
    assert (np.abs(finite) * 0.1).max() >= probes.fda_argument_limit("float32", 20) / 2
    assert np.any((finite != 0) & (np.abs(finite) < np.finfo(np.float32).tiny))
    assert np.isposinf(x).any() and np.isneginf(x).any() and np.isnan(x).any()   # SEMANTICS 10's NaN cases


def test_subnormal_input_is_no_false_failure_in_float32():
    # the case: dw1 of the reference underflows in float32 and the relu kink moves (t W1 -> 0)
    t = np.array([[1.4e-45, 0.0, 0.0, 0.0, 0.0]], np.float32)
    w1 = np.array([[0.245], [-0.41], [-0.82], [-0.86], [0.56]], np.float32)
    w2 = np.array([[0.55, -0.92, -1.84, -1.93, 1.25]], np.float32)
    g = np.array([[0.13, -0.13, 0.64, 0.10, -0.54]], np.float32)
    case = Case("quantize_backward", (("g", g), ("t", t), ("w1", w1), ("w2", w2)),
                {"layout": "weight", "eta_kind": "sin", "a": 0.1, "alpha": 0.1, "estimator": "fda",
                 "params": {"n": 0, "omega": 0.1, "clip": 1.0}})
    ev = evaluate(RECORDS["quantize_backward"], REFERENCE, "cpu", "float32", case)
    assert ev.ok, ev.explain()


def test_release_float32_layer_checks_pass_and_report_kink_crossings():
    from fdaref.conformance.layers import layer_checks
    from fdaref.conformance.runner import PROFILES
    results = layer_checks(REFERENCE, "cpu", "float32", profile=PROFILES["ci"], preset="release")
    assert all(r.outcome == "pass" for r in results), "\n".join(r.render() for r in results)
    assert sum(sum(r.kink_crossings.values()) for r in results) > 0  # exact zeros of pure sign were crossed


def test_error_inputs_are_rejected_by_numpy_and_accepting_them_fails_only_with_strict():
    strict = run_suite("numpy", dtype="float32", profile="quick", ops=["linear_forward", "pack_signs"],
                       layers=False, strict=True)
    assert strict.ok(), strict.render()
    assert any(r.check.startswith("error input") and r.outcome == "pass" for r in strict.results)

    class Lenient:  # accepts NaN in pack_signs
        def __getattr__(self, item):
            return getattr(REFERENCE, item)
        name, version, devices, dtypes = "lenient", "0", ("cpu",), ("float32", "float64")

        def pack_signs(self, x, *, axis, zero):
            return REFERENCE.pack_signs(np.nan_to_num(x), axis=axis, zero=zero)

    loose = run_suite(Lenient(), dtype="float32", profile="quick", ops=["pack_signs"], layers=False)
    warned = [r for r in loose.results if r.outcome == "warn"]
    assert loose.ok() and warned and "accepted the input" in warned[0].message
    assert not run_suite(Lenient(), dtype="float32", profile="quick", ops=["pack_signs"], layers=False,
                         strict=True).ok()


def test_every_case_reports_its_margin():
    report = run_suite("numpy", dtype="float32", profile="quick", ops=["surrogate", "conv2d_forward"], layers=False)
    checked = [c for c in report.to_dict()["cases"] if c["outcome"] == "pass" and not c["check"].startswith("error")]
    assert checked and all(isinstance(c["margin"], float) and 0 <= c["margin"] <= 1 for c in checked)
    assert any(c["margin"] > 0 for c in checked)


def test_torch_fda_at_a_subnormal_input_found_by_the_probes():
    # thorough, seed 4 found it: the lean float32 kernel rounded pi v and M pi v separately, so for a
    # subnormal r the ratio was 21/20 of the peak; both sines now take the same rounded r
    pytest.importorskip("torch")
    from fdaref.backend_loader import load_backend
    x = np.array([-8.96831017167883e-44, 5 * np.finfo(np.float32).smallest_subnormal], np.float32)
    case = Case("surrogate", (("x", x),), {"estimator": "fda", "params": {"n": 9, "omega": 0.1, "clip": None}})
    ev = evaluate(RECORDS["surrogate"], load_backend("torch"), "cpu", "float32", case)
    assert ev.ok, ev.explain()


def test_fd_check_allows_the_antiderivative_rounding_far_out():
    # thorough, seed 5 (paper, float64): at omega t = -80 pi + 0.0018, s_n itself carries ~1e-12 of rounding
    # from its arguments (~7000 rad), which the central difference divides by its step; that is allowed now
    g = np.array([[-0.7823940491957011]])
    t = np.array([[-2513.2741228713685]])
    case = Case("quantize_backward", (("g", g), ("t", t), ("w1", None), ("w2", None)),
                {"layout": "activation", "eta_kind": "sin", "a": 0.1, "alpha": 0.05, "estimator": "fda",
                 "params": {"n": 13, "omega": 0.1, "clip": None}})
    for seed in range(1, 40):  # the FD directions are random: every one of them must pass
        ev = evaluate(RECORDS["quantize_backward"], REFERENCE, "cpu", "float64", case, fd_seed=seed)
        assert ev.ok, ev.explain()


# --- inputs that close the escapes of a mutation study (wrong kernels that passed the ci profile) ----------

def _edge_values(op, dtype, name="x"):
    return [c.get(name) for c in RECORDS[op].edges(dtype)]


def _has_negative_nan(arrays):
    return any(np.any(np.isnan(a) & np.signbit(a)) for a in arrays if a is not None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_negative_nan_is_planted_where_nan_is(dtype):
    # x86's default NaN (inf - inf) has its sign bit set: a `signbit(x)` test sends it to x < 0's branch
    assert np.signbit(np.float32(probes.NEGATIVE_NAN)) and np.signbit(np.float64(probes.NEGATIVE_NAN))
    for op in ("sign", "relu_forward", "prelu_forward", "max_pool2d_forward", "avg_pool2d_forward", "surrogate"):
        assert _has_negative_nan(_edge_values(op, dtype)), op
    exact = [c for c in RECORDS["quantize_forward"].edges(dtype)
             if c.kwargs["alpha"] == 0 or c.get("w1") is None or not c.kwargs["training"]]
    t = [c.get("t") for c in exact]
    assert exact and all(np.isnan(a).any() and np.isposinf(a).any() and np.isneginf(a).any() for a in t)
    assert _has_negative_nan(t)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_reaches_zero_weights_and_the_noise_module(dtype):
    linear = [c for c in RECORDS["linear_forward"].edges(dtype) if np.isnan(c.get("x")).any()]
    conv = [c for c in RECORDS["conv2d_forward"].edges(dtype) if np.isnan(c.get("x")).any()]
    assert linear and conv
    for case in linear:   # every output meets the non-finite inputs through zero weights only
        x, w = case.get("x"), case.get("w")
        assert np.all(w[:, ~np.isfinite(x).all(axis=0)] == 0)
    for case in conv:     # each input channel holding one meets every output channel through a zero tap
        x, w = case.get("x"), case.get("w")
        channels = ~np.isfinite(x).all(axis=(0, 2, 3))
        assert channels.any() and np.all((w[:, channels] == 0).any(axis=(2, 3)))
    noise = [c.get("t") for c in RECORDS["noise_forward"].edges(dtype)]
    assert any(np.isnan(t).any() and t.shape[1] > 1 for t in noise)   # d > 1: the rest of the row shows it


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_subnormals_reach_relu_prelu_and_pooling(dtype):
    tiny = float(np.finfo(dtype).tiny)
    for op in ("relu_forward", "relu_backward", "prelu_forward", "prelu_backward", "max_pool2d_forward",
               "max_pool2d_backward"):
        x = np.concatenate([a.ravel() for a in _edge_values(op, dtype)])
        sub = (x != 0) & (np.abs(x) < tiny)
        assert np.any(sub & (x > 0)) and np.any(sub & (x < 0)), op


def test_backward_relu_and_prelu_never_see_a_nan_x():
    # SEMANTICS leaves relu'(NaN) undecided (frameworks mask by x > 0, a kernel testing x <= 0 differs)
    from hypothesis import given, settings
    for op in ("relu_backward", "prelu_backward"):
        for dtype in ("float32", "float64"):
            assert not any(np.isnan(x).any() for x in _edge_values(op, dtype)), op

        @settings(max_examples=60, deadline=None, database=None, derandomize=True)
        @given(RECORDS[op].strategy("float32"))
        def no_nan(case):
            assert not np.isnan(case.get("x")).any()
        no_nan()


def test_prelu_slopes_above_one_in_edges_and_draws():
    from hypothesis import given, settings
    for op in ("prelu_forward", "prelu_backward"):
        assert any(np.any(s > 1) for s in _edge_values(op, "float32", "slope")), op
    seen = []

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(RECORDS["prelu_forward"].strategy("float32"))
    def collect(case):
        seen.append(float(case.get("slope").max()))
    collect()
    assert max(seen) > 1


@pytest.mark.parametrize("estimator", ["sign_swish", "tanh"])
def test_beta_tails_probed_at_fixed_beta_x(estimator):
    # a cutoff at |beta x| > 10 or 20 shows just past it, for every beta drawn
    for case in [c for c in RECORDS["surrogate"].edges("float64") if c.kwargs["estimator"] == estimator]:
        bx = np.abs(case.get("x") * case.kwargs["params"]["beta"])
        for lo, hi in ((10, 12.5), (20, 26.5)):
            assert np.any((bx > lo) & (bx <= hi)), (case.kwargs, lo)


def test_the_models_sizes_are_in_the_edges():
    assert any(c.get("x").shape[1] > 256 for c in RECORDS["pack_signs"].edges("float32"))
    for op in ("xnor_linear", "xnor_conv2d"):   # the last axis holds the uint64 words
        assert any(c.get("x_packed").shape[-1] > 4 for c in RECORDS[op].edges("float32")), op
    for op in ("cross_entropy_forward", "cross_entropy_backward"):
        assert any(c.get("logits").shape[0] > 128 for c in RECORDS[op].edges("float32")), op
    pads = {c.kwargs["pad_value"] for c in RECORDS["conv2d_forward"].edges("float32") if c.get("w").shape[0] > 128}
    assert {-1.0, 1.0} <= pads
    bn = [c for c in RECORDS["batch_norm_forward"].edges("float32") if c.get("x").shape[1] > 128]
    assert {c.kwargs["training"] for c in bn} == {True, False}


@pytest.mark.parametrize("shape", [(5,), (1, 6), (6, 1), (3, 4), (2, 3, 4, 5), (2, 3, 4, 6), (2, 1, 4, 5), (2, 3, 1, 1),
                                   (3, 2, 4)])
def test_noncontiguous_rerun_layouts(shape):
    from fdaref.conformance.case import noncontiguous
    a = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    view = noncontiguous(a)
    assert np.array_equal(view, a) and not np.shares_memory(view, a) and not view.flags.c_contiguous
    if len(shape) >= 3:   # neither C nor Fortran order: a kernel handling only those two differs
        assert not view.flags.f_contiguous
    if shape == (3, 4):   # a transposed matrix
        assert view.flags.f_contiguous
    if shape == (2, 3, 4, 5):   # an even sum of sizes: an NHWC buffer viewed as NCHW, the channel axis fastest
        assert view.strides[1] == a.itemsize
    if shape == (2, 3, 4, 6):   # an odd one: a CHWN buffer, the batch axis fastest
        assert view.strides[0] == a.itemsize


def test_reproduction_rebuilds_the_permuted_layout():
    import subprocess
    import sys
    from fdaref.conformance import broken
    report = run_suite(broken.ConvBackwardCOrFOnly(), dtype="float64", profile="quick", ops=["conv2d_backward"],
                       layers=False)
    failure = report.failures()[0]
    assert "non-contiguous" in failure.render()
    out = subprocess.run([sys.executable, "-c", failure.reproduction], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "max |got - ref| =" in out.stdout and "max |got - ref| = 0.0 " not in out.stdout
