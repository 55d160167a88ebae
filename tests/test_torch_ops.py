"""The torch backend's op table against fdaref's reference, op by op, on the CPU in float32 and float64.

Each test feeds the same numpy inputs to the reference (in float64) and to the torch op (in the dtype under
test) and compares with a tolerance scaled by the op's magnitude. Where a reference kernel of
``fdaref.functional`` has not landed, a small independent numpy oracle written here stands in for it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fdaref import estimators, noise, quantizer, scale  # noqa: E402
from fdaref.binarize import sign as ref_sign  # noqa: E402
from fdaref.optable import OP_NAMES, PLUMBING, missing_ops  # noqa: E402

from fdaref.backends.torch import backend as TB  # noqa: E402
from fdaref.backends.torch import fda_grad, fda_series_naive  # noqa: E402

DTYPES = ("float32", "float64")
TOL = {"float32": 2e-5, "float64": 1e-11}


def _reference():
    try:
        from fdaref.reference import REFERENCE
        return REFERENCE
    except ImportError:
        return None


REF = _reference()


def ref_op(name: str, oracle):
    """The reference op when the reference imports, else the local oracle."""
    return getattr(REF, name) if REF is not None and callable(getattr(REF, name, None)) else oracle


def t(a: np.ndarray, dtype: str):
    return TB.from_numpy(np.asarray(a, dtype=dtype))


def close(got, want, dtype: str, scale_: float | None = None, name: str = "") -> None:
    got = TB.to_numpy(got) if isinstance(got, torch.Tensor) else np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    mag = scale_ if scale_ is not None else max(1.0, float(np.nanmax(np.abs(want))) if want.size else 1.0)
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        err = np.where(got.astype(np.float64) == want, 0.0, np.abs(got.astype(np.float64) - want))
    same_nan = np.isnan(got.astype(np.float64)) == np.isnan(want)
    assert same_nan.all(), f"{name}: NaN pattern differs"
    worst = float(np.nanmax(err)) if err.size else 0.0
    assert worst <= TOL[dtype] * mag, f"{name} [{dtype}]: max abs err {worst:.3g} > {TOL[dtype] * mag:.3g}"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def test_backend_identity():
    assert TB.name == "torch"
    assert TB.version == torch.__version__
    assert "cpu" in TB.devices and TB.dtypes == ("float32", "float64")
    assert missing_ops(TB) == []
    assert TB.refuses("conv2d_forward", "cpu", "float32") is None
    assert "float16" in TB.refuses("conv2d_forward", "cpu", "float16")
    assert TB.refuses("nope", "cpu", "float32")
    if not torch.cuda.is_available():
        assert "CUDA" in TB.refuses("sign", "cuda", "float32")
        assert TB.devices == ("cpu",)


def test_loaded_through_entry_point():
    from fdaref.backend_loader import load_backend
    assert load_backend("torch").name == "torch"


def test_plumbing(rng):
    a = rng.standard_normal((3, 4))
    x = TB.from_numpy(a)
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float64
    b = TB.to_numpy(x)
    assert b.dtype == a.dtype and np.array_equal(a, b)
    a[0, 0] = 99.0  # from_numpy copies
    assert TB.to_numpy(x)[0, 0] != 99.0
    z = TB.zeros((2, 5), like=TB.from_numpy(a.astype(np.float32)))
    assert z.dtype == torch.float32 and tuple(z.shape) == (2, 5) and not z.any()
    u = TB.from_numpy(np.array([1, 2**64 - 1], dtype=np.uint64))
    back = TB.to_numpy(u)
    assert back.dtype == np.uint64 and back[1] == 2**64 - 1
    big = rng.standard_normal((2, 3, 4, 5))
    for shape in [(3, 1, 5), (1, 5), (), (2, 3, 4, 5), (4, 1)]:
        want = big.sum(axis=tuple(range(4 - len(shape)))) if shape else big.sum()
        if shape:
            want = want.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)
        got = TB.sum_to_shape(TB.from_numpy(big), shape)
        assert tuple(got.shape) == shape
        np.testing.assert_allclose(TB.to_numpy(got), np.reshape(want, shape), rtol=1e-12)
    with pytest.raises(ValueError, match="larger rank"):
        TB.sum_to_shape(TB.from_numpy(np.ones(3)), (1, 3, 1))
    with pytest.raises(ValueError, match="no device"):
        TB.from_numpy(a, "tpu")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero", (-1.0, 0.0, 1.0))
def test_sign(dtype, zero):
    a = np.array([-2.0, -0.0, 0.0, 1e-30, -1e-30, 3.0, np.nan, np.inf, -np.inf], dtype=dtype)
    got = TB.to_numpy(TB.sign(t(a, dtype), zero))
    want = ref_sign(a, zero)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)


def _sur_input(rng, dtype):
    x = np.concatenate([rng.standard_normal(2000) * 5, np.linspace(-200, 200, 4001),
                        [k * math.pi / 0.1 + d for k in range(-7, 8) for d in (0.0, 1e-9, -1e-6, 1e-3)],
                        [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e6, -3e7]])
    return x.astype(dtype)


SURROGATES = [("ste", {}), ("clipped_ste", {}), ("approx_sign", {}), ("sign_swish", {"beta": 5.0}),
              ("tanh", {"beta": 2.0}), ("fda", {"n": 9, "omega": 0.1, "clip": None}),
              ("fda", {"n": 18, "omega": 0.1, "clip": 1.0}), ("fda", {"n": 0, "omega": 0.7, "clip": None}),
              ("fda", {"n": 40, "omega": 0.05, "clip": None}), ("fda_series", {"n": 9, "omega": 0.1, "clip": 1.0})]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("est,params", SURROGATES)
def test_surrogate(rng, dtype, est, params):
    x = _sur_input(rng, dtype)
    if est not in ("fda",):
        x = x[np.abs(x) < 1e5]  # the series / cosh overflow far out: compare where finite in float64
    want = estimators.estimator_grad(x.astype(np.float64), est, **params)
    got = TB.surrogate(t(x, dtype), est, params)
    assert got.dtype == getattr(torch, dtype)
    peak = estimators.fda_peak(params["n"], params["omega"]) if est.startswith("fda") else 5.0
    # float32: the exact reduction keeps ~1e-7 of the peak for |x omega / pi| < 2^12; up to |x| = 3e7 (the
    # largest input here) the rounding of the correction term costs up to ~1e-5 (SEMANTICS 9 allows 1e-4).
    tol = {"float32": 2e-5, "float64": 1e-12}[dtype] * peak
    if est == "fda_series":
        tol *= params["n"] + 1  # n+1 rounded terms
    g, w = TB.to_numpy(got).astype(np.float64), want
    assert np.array_equal(np.isnan(g), np.isnan(w))
    fin = ~np.isnan(w)
    worst = np.abs(g[fin] - w[fin]).max()
    assert worst <= tol, f"{est} {params} {dtype}: {worst} > {tol}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_fda_fused_matches_naive_and_reference_dtype(rng, dtype):
    x = torch.from_numpy(rng.standard_normal(10000).astype(dtype) * 20)
    g = torch.from_numpy(rng.standard_normal(10000).astype(dtype))
    fused = fda_grad(x, 18, 0.1, g=g)
    naive = fda_series_naive(x.double(), 18, 0.1, g.double())
    assert fused.dtype == x.dtype
    tol = {"float32": 1e-5, "float64": 1e-12}[dtype] * estimators.fda_peak(18, 0.1) * 4
    assert (fused.double() - naive).abs().max().item() <= tol
    x_before = x.clone()
    fda_grad(x, 9, 0.1, clip=1.0, g=g)
    assert torch.equal(x, x_before)  # inputs are never written


def test_surrogate_errors():
    x = TB.from_numpy(np.ones(3))
    with pytest.raises(KeyError, match="unknown estimator"):
        TB.surrogate(x, "nope", {})
    with pytest.raises(TypeError, match="unknown parameter"):
        TB.surrogate(x, "fda", {"m": 3})
    with pytest.raises(TypeError, match="float32 or float64"):
        TB.surrogate(TB.from_numpy(np.ones(3, np.int64)), "ste", {})


def test_register_surrogate_roundtrip():
    from fdaref.backends.torch import register_surrogate, surrogate_names
    name = "test_torch_square"
    if name not in estimators.estimator_names():
        estimators.register_estimator(name, lambda x, c=1.0: c * x * x, {"c": 1.0})
        register_surrogate(name, lambda x, c: c * x * x)
    assert name in surrogate_names()
    got = TB.surrogate(TB.from_numpy(np.array([1.0, 2.0])), name, {"c": 3.0})
    np.testing.assert_allclose(TB.to_numpy(got), [3.0, 12.0])


def _noise_case(rng, layout, shape, k=4):
    d = noise.row_length(shape, layout)
    w1, w2 = noise.init_noise_params(d, k, rng)
    return rng.standard_normal(shape), w1 * 3, w2 * 3


NOISE_CASES = [("weight", (6, 5, 3, 3)), ("weight", (7, 9)), ("activation", (3, 8, 5, 4)), ("activation", (5, 9))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout,shape", NOISE_CASES)
@pytest.mark.parametrize("eta", ("sin", "linear", "none"))
def test_noise_forward_backward(rng, dtype, layout, shape, eta):
    tt, w1, w2 = _noise_case(rng, layout, shape)
    g = rng.standard_normal(shape)
    want = noise.noise_forward(tt, w1, w2, layout=layout, eta_kind=eta, a=0.3)
    got = TB.noise_forward(t(tt, dtype), t(w1, dtype), t(w2, dtype), layout=layout, eta_kind=eta, a=0.3)
    close(got, want, dtype, name="noise_forward")
    wants = noise.noise_backward(g, tt, w1, w2, layout=layout, eta_kind=eta, a=0.3)
    gots = TB.noise_backward(t(g, dtype), t(tt, dtype), t(w1, dtype), t(w2, dtype), layout=layout,
                             eta_kind=eta, a=0.3)
    for name, a_, b_ in zip(("dt", "dw1", "dw2"), gots, wants):
        close(a_, b_, dtype, scale_=max(1.0, np.abs(b_).max()) * 10, name=f"noise_backward.{name}")


def test_noise_errors(rng):
    tt, w1, w2 = _noise_case(rng, "weight", (6, 5, 3, 3))
    with pytest.raises(ValueError, match="expects w1"):
        TB.noise_forward(TB.from_numpy(tt), TB.from_numpy(w2), TB.from_numpy(w1), layout="weight",
                         eta_kind="sin", a=0.1)
    with pytest.raises(ValueError, match="layout"):
        TB.noise_forward(TB.from_numpy(tt), TB.from_numpy(w1), TB.from_numpy(w2), layout="rows",
                         eta_kind="sin", a=0.1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout,shape", NOISE_CASES[:3])
@pytest.mark.parametrize("alpha", (0.0, 0.07))
@pytest.mark.parametrize("est,params", [("fda", {"n": 12, "omega": 0.1, "clip": None}),
                                        ("fda", {"n": 9, "omega": 0.1, "clip": 1.0}), ("tanh", {})])
def test_quantizer(rng, dtype, layout, shape, alpha, est, params):
    tt, w1, w2 = _noise_case(rng, layout, shape)
    g = rng.standard_normal(shape)
    for training in (True, False):
        want = quantizer.quantize_forward(tt, w1, w2, alpha=alpha, zero=0.0, layout=layout, eta_kind="sin",
                                          a=0.1, training=training)
        got = TB.quantize_forward(t(tt, dtype), t(w1, dtype), t(w2, dtype), alpha=alpha, zero=0.0, layout=layout,
                                  eta_kind="sin", a=0.1, training=training)
        close(got, want, dtype, name="quantize_forward")
    wants = quantizer.quantize_backward(g, tt, w1, w2, alpha=alpha, estimator=est, params=params, layout=layout,
                                        eta_kind="sin", a=0.1)
    gots = TB.quantize_backward(t(g, dtype), t(tt, dtype), t(w1, dtype), t(w2, dtype), alpha=alpha,
                                estimator=est, params=params, layout=layout, eta_kind="sin", a=0.1)
    for name, a_, b_ in zip(("dt", "dw1", "dw2"), gots, wants):
        close(a_, b_, dtype, scale_=max(1.0, np.abs(b_).max()) * 10, name=f"quantize_backward.{name}")
    # without a module: (dt, None, None)
    dt, d1, d2 = TB.quantize_backward(t(g, dtype), t(tt, dtype), None, None, alpha=alpha, estimator=est,
                                      params=params, layout=layout)
    assert d1 is None and d2 is None
    close(dt, quantizer.quantize_backward(g, tt, None, None, alpha=alpha, estimator=est, params=params,
                                          layout=layout)[0], dtype, scale_=5.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ("channel", "layer", "none"))
@pytest.mark.parametrize("shape", ((5, 3, 3, 3), (4, 7)))
def test_weight_scale(rng, dtype, mode, shape):
    w = rng.standard_normal(shape)
    got = TB.weight_scale(t(w, dtype), mode)
    want = scale.weight_scale(w, mode)
    assert tuple(got.shape) == want.shape
    close(got, want, dtype)


# -- conv / linear ---------------------------------------------------------------------------------

def _conv_oracle(x, w, b, stride, padding, dilation, pad_value):
    """Direct loop-free reference: pad with the constant, then sum over taps of strided window views."""
    ph, pw = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    n, c, h, wd = xp.shape
    co, _, kh, kw = w.shape
    ho = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, co, ho, wo))
    for i in range(kh):
        for j in range(kw):
            win = xp[:, :, i * dilation[0]: i * dilation[0] + stride[0] * (ho - 1) + 1: stride[0],
                     j * dilation[1]: j * dilation[1] + stride[1] * (wo - 1) + 1: stride[1]]
            out += np.einsum("nchw,oc->nohw", win, w[:, :, i, j])
    return out + (0 if b is None else b[None, :, None, None])


def _conv_ref_forward(x, w, b, **kw):
    try:
        from fdaref.functional import conv
        return conv.conv2d_forward(x, w, b, **kw)
    except ImportError:
        return _conv_oracle(x, w, b, kw["stride"], kw["padding"], kw["dilation"], kw["pad_value"])


CONV_CASES = [((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1)),
              ((2, 2, 9, 8), (3, 2, 3, 2), (2, 1), (2, 1), (1, 2)),
              ((1, 4, 6, 6), (2, 4, 1, 1), (1, 1), (0, 0), (1, 1)),
              ((3, 2, 8, 8), (5, 2, 3, 3), (2, 2), (3, 3), (2, 2))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("pad_value", (0.0, -1.0, 1.0))
@pytest.mark.parametrize("has_bias", (True, False))
def test_conv2d(rng, dtype, case, pad_value, has_bias):
    xs, ws, stride, padding, dilation = case
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if has_bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, pad_value=pad_value)
    want = _conv_ref_forward(x, w, b, **kw)
    got = TB.conv2d_forward(t(x, dtype), t(w, dtype), None if b is None else t(b, dtype), **kw)
    red = ws[1] * ws[2] * ws[3]
    close(got, want, dtype, scale_=red * 4, name="conv2d_forward")
    # backward against autograd-free finite structure: <g, conv(x + dx)> linearity, i.e. VJP identities
    g = rng.standard_normal(want.shape)
    dx, dw, db = TB.conv2d_backward(t(g, dtype), t(x, dtype), t(w, dtype), has_bias=has_bias, **kw)
    u, v = rng.standard_normal(xs), rng.standard_normal(ws)
    lin_x = _conv_ref_forward(u, w, None, **{**kw, "pad_value": 0.0})  # d conv / dx along u (pad is constant)
    lin_w = _conv_ref_forward(x, v, None, **kw)
    scale_ = red * 4 * g.size ** 0.5 * 10
    close(np.array((TB.to_numpy(dx).astype(np.float64) * u).sum()), np.array((g * lin_x).sum()), dtype,
          scale_=scale_, name="conv2d_backward.dx")
    close(np.array((TB.to_numpy(dw).astype(np.float64) * v).sum()), np.array((g * lin_w).sum()), dtype,
          scale_=scale_, name="conv2d_backward.dw")
    if has_bias:
        close(db, g.sum(axis=(0, 2, 3)), dtype, scale_=g.size ** 0.5 * 4, name="conv2d_backward.db")
    else:
        assert db is None
    if REF is not None:
        wants = REF.conv2d_backward(g, x, w, has_bias=has_bias, **kw)
        for a_, b_ in zip((dx, dw), wants[:2]):
            close(a_, b_, dtype, scale_=red * 4 * 10, name="conv2d_backward vs reference")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("has_bias", (True, False))
def test_linear(rng, dtype, has_bias):
    x, w = rng.standard_normal((5, 7)), rng.standard_normal((3, 7))
    b = rng.standard_normal(3) if has_bias else None
    g = rng.standard_normal((5, 3))
    oracle_f = lambda x, w, b: x @ w.T + (0 if b is None else b)  # noqa: E731
    want = ref_op("linear_forward", oracle_f)(x, w, b)
    close(TB.linear_forward(t(x, dtype), t(w, dtype), None if b is None else t(b, dtype)), want, dtype,
          scale_=30, name="linear_forward")
    oracle_b = lambda g, x, w, has_bias: (g @ w, g.T @ x, g.sum(0) if has_bias else None)  # noqa: E731
    wants = ref_op("linear_backward", oracle_b)(g, x, w, has_bias=has_bias)
    gots = TB.linear_backward(t(g, dtype), t(x, dtype), t(w, dtype), has_bias=has_bias)
    for a_, b_ in zip(gots, wants):
        if b_ is None:
            assert a_ is None
        else:
            close(a_, b_, dtype, scale_=30, name="linear_backward")


# -- float layers ----------------------------------------------------------------------------------

def _bn_oracle_forward(x, gamma, beta, rm, rv, *, training, momentum, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    view = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        cnt = x.size // x.shape[1]
        rm2 = (1 - momentum) * rm + momentum * mean
        rv2 = (1 - momentum) * rv + momentum * var * cnt / (cnt - 1)
    else:
        mean, var, rm2, rv2 = rm, rv, rm, rv
    invstd = 1 / np.sqrt(var + eps)
    y = (x - mean.reshape(view)) * (invstd * gamma).reshape(view) + beta.reshape(view)
    return y, mean, invstd, rm2, rv2


def _bn_oracle_backward(g, x, gamma, mean, invstd, *, training):
    axes = (0,) + tuple(range(2, x.ndim))
    view = (1, -1) + (1,) * (x.ndim - 2)
    xhat = (x - mean.reshape(view)) * invstd.reshape(view)
    dgamma, dbeta = (g * xhat).sum(axes), g.sum(axes)
    if not training:
        return g * (gamma * invstd).reshape(view), dgamma, dbeta
    cnt = x.size // x.shape[1]
    dx = (gamma * invstd).reshape(view) * (g - (dbeta / cnt).reshape(view) - xhat * (dgamma / cnt).reshape(view))
    return dx, dgamma, dbeta


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ((4, 3, 5, 6), (8, 5)))
@pytest.mark.parametrize("training", (True, False))
def test_batch_norm(rng, dtype, shape, training):
    x = rng.standard_normal(shape) * 2 + 1
    c = shape[1]
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    kw = dict(training=training, momentum=0.1, eps=1e-5)
    wants = ref_op("batch_norm_forward", _bn_oracle_forward)(x, gamma, beta, rm, rv, **kw)
    gots = TB.batch_norm_forward(*(t(a, dtype) for a in (x, gamma, beta, rm, rv)), **kw)
    for name, a_, b_ in zip(("y", "mean", "invstd", "running_mean", "running_var"), gots, wants):
        close(a_, b_, dtype, scale_=20, name=f"batch_norm_forward.{name}")
    g = rng.standard_normal(shape)
    wants_b = ref_op("batch_norm_backward", _bn_oracle_backward)(g, x, gamma, np.asarray(wants[1]),
                                                                 np.asarray(wants[2]), training=training)
    gots_b = TB.batch_norm_backward(t(g, dtype), t(x, dtype), t(gamma, dtype), gots[1], gots[2], training=training)
    for name, a_, b_ in zip(("dx", "dgamma", "dbeta"), gots_b, wants_b):
        close(a_, b_, dtype, scale_=50, name=f"batch_norm_backward.{name}")


def test_batch_norm_does_not_mutate(rng):
    x, rm, rv = rng.standard_normal((4, 3)), np.zeros(3), np.ones(3)
    trm, trv = TB.from_numpy(rm), TB.from_numpy(rv)
    TB.batch_norm_forward(TB.from_numpy(x), TB.from_numpy(np.ones(3)), TB.from_numpy(np.zeros(3)), trm, trv,
                          training=True, momentum=0.1, eps=1e-5)
    assert np.array_equal(TB.to_numpy(trm), rm) and np.array_equal(TB.to_numpy(trv), rv)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_prelu(rng, dtype):
    x = rng.standard_normal((3, 4, 5, 2))
    x[0, 0, 0, 0] = 0.0
    g = rng.standard_normal(x.shape)
    close(TB.relu_forward(t(x, dtype)), ref_op("relu_forward", lambda x: np.maximum(x, 0))(x), dtype)
    close(TB.relu_backward(t(g, dtype), t(x, dtype)), ref_op("relu_backward", lambda g, x: g * (x > 0))(g, x), dtype)
    for slope in (np.array([0.25]), rng.standard_normal(4)):
        sv = slope.reshape(1, -1, 1, 1) if slope.size > 1 else slope

        def pf(x, s, sv=sv):
            return np.where(x > 0, x, sv * x)

        def pb(g, x, s, sv=sv):
            contrib = np.where(x > 0, 0.0, g * x)
            ds = contrib.sum() if s.size == 1 else contrib.sum(axis=(0, 2, 3))
            return np.where(x > 0, g, sv * g), np.reshape(ds, s.shape)

        close(TB.prelu_forward(t(x, dtype), t(slope, dtype)), ref_op("prelu_forward", pf)(x, slope), dtype)
        gots = TB.prelu_backward(t(g, dtype), t(x, dtype), t(slope, dtype))
        wants = ref_op("prelu_backward", pb)(g, x, slope)
        close(gots[0], wants[0], dtype)
        assert tuple(gots[1].shape) == slope.shape
        close(gots[1], wants[1], dtype, scale_=100)


def _pool_oracle(x, kernel, stride, padding, kind):
    """Loops over windows; returns (out, dx for an upstream gradient of ones-weighted g via closure)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    ho = (xp.shape[2] - kh) // sh + 1
    wo = (xp.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (ho, wo))
    arg = np.zeros(x.shape[:2] + (ho, wo), dtype=np.int64)
    for i in range(ho):
        for j in range(wo):
            win = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(x.shape[0], x.shape[1], -1)
            if kind == "max":
                arg[:, :, i, j] = win.argmax(-1)  # first maximum
                out[:, :, i, j] = win.max(-1)
            else:
                out[:, :, i, j] = win.sum(-1) / (kh * kw)
    return out, arg, xp.shape


def _pool_backward_oracle(g, x, kernel, stride, padding, kind):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    _, arg, pshape = _pool_oracle(x, kernel, stride, padding, kind)
    dxp = np.zeros(pshape)
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            if kind == "max":
                a, b = np.divmod(arg[:, :, i, j], kw)
                for n in range(g.shape[0]):
                    for c in range(g.shape[1]):
                        dxp[n, c, i * sh + a[n, c], j * sw + b[n, c]] += g[n, c, i, j]
            else:
                dxp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += g[:, :, i:i + 1, j:j + 1] / (kh * kw)
    return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]


POOL_OPS = ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward")
POOLS = [((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1)), ((3, 2), (2, 1), (1, 0)), ((2, 2), (1, 1), (1, 1))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ("max", "avg"))
@pytest.mark.parametrize("geom", POOLS)
def test_pools(rng, dtype, kind, geom):
    kernel, stride, padding = geom
    x = rng.standard_normal((2, 3, 7, 6))
    x[0, 0, :3, :3] = 1.5  # ties: the first maximum gets the gradient
    kw = dict(kernel=kernel, stride=stride, padding=padding)
    want = ref_op(f"{kind}_pool2d_forward", lambda x, **k: _pool_oracle(x, k["kernel"], k["stride"],
                                                                        k["padding"], kind)[0])(x, **kw)
    got = getattr(TB, f"{kind}_pool2d_forward")(t(x, dtype), **kw)
    close(got, want, dtype, name=f"{kind}_pool2d_forward")
    g = rng.standard_normal(want.shape)
    want_b = ref_op(f"{kind}_pool2d_backward", lambda g, x, **k: _pool_backward_oracle(
        g, x, k["kernel"], k["stride"], k["padding"], kind))(g, x, **kw)
    got_b = getattr(TB, f"{kind}_pool2d_backward")(t(g, dtype), t(x, dtype), **kw)
    close(got_b, want_b, dtype, scale_=10, name=f"{kind}_pool2d_backward")


@pytest.mark.parametrize("kind", ("max", "avg"))
def test_pool_padding_wider_than_half_kernel_raises(kind):
    x = TB.from_numpy(np.ones((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="half the kernel"):
        getattr(TB, f"{kind}_pool2d_forward")(x, kernel=(2, 2), stride=(1, 1), padding=(2, 2))


def _ce_oracle(logits, labels, label_smoothing):
    b, c = logits.shape
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    q = np.full_like(logits, label_smoothing / c)
    q[np.arange(b), labels] += 1 - label_smoothing
    return np.array(-(q * logp).sum() / b), np.exp(logp) - q


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", (0.0, 0.1))
def test_cross_entropy(rng, dtype, smoothing):
    logits = rng.standard_normal((6, 5)) * 3
    labels = rng.integers(0, 5, 6).astype(np.int64)
    want = ref_op("cross_entropy_forward", lambda lg, lb, label_smoothing: _ce_oracle(lg, lb, label_smoothing)[0])(
        logits, labels, label_smoothing=smoothing)
    got = TB.cross_entropy_forward(t(logits, dtype), TB.from_numpy(labels), label_smoothing=smoothing)
    assert got.dim() == 0
    close(got, want, dtype)
    gval = np.array(0.7)
    want_b = ref_op("cross_entropy_backward",
                    lambda g, lg, lb, label_smoothing: g * _ce_oracle(lg, lb, label_smoothing)[1] / lg.shape[0])(
        gval, logits, labels, label_smoothing=smoothing)
    got_b = TB.cross_entropy_backward(t(gval, dtype), t(logits, dtype), TB.from_numpy(labels),
                                      label_smoothing=smoothing)
    close(got_b, want_b, dtype)


# -- bit packing -----------------------------------------------------------------------------------

def _pack_oracle(x, axis, zero):
    bits = (x < 0) | ((x == 0) & (zero == -1))
    bits = np.moveaxis(bits, axis, -1)
    c = bits.shape[-1]
    words = -(-c // 64)
    out = np.zeros(bits.shape[:-1] + (words,), dtype=np.uint64)
    for j in range(c):
        out[..., j // 64] |= bits[..., j].astype(np.uint64) << np.uint64(j % 64)
    return out


@pytest.mark.parametrize("shape,axis", [((3, 130), 1), ((2, 70, 3, 3), 1), ((2, 5, 4, 64), -1), ((65,), 0)])
@pytest.mark.parametrize("zero", (-1.0, 1.0))
def test_pack_signs(rng, shape, axis, zero):
    x = rng.standard_normal(shape)
    x.reshape(-1)[::7] = 0.0
    want = ref_op("pack_signs", _pack_oracle)(x, axis=axis, zero=zero)
    got = TB.to_numpy(TB.pack_signs(TB.from_numpy(x.astype(np.float32)), axis=axis, zero=zero))
    assert got.dtype == np.uint64
    np.testing.assert_array_equal(got, want)


def test_popcount():
    from fdaref.backends.torch.ops import popcount64
    vals = np.array([0, 1, 2**63, 2**64 - 1, 0x5555555555555555, 12345678901234567], dtype=np.uint64)
    got = popcount64(torch.from_numpy(vals.view(np.int64)))
    assert got.tolist() == [bin(int(v)).count("1") for v in vals]


@pytest.mark.parametrize("channels", (5, 64, 100))
@pytest.mark.parametrize("pad_value", (0.0, -1.0, 1.0))
@pytest.mark.parametrize("geom", [((1, 1), (1, 1), (1, 1)), ((2, 1), (2, 1), (1, 2)), ((1, 1), (0, 0), (1, 1))])
def test_xnor_conv2d_exact(rng, channels, pad_value, geom):
    stride, padding, dilation = geom
    x = np.sign(rng.standard_normal((2, channels, 6, 5)))
    w = np.sign(rng.standard_normal((3, channels, 3, 2)))
    want = _conv_oracle(x, w, None, stride, padding, dilation, pad_value)
    xp = TB.pack_signs(TB.from_numpy(x), axis=1, zero=-1.0)   # (N, H, W, words)
    wp = TB.pack_signs(TB.from_numpy(w), axis=1, zero=-1.0)   # (C_out, kh, kw, words)
    got = TB.xnor_conv2d(xp, wp, channels=channels, stride=stride, padding=padding, dilation=dilation,
                         pad_value=pad_value)
    assert got.dtype == torch.int32
    np.testing.assert_array_equal(TB.to_numpy(got), want.astype(np.int32))
    if REF is not None:
        np.testing.assert_array_equal(TB.to_numpy(got), REF.xnor_conv2d(
            TB.to_numpy(xp), TB.to_numpy(wp), channels=channels, stride=stride, padding=padding,
            dilation=dilation, pad_value=pad_value))


@pytest.mark.parametrize("features", (1, 64, 150))
def test_xnor_linear_exact(rng, features):
    x = np.sign(rng.standard_normal((7, features)))
    w = np.sign(rng.standard_normal((4, features)))
    xp = TB.pack_signs(TB.from_numpy(x), axis=1, zero=-1.0)
    wp = TB.pack_signs(TB.from_numpy(w), axis=1, zero=-1.0)
    got = TB.xnor_linear(xp, wp, features=features)
    assert got.dtype == torch.int32
    np.testing.assert_array_equal(TB.to_numpy(got), (x @ w.T).astype(np.int32))


def _set_stray_bits(words: torch.Tensor, count: int) -> torch.Tensor:
    """Every bit beyond ``count`` in the last word set (SEMANTICS 11: such bits never change a result)."""
    out = words.view(torch.int64).clone()
    out[..., -1] |= ~((1 << (count % 64)) - 1)
    return out.view(torch.uint64)


@pytest.mark.parametrize("count", (5, 100))
def test_xnor_ops_ignore_stray_bits(rng, count):
    x, w = np.sign(rng.standard_normal((3, count, 4, 4))), np.sign(rng.standard_normal((2, count, 3, 3)))
    xp = _set_stray_bits(TB.pack_signs(TB.from_numpy(x), axis=1, zero=-1.0), count)
    wp = _set_stray_bits(TB.pack_signs(TB.from_numpy(w), axis=1, zero=-1.0), count)
    for pad_value in (0.0, -1.0):
        got = TB.xnor_conv2d(xp, wp, channels=count, stride=(1, 1), padding=(1, 1), dilation=(1, 1), pad_value=pad_value)
        want = _conv_oracle(x, w, None, (1, 1), (1, 1), (1, 1), pad_value)
        np.testing.assert_array_equal(TB.to_numpy(got), want.astype(np.int32))
    xl = _set_stray_bits(TB.pack_signs(TB.from_numpy(x[:, :, 0, 0]), axis=1, zero=-1.0), count)
    wl = _set_stray_bits(TB.pack_signs(TB.from_numpy(w[:, :, 0, 0]), axis=1, zero=-1.0), count)
    got = TB.xnor_linear(xl, wl, features=count)
    np.testing.assert_array_equal(TB.to_numpy(got), (x[:, :, 0, 0] @ w[:, :, 0, 0].T).astype(np.int32))


def test_conv_and_linear_refuse_what_semantics_calls_errors(rng):
    """SEMANTICS 11: a kernel larger than the padded input is a ValueError (not torch's RuntimeError); a bias
    has one value per output (torch would broadcast a (1,) bias)."""
    x, w = TB.from_numpy(rng.standard_normal((1, 3, 2, 2))), TB.from_numpy(rng.standard_normal((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        TB.conv2d_forward(x, w, None, stride=(1, 1), padding=(1, 1), dilation=(2, 2))
    with pytest.raises(ValueError, match=r"b: expected shape \(2,\)"):
        TB.conv2d_forward(x, w, TB.from_numpy(np.ones(1)), stride=(1, 1), padding=(1, 1), dilation=(1, 1))
    xl, wl = TB.from_numpy(rng.standard_normal((2, 5))), TB.from_numpy(rng.standard_normal((3, 5)))
    with pytest.raises(ValueError, match=r"b: expected shape \(3,\)"):
        TB.linear_forward(xl, wl, TB.from_numpy(np.ones(1)))


def test_every_op_is_covered():
    """Each op of the table appears in a test of this file (a new op must get one)."""
    import pathlib
    src = pathlib.Path(__file__).read_text()
    for op in OP_NAMES + PLUMBING:
        assert f"TB.{op}(" in src or f'"{op}"' in src or f"{op}" in src, op


def test_ops_do_not_mutate_inputs(rng):
    tt, w1, w2 = _noise_case(rng, "activation", (2, 4, 3, 3))
    g = rng.standard_normal(tt.shape)
    args = [TB.from_numpy(a) for a in (g, tt, w1, w2)]
    before = [a.clone() for a in args]
    TB.quantize_backward(*args, alpha=0.1, estimator="fda", params={"n": 9}, layout="activation")
    TB.quantize_forward(*args[1:], alpha=0.1, layout="activation")
    for a, b in zip(args, before):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_fda_compiled_matches_eager(rng):
    """The torch.compile kernel (one generated loop) agrees with the eager closed form (CPU: C++ codegen)."""
    from fdaref.backends.torch import fda_grad_compiled
    x = torch.from_numpy(rng.standard_normal(5000).astype(np.float32) * 40)
    g = torch.from_numpy(rng.standard_normal(5000).astype(np.float32))
    try:
        got = fda_grad_compiled(x, 18, 0.1, clip=2.0, g=g)
    except Exception as exc:  # no C++ compiler: the eager kernel is the backend's default anyway
        pytest.skip(f"torch.compile unavailable here: {type(exc).__name__}: {exc}")
    want = fda_grad(x, 18, 0.1, clip=2.0, g=g)
    assert (got - want).abs().max().item() <= 2e-5 * estimators.fda_peak(18, 0.1) * g.abs().max().item()


@pytest.mark.parametrize("scale", (1e3, 1e5, 1e7, 1e9))
def test_fda_float32_at_large_arguments(rng, scale):
    """Beyond the lean kernel's range (and the numba loops' cover) float32 fda stays as accurate as the
    reference's own float64 reduction: a few float32 ulps of the peak at any |x|, with and without g."""
    x = (rng.standard_normal(20000) * scale).astype(np.float32)
    g = rng.standard_normal(x.size).astype(np.float32)
    peak = estimators.fda_peak(18, 0.1)
    want = estimators.fda(x.astype(np.float64), n=18, omega=0.1)
    for gg, w in ((None, want), (g, want * g)):
        got = fda_grad(torch.from_numpy(x), 18, 0.1, g=None if gg is None else torch.from_numpy(gg))
        assert got.dtype == torch.float32
        bound = 4 * 2.0 ** -24 * peak * (1.0 if gg is None else np.abs(g).max())
        assert np.abs(got.numpy().astype(np.float64) - w).max() <= bound
