"""CuPy backend, the parts that run without a GPU.

- import / BackendUnavailable behaviour (here, where CuPy has no device);
- the host-side geometry (windows, im2col / col2im, launch parameters);
- every op of the array-module-generic code path with NumPy standing in for CuPy (``ArrayBackend(numpy,
  PortableKernels(numpy))``), checked against fdaref's semantic modules and independent loop / finite-
  difference computations. This exercises the shape logic and the arithmetic the GPU path shares; it does
  not test a GPU (see tests/test_cupy_gpu.py, marked ``gpu``).
"""
from __future__ import annotations

import importlib
import math
import sys

import numpy as np
import pytest

import fdaref.backends.cupy as cupy_pkg
from fdaref import estimators, noise, quantizer, scale
from fdaref.binarize import sign as ref_sign
from fdaref.backend_loader import BackendUnavailable, load_backend
from fdaref.backends.cupy import geometry as geo
from fdaref.backends.cupy.ops import ArrayBackend, PortableKernels, estimator_args, parse_device


def _cupy_has_gpu() -> bool:
    try:
        import cupy
        return bool(cupy.is_available())
    except Exception:
        return False


HAS_GPU = _cupy_has_gpu()
BE = ArrayBackend(np, PortableKernels(np))
RNG = np.random.default_rng(1234)


# ------------------------------------------------------------------------------------------------------
# import and availability

def test_import_never_needs_a_gpu():
    mod = importlib.reload(importlib.import_module("fdaref.backends.cupy"))
    assert callable(mod.backend)
    assert not hasattr(mod.backend, "name")  # load_backend calls it as a factory


@pytest.mark.skipif(HAS_GPU, reason="this machine has a CUDA device")
def test_load_backend_raises_backend_unavailable_with_one_line_reason():
    with pytest.raises(BackendUnavailable) as info:
        load_backend("cupy")
    msg = str(info.value)
    assert "\n" not in msg
    assert "no CUDA device is available" in msg and "cupy.is_available() is False" in msg


@pytest.mark.skipif(HAS_GPU, reason="this machine has a CUDA device")
def test_fdaref_info_reports_cupy_unavailable_without_traceback(monkeypatch, capsys):
    info = pytest.importorskip("fdaref.cli.info")
    monkeypatch.setattr(info, "backend_names", lambda: ["cupy"])
    rows = info.backend_status()
    assert rows[0][:2] == ("cupy", "unavailable")
    assert "no CUDA device" in rows[0][2]


def test_reason_when_cupy_is_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    reason = cupy_pkg.unavailable_reason()
    assert reason is not None and "\n" not in reason
    assert "CuPy is not importable" in reason
    monkeypatch.setattr(cupy_pkg, "_INSTANCE", None)
    with pytest.raises(BackendUnavailable, match="CuPy is not importable"):
        cupy_pkg.backend()


@pytest.mark.skipif(HAS_GPU, reason="this machine has a CUDA device")
def test_kernel_failure_becomes_backend_unavailable(monkeypatch):
    """If CuPy claimed a device but the kernels could not run, the factory still raises the loader's error."""
    pytest.importorskip("cupy")
    monkeypatch.setattr(cupy_pkg, "unavailable_reason", lambda: None)
    monkeypatch.setattr(cupy_pkg, "_INSTANCE", None)
    with pytest.raises(BackendUnavailable) as info:
        cupy_pkg.backend()
    assert "cannot run fdaref's kernels" in str(info.value) and "\n" not in str(info.value)


def test_refuses():
    assert BE.refuses("sign", "cpu", "float32") is not None
    assert BE.refuses("sign", "cuda", "float16") is not None
    assert BE.refuses("conv2d_forward", "cuda:1", "float32") is None
    tf32 = ArrayBackend(np, PortableKernels(np))
    tf32.allow_tf32 = True
    assert "TF32" in tf32.refuses("conv2d_forward", "cuda", "float32")
    assert tf32.refuses("conv2d_forward", "cuda", "float64") is None
    assert tf32.refuses("sign", "cuda", "float32") is None


def test_parse_device():
    assert parse_device("cuda") == 0 and parse_device("cuda:3") == 3
    for bad in ("cpu", "cuda:", "cuda:x", "gpu:0"):
        with pytest.raises(ValueError, match="CUDA devices"):
            parse_device(bad)


def test_op_table_complete():
    from fdaref.optable import missing_ops
    assert missing_ops(BE) == []


# ------------------------------------------------------------------------------------------------------
# geometry

@pytest.mark.parametrize("size,k,s,p,d", [(7, 3, 1, 1, 1), (8, 3, 2, 1, 1), (9, 2, 2, 0, 1), (10, 3, 2, 2, 2),
                                          (5, 5, 1, 0, 1), (6, 1, 3, 0, 1)])
def test_conv_output_size_matches_enumeration(size, k, s, p, d):
    starts = [o for o in range(-p, size + p) if o + d * (k - 1) < size + p and (o + p) % s == 0]
    assert geo.conv_output_size(size, k, s, p, d) == len(starts)


def test_window_rejects_too_small_input():
    with pytest.raises(ValueError, match="does not fit"):
        geo.Window(2, 2, (3, 3), (1, 1), (0, 0)).out_shape


@pytest.mark.parametrize("stride,padding,dilation", [((1, 1), (1, 1), (1, 1)), ((2, 1), (0, 2), (1, 2)),
                                                     ((2, 2), (1, 0), (2, 1))])
def test_im2col_matches_scalar_index_formula(stride, padding, dilation):
    x = RNG.normal(size=(2, 3, 7, 6))
    win = geo.Window(7, 6, (3, 2), stride, padding, dilation)
    ph, pw = padding
    xp_ = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = geo.im2col(np, xp_, win).reshape(2, 3, 3, 2, *win.out_shape)
    ho, wo = win.out_shape
    for oy in range(ho):
        for ox in range(wo):
            for i in range(3):
                for j in range(2):
                    iy, ix = win.source_index(oy, ox, i, j)
                    inside = 0 <= iy < 7 and 0 <= ix < 6
                    want = x[:, :, iy, ix] if inside else 0.0
                    np.testing.assert_array_equal(cols[:, :, i, j, oy, ox], want)


def test_col2im_is_the_adjoint_of_im2col():
    win = geo.Window(9, 8, (3, 3), (2, 1), (1, 2), (1, 2))
    hp, wp = win.padded_shape
    x = RNG.normal(size=(2, 4, hp, wp))
    y = RNG.normal(size=(2, 4 * 9, win.out_shape[0] * win.out_shape[1]))
    lhs = np.sum(geo.im2col(np, x, win) * y)
    rhs = np.sum(x * geo.col2im(np, y, 4, win))
    assert math.isclose(lhs, rhs, rel_tol=1e-12)


@pytest.mark.parametrize("total,block", [(0, 256), (1, 256), (255, 256), (256, 256), (257, 128), (10**9, 256)])
def test_launch_config_covers_every_item(total, block):
    (grid,), (blk,) = geo.launch_config(total, block)
    assert blk == block and grid >= 1
    assert grid <= 65535 * 4
    # a grid-stride loop over `total` items visits each once whatever the grid
    assert grid * blk >= min(total, 65535 * 4 * blk)


def test_launch_config_rejects_bad_input():
    with pytest.raises(ValueError):
        geo.launch_config(-1)
    with pytest.raises(ValueError):
        geo.launch_config(10, block=2048)


def test_words_and_pairs():
    assert [geo.words_for(c) for c in (1, 63, 64, 65, 128, 129)] == [1, 1, 1, 2, 2, 3]
    assert geo.as_pair(3, "k") == (3, 3) and geo.as_pair((1, 2), "k") == (1, 2)
    with pytest.raises(ValueError):
        geo.as_pair((1, 2, 3), "k")
    with pytest.raises(ValueError):
        geo.as_pair(0, "stride", minimum=1)
    with pytest.raises(TypeError):
        geo.as_pair(1.5, "k")


def test_sum_to_shape():
    x = RNG.normal(size=(4, 3, 5))
    np.testing.assert_allclose(BE.sum_to_shape(x, (3, 1)), x.sum(axis=(0, 2)).reshape(3, 1))
    np.testing.assert_allclose(BE.sum_to_shape(x, (5,)), x.sum(axis=(0, 1)))
    assert BE.sum_to_shape(x, x.shape) is x
    with pytest.raises(ValueError):
        BE.sum_to_shape(x, (2, 5))


# ------------------------------------------------------------------------------------------------------
# SEMANTICS 1-4 on the portable path vs fdaref's semantic modules

DTYPES = [np.float32, np.float64]


def _fda_probe(dtype, omega=0.1):
    """Random values plus the delicate points: omega x = k pi (and neighbours), 0, +-clip, NaN, inf."""
    k = np.arange(-6, 7)
    special = np.concatenate([k * np.pi / omega, k * np.pi / omega + 1e-4, k * np.pi / omega - 3e-6,
                              [0.0, 1.0, -1.0, 1e-30, -1e-7, 1e4, -3.3e5]])
    x = np.concatenate([RNG.normal(0, 20, 4000), special]).astype(dtype)
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,omega,clip", [(0, 0.1, None), (9, 0.1, None), (18, 0.1, 1.0), (18, 0.37, None),
                                          (50, 0.05, 2.5)])
def test_fda_portable_matches_reference(dtype, n, omega, clip):
    x = _fda_probe(dtype, omega)
    got = BE.surrogate(x, "fda", {"n": n, "omega": omega, "clip": clip})
    want = estimators.fda(x, n, omega, clip)
    assert got.dtype == dtype and got.shape == x.shape
    peak = estimators.fda_peak(n, omega)
    tol = (4e-6 if dtype == np.float32 else 1e-12) * peak
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)


def test_fda_nan_and_inf():
    x = np.array([np.nan, np.inf, -np.inf, 0.0])
    got = BE.surrogate(x, "fda", {"n": 9})
    assert np.isnan(got[:3]).all() and got[3] == pytest.approx(4 * 0.1 / np.pi * 10)
    clipped = BE.surrogate(x, "fda", {"n": 9, "clip": 1.0})
    assert np.isnan(clipped[0]) and (clipped[1:3] == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", [("ste", {}), ("clipped_ste", {}), ("approx_sign", {}),
                                         ("sign_swish", {}), ("sign_swish", {"beta": 2.5}), ("tanh", {}),
                                         ("fda_series", {"n": 5, "clip": 1.0})])
def test_other_surrogates_match_reference(dtype, name, params):
    x = np.concatenate([RNG.normal(0, 2, 500), [0.0, 1.0, -1.0, 50.0, -300.0]]).astype(dtype)
    got = BE.surrogate(x, name, params)
    want = estimators.estimator_grad(x, name, **params)
    assert got.dtype == dtype
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_surrogate_param_validation_and_host_fallback():
    with pytest.raises(TypeError, match="unknown parameter"):
        BE.surrogate(np.zeros(3), "fda", {"beta": 1})
    with pytest.raises(ValueError):
        BE.surrogate(np.zeros(3), "fda", {"n": -1})
    with pytest.raises(KeyError):
        BE.surrogate(np.zeros(3), "no_such_estimator", {})
    name = "test_cupy_backend_cubic"
    estimators.register_estimator(name, lambda x, c=1.0: (c * x ** 2).astype(x.dtype), {"c": 1.0},
                                  replace=True)
    assert estimator_args(name, {"c": 2.0}) is None  # no device kernel: host fallback
    x = RNG.normal(size=7)
    np.testing.assert_allclose(BE.surrogate(x, name, {"c": 2.0}), 2 * x ** 2)
    dt, _, _ = BE.quantize_backward(np.ones_like(x), x, None, None, alpha=0.1, estimator=name, params={})
    np.testing.assert_allclose(dt, x ** 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero", [-1.0, 0.0, 1.0])
def test_sign_matches_reference(dtype, zero):
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.nan, -np.inf], dtype=dtype)
    got = BE.sign(x, zero)
    want = ref_sign(x, zero)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError):
        BE.sign(x, 0.5)


def _module(shape, layout, dtype, k=4):
    d = noise.row_length(shape, layout)
    w1, w2 = noise.init_noise_params(d, k, np.random.default_rng(5), dtype)
    return w1, w2


CASES = [((6, 3, 3, 3), "weight"), ((5, 12), "weight"), ((2, 8, 4, 3), "activation"), ((7, 10), "activation")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,layout", CASES)
@pytest.mark.parametrize("eta", ["sin", "linear", "none"])
def test_noise_module_matches_reference(dtype, shape, layout, eta):
    t = RNG.normal(size=shape).astype(dtype)
    g = RNG.normal(size=shape).astype(dtype)
    w1, w2 = _module(shape, layout, dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    got = BE.noise_forward(t, w1, w2, layout=layout, eta_kind=eta, a=0.1)
    np.testing.assert_allclose(got, noise.noise_forward(t, w1, w2, layout=layout, eta_kind=eta, a=0.1),
                               rtol=rtol, atol=rtol)
    for a, b in zip(BE.noise_backward(g, t, w1, w2, layout=layout, eta_kind=eta, a=0.1),
                    noise.noise_backward(g, t, w1, w2, layout=layout, eta_kind=eta, a=0.1)):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,layout", CASES)
@pytest.mark.parametrize("estimator,params", [("fda", {"n": 12}), ("fda", {"n": 9, "clip": 1.0}),
                                              ("sign_swish", {}), ("ste", {})])
def test_quantizer_matches_reference(dtype, shape, layout, estimator, params):
    t = RNG.normal(size=shape).astype(dtype)
    t.flat[0] = 0.0
    g = RNG.normal(size=shape).astype(dtype)
    w1, w2 = _module(shape, layout, dtype)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    kw = dict(layout=layout, eta_kind="sin", a=0.1)
    for alpha, training, mod in [(0.1, True, True), (0.0, True, True), (0.1, False, True), (0.1, True, False)]:
        m1, m2 = (w1, w2) if mod else (None, None)
        got = BE.quantize_forward(t, m1, m2, alpha=alpha, zero=-1.0, training=training, **kw)
        want = quantizer.quantize_forward(t, m1, m2, alpha=alpha, zero=-1.0, training=training, **kw)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        got_b = BE.quantize_backward(g, t, m1, m2, alpha=alpha, estimator=estimator, params=params, **kw)
        want_b = quantizer.quantize_backward(g, t, m1, m2, alpha=alpha, estimator=estimator, params=params, **kw)
        for a, b in zip(got_b, want_b):
            if b is None:
                assert a is None
            else:
                assert a.dtype == dtype
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 20)


def test_quantizer_errors():
    t = np.zeros((4, 8))
    w1, w2 = _module((4, 8), "weight", np.float64)
    with pytest.raises(ValueError, match="expects w1"):
        BE.quantize_forward(t, w2, w1, alpha=0.1, layout="weight")
    with pytest.raises(ValueError, match="eta"):
        BE.quantize_forward(t, w1, w2, alpha=0.1, layout="weight", eta_kind="cos")
    with pytest.raises(ValueError, match="shape of t"):
        BE.quantize_backward(np.zeros((4, 7)), t, w1, w2, alpha=0.1)
    with pytest.raises(TypeError, match="float32 or float64"):
        BE.sign(np.zeros(3, dtype=np.int32))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        BE.sign([1.0, 2.0])


@pytest.mark.parametrize("mode", ["channel", "layer", "none"])
@pytest.mark.parametrize("shape", [(4, 3, 3, 3), (5, 7)])
def test_weight_scale_matches_reference(mode, shape):
    w = RNG.normal(size=shape)
    got = BE.weight_scale(w, mode)
    want = scale.weight_scale(w, mode)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-14)


# ------------------------------------------------------------------------------------------------------
# layers on the portable path vs independent loops and finite differences

def _naive_conv(x, w, b, stride, padding, dilation, pad_value):
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    ho = geo.conv_output_size(h, kh, stride[0], padding[0], dilation[0])
    wo = geo.conv_output_size(wd, kw, stride[1], padding[1], dilation[1])
    out = np.zeros((n, co, ho, wo))
    for oy in range(ho):
        for ox in range(wo):
            for i in range(kh):
                for j in range(kw):
                    iy = oy * stride[0] - padding[0] + i * dilation[0]
                    ix = ox * stride[1] - padding[1] + j * dilation[1]
                    v = x[:, :, iy, ix] if 0 <= iy < h and 0 <= ix < wd else np.full((n, c), pad_value)
                    out[:, :, oy, ox] += v @ w[:, :, i, j].T
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


CONV_GEOMS = [((1, 1), (1, 1), (1, 1), 0.0), ((2, 2), (1, 1), (1, 1), -1.0), ((1, 2), (2, 0), (2, 1), 1.0),
              ((2, 1), (0, 0), (1, 1), 0.0)]


@pytest.mark.parametrize("stride,padding,dilation,pad_value", CONV_GEOMS)
def test_conv2d_forward_and_backward(stride, padding, dilation, pad_value):
    x = RNG.normal(size=(2, 3, 7, 6))
    w = RNG.normal(size=(4, 3, 3, 2))
    b = RNG.normal(size=4)
    geom = dict(stride=stride, padding=padding, dilation=dilation, pad_value=pad_value)
    y = BE.conv2d_forward(x, w, b, **geom)
    np.testing.assert_allclose(y, _naive_conv(x, w, b, stride, padding, dilation, pad_value), rtol=1e-12,
                               atol=1e-12)
    g = RNG.normal(size=y.shape)
    dx, dw, db = BE.conv2d_backward(g, x, w, has_bias=True, **geom)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    # the padding is a constant: the map is affine, so one directional derivative per input is exact
    vx, vw, vb = RNG.normal(size=x.shape), RNG.normal(size=w.shape), RNG.normal(size=b.shape)
    eps = 1e-3
    for arrs, grad, v in [((x + eps * vx, w, b), dx, vx), ((x, w + eps * vw, b), dw, vw), ((x, w, b + eps * vb), db, vb)]:
        fd = (np.sum(g * BE.conv2d_forward(*arrs, **geom)) - np.sum(g * y)) / eps
        assert math.isclose(fd, np.sum(grad * v), rel_tol=1e-6, abs_tol=1e-6)
    dx32 = BE.conv2d_backward(g.astype(np.float32), x.astype(np.float32), w.astype(np.float32),
                              has_bias=False, **geom)
    assert dx32[0].dtype == np.float32 and dx32[2] is None


def test_linear():
    x, w, b = RNG.normal(size=(5, 4)), RNG.normal(size=(3, 4)), RNG.normal(size=3)
    np.testing.assert_allclose(BE.linear_forward(x, w, b), x @ w.T + b)
    g = RNG.normal(size=(5, 3))
    dx, dw, db = BE.linear_backward(g, x, w, has_bias=True)
    np.testing.assert_allclose(dx, g @ w)
    np.testing.assert_allclose(dw, g.T @ x)
    np.testing.assert_allclose(db, g.sum(0))


def _num_grad(f, x, v, eps=1e-6):
    return (f(x + eps * v) - f(x - eps * v)) / (2 * eps)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 5)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(shape, training):
    x = RNG.normal(1, 2, size=shape)
    c = shape[1]
    gamma, beta = RNG.normal(size=c), RNG.normal(size=c)
    rm, rv = RNG.normal(size=c), RNG.uniform(0.5, 2, size=c)
    y, mean, invstd, nm, nv = BE.batch_norm_forward(x, gamma, beta, rm, rv, training=training, momentum=0.1,
                                                    eps=1e-5)
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    bs = (1, c) + (1,) * (len(shape) - 2)
    if training:
        cnt = x.size // c
        np.testing.assert_allclose(mean, x.mean(axes))
        np.testing.assert_allclose(invstd, 1 / np.sqrt(x.var(axes) + 1e-5))
        np.testing.assert_allclose(nm, 0.9 * rm + 0.1 * x.mean(axes))
        np.testing.assert_allclose(nv, 0.9 * rv + 0.1 * x.var(axes) * cnt / (cnt - 1))
    else:
        assert nm is rm and nv is rv
        np.testing.assert_allclose(invstd, 1 / np.sqrt(rv + 1e-5))
    np.testing.assert_allclose(y, (x - mean.reshape(bs)) * (invstd * gamma).reshape(bs) + beta.reshape(bs))
    g = RNG.normal(size=shape)
    dx, dgamma, dbeta = BE.batch_norm_backward(g, x, gamma, mean, invstd, training=training)

    def loss_x(xx):
        return np.sum(g * BE.batch_norm_forward(xx, gamma, beta, rm, rv, training=training, momentum=0.1,
                                                eps=1e-5)[0])

    def loss_gamma(gg):
        return np.sum(g * BE.batch_norm_forward(x, gg, beta, rm, rv, training=training, momentum=0.1,
                                                eps=1e-5)[0])
    v = RNG.normal(size=shape)
    assert math.isclose(_num_grad(loss_x, x, v), np.sum(dx * v), rel_tol=1e-6, abs_tol=1e-8)
    vg = RNG.normal(size=c)
    assert math.isclose(_num_grad(loss_gamma, gamma, vg), np.sum(dgamma * vg), rel_tol=1e-6, abs_tol=1e-8)
    np.testing.assert_allclose(dbeta, g.sum(axes))


@pytest.mark.parametrize("slope_shape", [(1,), (3,)])
def test_prelu_and_relu(slope_shape):
    x = RNG.normal(size=(2, 3, 4, 4))
    x[0, 0, 0, 0] = 0.0
    slope = RNG.uniform(0.1, 0.4, size=slope_shape)
    s = slope.reshape(1, -1, 1, 1) if slope.size > 1 else slope[0]
    np.testing.assert_allclose(BE.prelu_forward(x, slope), np.where(x > 0, x, s * x))
    g = RNG.normal(size=x.shape)
    dx, ds = BE.prelu_backward(g, x, slope)
    np.testing.assert_allclose(dx, np.where(x > 0, g, s * g))
    want = np.where(x > 0, 0, g * x)
    want = want.sum().reshape(1) if slope.size == 1 else want.sum(axis=(0, 2, 3))
    np.testing.assert_allclose(ds, want)
    np.testing.assert_allclose(BE.relu_forward(x), np.maximum(x, 0))
    np.testing.assert_allclose(BE.relu_backward(g, x), np.where(x > 0, g, 0))


def _naive_pool(x, k, s, p, op):
    n, c, h, w = x.shape
    ho, wo = geo.conv_output_size(h, k[0], s[0], p[0], 1), geo.conv_output_size(w, k[1], s[1], p[1], 1)
    out = np.zeros((n, c, ho, wo))
    arg = {}
    for oy in range(ho):
        for ox in range(wo):
            vals, pos = [], []
            for i in range(k[0]):
                for j in range(k[1]):
                    iy, ix = oy * s[0] - p[0] + i, ox * s[1] - p[1] + j
                    inside = 0 <= iy < h and 0 <= ix < w
                    vals.append(x[:, :, iy, ix] if inside else np.full((n, c), -np.inf if op == "max" else 0.0))
                    pos.append((iy, ix))
            vals = np.stack(vals, -1)
            if op == "max":
                out[:, :, oy, ox] = vals.max(-1)
                arg[oy, ox] = (vals.argmax(-1), pos)
            else:
                out[:, :, oy, ox] = vals.sum(-1) / (k[0] * k[1])
    return out, arg


@pytest.mark.parametrize("k,s,p", [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0))])
def test_pooling(k, s, p):
    x = RNG.normal(size=(2, 3, 7, 6))
    x[0, 0, :2, :2] = 1.5  # ties: the first maximal element in window order gets the gradient
    geom = dict(kernel=k, stride=s, padding=p)
    want_max, arg = _naive_pool(x, k, s, p, "max")
    np.testing.assert_allclose(BE.max_pool2d_forward(x, **geom), want_max)
    want_avg, _ = _naive_pool(x, k, s, p, "avg")
    np.testing.assert_allclose(BE.avg_pool2d_forward(x, **geom), want_avg)
    g = RNG.normal(size=want_max.shape)
    dx = BE.max_pool2d_backward(g, x, **geom)
    want_dx = np.zeros_like(x)
    for (oy, ox), (first, pos) in arg.items():
        for nn_ in range(2):
            for cc in range(3):
                iy, ix = pos[first[nn_, cc]]
                want_dx[nn_, cc, iy, ix] += g[nn_, cc, oy, ox]
    np.testing.assert_allclose(dx, want_dx)
    # avg pool is linear: adjoint identity
    da = BE.avg_pool2d_backward(g, x, **geom)
    v = RNG.normal(size=x.shape)
    assert math.isclose(np.sum(g * BE.avg_pool2d_forward(v, **geom)), np.sum(da * v), rel_tol=1e-12)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(smoothing):
    logits = RNG.normal(0, 3, size=(6, 5))
    logits[0, 0] = 800.0  # stable for large logits
    labels = RNG.integers(0, 5, 6)
    loss = BE.cross_entropy_forward(logits, labels, label_smoothing=smoothing)
    assert loss.shape == ()
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    q = np.full((6, 5), smoothing / 5)
    q[np.arange(6), labels] += 1 - smoothing
    np.testing.assert_allclose(loss, np.mean(-(q * (logits - lse[:, None])).sum(1)))
    g = np.array(0.7)
    d = BE.cross_entropy_backward(g, logits, labels, label_smoothing=smoothing)
    v = RNG.normal(size=logits.shape)
    f = lambda z: 0.7 * BE.cross_entropy_forward(z, labels, label_smoothing=smoothing)  # noqa: E731
    assert math.isclose(_num_grad(f, logits, v), np.sum(d * v), rel_tol=1e-6, abs_tol=1e-9)


# ------------------------------------------------------------------------------------------------------
# bit packing and XNOR-popcount

@pytest.mark.parametrize("c", [1, 63, 64, 65, 130])
@pytest.mark.parametrize("zero", [-1.0, 1.0])
def test_pack_signs_bit_layout(c, zero):
    x = RNG.normal(size=(2, c, 3))
    x[0, 0, 0] = 0.0
    packed = BE.pack_signs(x, axis=1, zero=zero)
    assert packed.dtype == np.uint64 and packed.shape == (2, 3, geo.words_for(c))
    for b in range(2):
        for h in range(3):
            for ch in range(geo.words_for(c) * 64):
                bit = (int(packed[b, h, ch // 64]) >> (ch % 64)) & 1
                if ch >= c:
                    assert bit == 0
                else:
                    v = x[b, ch, h]
                    assert bit == int(v < 0 or (v == 0 and zero < 0))
    with pytest.raises(ValueError, match="zero must be"):
        BE.pack_signs(x, axis=1, zero=0.0)


def test_popcount():
    v = np.array([0, 1, 2 ** 64 - 1, 0x8000000000000001, 0x0F0F], dtype=np.uint64)
    np.testing.assert_array_equal(PortableKernels(np).popcount(v), [0, 1, 64, 2, 8])


@pytest.mark.parametrize("c", [5, 64, 70])
@pytest.mark.parametrize("pad_value", [0.0, -1.0, 1.0])
@pytest.mark.parametrize("stride,padding,dilation", [((1, 1), (1, 1), (1, 1)), ((2, 1), (2, 1), (1, 2))])
def test_xnor_conv2d_equals_float_conv_of_signs(c, pad_value, stride, padding, dilation):
    xs = np.where(RNG.normal(size=(2, c, 6, 5)) > 0, 1.0, -1.0)
    ws = np.where(RNG.normal(size=(3, c, 3, 2)) > 0, 1.0, -1.0)
    xpk = BE.pack_signs(xs, axis=1, zero=-1.0)                     # (N, H, W, words)
    wpk = BE.pack_signs(ws, axis=1, zero=-1.0)                     # (C_out, kh, kw, words)
    got = BE.xnor_conv2d(xpk, wpk, channels=c, stride=stride, padding=padding, dilation=dilation,
                         pad_value=pad_value)
    want = _naive_conv(xs, ws, None, stride, padding, dilation, pad_value)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want.astype(np.int32))


def test_xnor_linear_and_errors():
    xs = np.where(RNG.normal(size=(4, 70)) > 0, 1.0, -1.0)
    ws = np.where(RNG.normal(size=(3, 70)) > 0, 1.0, -1.0)
    got = BE.xnor_linear(BE.pack_signs(xs, axis=1), BE.pack_signs(ws, axis=1), features=70)
    np.testing.assert_array_equal(got, (xs @ ws.T).astype(np.int32))
    with pytest.raises(ValueError, match="need 1 words"):
        BE.xnor_linear(BE.pack_signs(xs, axis=1), BE.pack_signs(ws, axis=1), features=60)
    with pytest.raises(TypeError, match="uint64"):
        BE.xnor_linear(xs, ws, features=70)


# ------------------------------------------------------------------------------------------------------
# the fdaref engine on the array-generic path (NumPy standing in for CuPy) vs the reference op table

def test_engine_resnet20_step_matches_reference():
    """One SGD step of binary resnet20 through fdaref's engine: stand-in op table vs the reference."""
    reference = pytest.importorskip("fdaref.reference", exc_type=ImportError)  # until fdaref.functional lands
    autodiff = pytest.importorskip("fdaref.autodiff")
    functions = pytest.importorskip("fdaref.functions")
    models = pytest.importorskip("fdaref.nn.models")
    optim = pytest.importorskip("fdaref.optim")
    rng = np.random.default_rng(0)
    x_np, y = rng.normal(size=(4, 1, 8, 8)), rng.integers(0, 10, 4)
    results = []
    for ops in (reference.REFERENCE, BE):
        model = models.resnet20(in_channels=1, num_classes=10, seed=0).to(ops, "cpu")
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        x = autodiff.Tensor.from_numpy(x_np, ops, "cpu")
        losses = []
        for _ in range(2):
            loss = functions.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.numpy()))
        results.append((losses, [p.numpy() for p in model.parameters()]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-9)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.skipif(HAS_GPU, reason="this machine has a CUDA device")
def test_bench_script_exits_cleanly_without_a_gpu(tmp_path, capsys):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "bench" / "bench_cupy.py"
    spec = importlib.util.spec_from_file_location("bench_cupy_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "cupy_cuda.json"
    assert mod.main(["--out", str(out)]) == 0
    assert "skipped" in capsys.readouterr().err and not out.exists()


def test_every_error_input_of_the_suite_is_refused():
    """The suite's error inputs (conformance/error_inputs.py) on the array backend over numpy: what `fdaref
    conform --strict` asks of cupy on a GPU, checked here where there is none."""
    import copy
    from fdaref.conformance.records import RECORDS
    accepted = []
    for op, record in RECORDS.items():
        for err in record.error_inputs("float32"):
            try:
                getattr(BE, op)(*[a for _, a in err.case.arrays], **copy.deepcopy(err.case.kwargs))
            except err.expected:
                continue
            accepted.append(f"{op}: {err.label}")
    assert not accepted, accepted
