"""The numba backend vs the NumPy reference, op by op, in float32 and float64 (small shapes: compile time
dominates, and the kernels are cached in NUMBA_CACHE_DIR after the first run)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")
pytestmark = pytest.mark.usefixtures("numba_precompiled")   # conftest.py: the kernels compile in the background

from fdaref.backends.numba import backend as NB  # noqa: E402
from fdaref.backends.numba import warmup  # noqa: E402
from fdaref.reference import REFERENCE as REF  # noqa: E402

from fdaref.binarize import sign as _ref_sign  # noqa: E402

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}


def close(a, b, dt, scale=1.0):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    tol = TOL[dt]
    np.testing.assert_allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * scale)


def rnd(rng, shape, dt, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dt)


@pytest.fixture(scope="module", autouse=True)
def _warm():
    warmup()


def test_identity_and_table():
    from fdaref.optable import missing_ops
    assert NB.name == "numba" and missing_ops(NB) == []
    assert NB.refuses("sign", "cuda", "float32") and NB.refuses("sign", "cpu", "float16")
    assert NB.refuses("sign", "cpu", "float32") is None


def test_loaded_by_name():
    from fdaref.backend_loader import load_backend
    assert load_backend("numba") is NB


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("size", [7, 70000])
def test_sign(dt, size):
    rng = np.random.default_rng(1)
    x = rnd(rng, size, dt)
    x[:3] = [0.0, -0.0, np.nan]
    for zero in (-1.0, 0.0, 1.0):
        np.testing.assert_array_equal(NB.sign(x, zero), _ref_sign(x, zero))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("size", [300, 70000])
@pytest.mark.parametrize("est,params", [
    ("fda", {"n": 9}), ("fda", {"n": 18, "omega": 0.1, "clip": 1.0}), ("fda", {"n": 0, "omega": 2.0}),
    ("fda", {"n": 37, "omega": 0.7}), ("ste", {}), ("clipped_ste", {}), ("approx_sign", {}),
    ("sign_swish", {"beta": 5.0}), ("tanh", {"beta": 2.0}), ("fda_series", {"n": 4}),
])
def test_surrogates(dt, size, est, params):
    rng = np.random.default_rng(2)
    x = rnd(rng, size, dt, 20.0)
    x[:8] = [0.0, 1.0, -1.0, np.pi / 0.1, 10 * np.pi, np.inf, -np.inf, np.nan]
    got, want = NB.surrogate(x, est, params), REF.surrogate(x, est, params)
    peak = 4 * params.get("omega", 0.1) / np.pi * (params.get("n", 9) + 1) if est.startswith("fda") else 1.0
    if est == "fda" and dt == np.float32:
        # float32 polynomials after a float64 range reduction: within 5e-7 of the peak
        np.testing.assert_allclose(got, want, rtol=0, atol=5e-7 * peak)
    else:
        close(got, want, dt, peak)


def test_fda_near_multiples_of_pi():
    """The 0/0 points t = k pi and their neighbourhood (the Taylor branch and just outside it)."""
    k = np.arange(-50, 51)
    base = k * np.pi / 0.1
    x = np.concatenate([base + d for d in (0.0, 1e-12, -1e-9, 1e-4, -1e-3, 5e-3, 2e-2)])
    for n in (0, 9, 18):
        np.testing.assert_allclose(NB.surrogate(x, "fda", {"n": n}), REF.surrogate(x, "fda", {"n": n}),
                                   rtol=0, atol=1e-12 * (n + 1))


@pytest.mark.parametrize("estimator", ["fda", "fda_series"])
def test_float32_clip_is_rounded_to_float32_first(estimator):
    """SEMANTICS 10: x = float32(0.1) is not above float32(0.1), so it keeps its gradient (in float64 it is
    above 0.1); the next float32 up loses it. Surrogate and quantizer backward alike."""
    c = np.float32(0.1)
    x = np.array([c, -c, np.nextafter(c, np.float32(1)), 0.0], np.float32)
    params = {"n": 9, "omega": 0.1, "clip": 0.1}
    got = NB.surrogate(x, estimator, params)
    eq10 = [4 * 0.1 / np.pi * sum(np.cos((2 * i + 1) * 0.1 * float(v)) for i in range(10)) for v in (c, 0.0)]
    np.testing.assert_allclose(got[[0, 1, 3]], [eq10[0], eq10[0], eq10[1]], rtol=1e-6)
    assert got[2] == 0
    dt, _, _ = NB.quantize_backward(np.ones_like(x), x, None, None, alpha=0.0, estimator=estimator, params=params)
    np.testing.assert_array_equal(dt, got)


def test_third_party_estimator_falls_back():
    from fdaref.estimators import register_estimator
    register_estimator("nb_test_cube", lambda x: (3 * x * x).astype(x.dtype), replace=True)
    x = np.linspace(-2, 2, 11)
    np.testing.assert_allclose(NB.surrogate(x, "nb_test_cube", {}), 3 * x * x)
    g = np.ones_like(x)
    dt, _, _ = NB.quantize_backward(g, x, None, None, alpha=0.0, estimator="nb_test_cube")
    np.testing.assert_allclose(dt, 3 * x * x)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("layout,shape", [("weight", (6, 3, 3, 3)), ("weight", (5, 70)),
                                          ("activation", (2, 5, 3, 4)), ("activation", (4, 7))])
@pytest.mark.parametrize("eta", ["sin", "linear", "none"])
def test_noise_and_quantizer(dt, layout, shape, eta):
    rng = np.random.default_rng(3)
    t = rnd(rng, shape, dt)
    g = rnd(rng, shape, dt)
    d = int(np.prod(shape[1:])) if layout == "weight" else shape[1]
    m = max(1, d // 4)
    w1, w2 = rnd(rng, (d, m), dt, 0.5), rnd(rng, (m, d), dt, 0.5)
    kw = dict(layout=layout, eta_kind=eta, a=0.1)
    close(NB.noise_forward(t, w1, w2, **kw), REF.noise_forward(t, w1, w2, **kw), dt)
    for a, b in zip(NB.noise_backward(g, t, w1, w2, **kw), REF.noise_backward(g, t, w1, w2, **kw)):
        close(a, b, dt, 4.0)
    for alpha in (0.0, 0.3):
        for training in (True, False):
            close(NB.quantize_forward(t, w1, w2, alpha=alpha, zero=-1.0, training=training, **kw),
                  REF.quantize_forward(t, w1, w2, alpha=alpha, zero=-1.0, training=training, **kw), dt)
        for est, params in (("fda", {"n": 9}), ("tanh", {})):
            got = NB.quantize_backward(g, t, w1, w2, alpha=alpha, estimator=est, params=params, **kw)
            want = REF.quantize_backward(g, t, w1, w2, alpha=alpha, estimator=est, params=params, **kw)
            for a, b in zip(got, want):
                close(a, b, dt, 4.0)
    got = NB.quantize_backward(g, t, None, None, alpha=0.3, estimator="fda", params={"n": 5}, **kw)
    want = REF.quantize_backward(g, t, None, None, alpha=0.3, estimator="fda", params={"n": 5}, **kw)
    close(got[0], want[0], dt, 2.0)
    assert got[1] is None and got[2] is None


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("geom", [
    dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1), pad_value=0.0),
    dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2), pad_value=-1.0),
    dict(stride=(2, 2), padding=(1, 1), dilation=(1, 1), pad_value=1.0),
])
def test_conv2d(dt, geom):
    rng = np.random.default_rng(4)
    x = rnd(rng, (3, 4, 7, 6), dt)
    w = rnd(rng, (5, 4, 3, 3), dt)
    b = rnd(rng, 5, dt)
    y = NB.conv2d_forward(x, w, b, **geom)
    close(y, REF.conv2d_forward(x, w, b, **geom), dt, 10)
    g = rnd(rng, y.shape, dt)
    for a, c in zip(NB.conv2d_backward(g, x, w, has_bias=True, **geom),
                    REF.conv2d_backward(g, x, w, has_bias=True, **geom)):
        close(a, c, dt, 30)


@pytest.mark.parametrize("dt", DTYPES)
def test_linear(dt):
    rng = np.random.default_rng(5)
    x, w, b = rnd(rng, (4, 9), dt), rnd(rng, (3, 9), dt), rnd(rng, 3, dt)
    close(NB.linear_forward(x, w, b), REF.linear_forward(x, w, b), dt, 5)
    g = rnd(rng, (4, 3), dt)
    for a, c in zip(NB.linear_backward(g, x, w, has_bias=True), REF.linear_backward(g, x, w, has_bias=True)):
        close(a, c, dt, 5)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 7)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(dt, shape, training):
    rng = np.random.default_rng(6)
    x = rnd(rng, shape, dt, 3.0) + dt(1.5)
    c = shape[1]
    gamma, beta = rnd(rng, c, dt), rnd(rng, c, dt)
    rm, rv = rnd(rng, c, dt), (rng.uniform(0.5, 2, c)).astype(dt)
    kw = dict(training=training, momentum=0.1, eps=1e-5)
    got, want = NB.batch_norm_forward(x, gamma, beta, rm, rv, **kw), REF.batch_norm_forward(x, gamma, beta, rm, rv, **kw)
    for a, b in zip(got, want):
        close(a, b, dt, 10)
    g = rnd(rng, shape, dt)
    for a, b in zip(NB.batch_norm_backward(g, x, gamma, want[1], want[2], training=training),
                    REF.batch_norm_backward(g, x, gamma, want[1], want[2], training=training)):
        close(a, b, dt, 50)


@pytest.mark.parametrize("dt", DTYPES)
def test_activations_and_loss(dt):
    rng = np.random.default_rng(7)
    x, g = rnd(rng, (3, 4, 2, 2), dt), rnd(rng, (3, 4, 2, 2), dt)
    x[0, 0, 0, 0] = 0
    close(NB.relu_forward(x), REF.relu_forward(x), dt)
    close(NB.relu_backward(g, x), REF.relu_backward(g, x), dt)
    for slope in (np.array([0.25], dt), rnd(rng, 4, dt)):
        close(NB.prelu_forward(x, slope), REF.prelu_forward(x, slope), dt)
        for a, b in zip(NB.prelu_backward(g, x, slope), REF.prelu_backward(g, x, slope)):
            close(a, b, dt, 10)
    logits, labels = rnd(rng, (5, 4), dt, 3), np.array([0, 3, 1, 1, 2], np.int64)
    for s in (0.0, 0.1):
        close(NB.cross_entropy_forward(logits, labels, label_smoothing=s),
              REF.cross_entropy_forward(logits, labels, label_smoothing=s), dt)
        close(NB.cross_entropy_backward(np.array(1.5, dt), logits, labels, label_smoothing=s),
              REF.cross_entropy_backward(np.array(1.5, dt), logits, labels, label_smoothing=s), dt)
    for mode in ("channel", "layer", "none"):
        w = rnd(rng, (3, 2, 3, 3), dt)
        close(NB.weight_scale(w, mode), REF.weight_scale(w, mode), dt)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("geom", [dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0)),
                                  dict(kernel=(3, 3), stride=(2, 1), padding=(1, 1))])
def test_pools(dt, geom):
    rng = np.random.default_rng(8)
    x = rnd(rng, (2, 3, 6, 5), dt)
    x[0, 0, :2, :2] = 1.0  # ties: the first maximum takes the gradient
    for fwd, bwd in (("max_pool2d_forward", "max_pool2d_backward"), ("avg_pool2d_forward", "avg_pool2d_backward")):
        y = getattr(NB, fwd)(x, **geom)
        close(y, getattr(REF, fwd)(x, **geom), dt)
        g = rnd(rng, y.shape, dt)
        close(getattr(NB, bwd)(g, x, **geom), getattr(REF, bwd)(g, x, **geom), dt, 5)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="pad_value"):
        NB.conv2d_forward(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)), None, stride=(1, 1), padding=(1, 1),
                          dilation=(1, 1), pad_value=0.5)
    with pytest.raises(TypeError, match="float32 or float64"):
        NB.sign(np.zeros(3, np.int64))
    with pytest.raises(KeyError, match="unknown estimator"):
        NB.surrogate(np.zeros(3), "nope", {})
    with pytest.raises(ValueError, match="w1 \\(d, m\\)"):
        NB.noise_forward(np.zeros((2, 3)), np.zeros((4, 1)), np.zeros((1, 4)), layout="weight")


@pytest.mark.parametrize("dt", DTYPES)
def test_noise_eta_large_and_special_arguments(dt):
    """eta = a sin(t): the polynomial path (|t| < 1e5) and the libm fallback (huge t), inf / NaN."""
    rng = np.random.default_rng(11)
    t = rnd(rng, (3, 8), dt)
    t[0, :6] = [1e4, -3e4, 2e5, 1e7, 3e30 if dt == np.float32 else 1e300, np.inf]
    t[1, 0] = np.nan
    w1, w2 = rnd(rng, (8, 2), dt, 0.5), rnd(rng, (2, 8), dt, 0.5)
    g = rnd(rng, (3, 8), dt)
    kw = dict(layout="weight", eta_kind="sin", a=0.1)
    finite = np.isfinite(t)
    got, want = NB.noise_forward(t, w1, w2, **kw), REF.noise_forward(t, w1, w2, **kw)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    # rows with huge entries have huge fc; compare the sin part through the row of moderate values
    np.testing.assert_allclose(got[2], want[2], **TOL[dt])
    gd = NB.quantize_backward(g, t, w1, w2, alpha=0.2, estimator="fda", params={"n": 9}, **kw)[0]
    wd = REF.quantize_backward(g, t, w1, w2, alpha=0.2, estimator="fda", params={"n": 9}, **kw)[0]
    np.testing.assert_array_equal(np.isnan(gd), np.isnan(wd))
    assert finite.sum() > 0


@pytest.mark.parametrize("dt", DTYPES)
def test_noise_forward_at_zero_is_finite(dt):
    """Regression (conformance): the bare noise forward at t == 0 must not pick up the sign's NaN marker."""
    t = np.zeros((1, 3, 2, 2), dt)
    w1, w2 = np.full((3, 1), 0.5, dt), np.full((1, 3), 0.5, dt)
    for layout, tt, a1, a2 in (("activation", t, w1, w2), ("weight", t.reshape(1, 12), np.full((12, 1), 0.5, dt),
                                                          np.full((1, 12), 0.5, dt))):
        np.testing.assert_array_equal(NB.noise_forward(tt, a1, a2, layout=layout, eta_kind="sin", a=0.1),
                                      REF.noise_forward(tt, a1, a2, layout=layout, eta_kind="sin", a=0.1))


def test_conv_batch_chunks_cover_the_batch_evenly_per_thread(monkeypatch):
    from fdaref.backends.numba import ops
    monkeypatch.setattr(ops.numba, "get_num_threads", lambda: 2)
    for n_b, per_image in ((1, 10), (5, 10), (37, 1 << 20), (128, 3 << 20)):
        chunks = ops._conv_chunks(n_b, per_image)
        assert chunks[0][0] == 0 and chunks[-1][1] == n_b
        assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))      # contiguous, no gap or overlap
        sizes = [n1 - n0 for n0, n1 in chunks]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1            # even split
        assert len(chunks) == n_b or len(chunks) % 2 == 0                  # whole rounds of both threads
        assert max(sizes) * per_image <= max(ops.CONV_CHUNK_BYTES, per_image)


@pytest.mark.parametrize("threads", [1, 2])
def test_conv_on_threads_equals_reference(threads):
    import numba
    rng = np.random.default_rng(7)
    x, w = rng.normal(size=(9, 5, 11, 11)), rng.normal(size=(6, 5, 3, 3))
    kw = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1), pad_value=-1.0)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        y = NB.conv2d_forward(x, w, None, **kw)
        g = rng.normal(size=y.shape)
        dx, dw, _ = NB.conv2d_backward(g, x, w, has_bias=False, **kw)
    finally:
        numba.set_num_threads(before)
    rx, rw, _ = REF.conv2d_backward(g, x, w, has_bias=False, **kw)
    np.testing.assert_allclose(y, REF.conv2d_forward(x, w, None, **kw), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, rx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dw, rw, rtol=0, atol=1e-11)
