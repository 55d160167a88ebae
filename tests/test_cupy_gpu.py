"""CuPy backend on a real CUDA device (marked ``gpu``; every test skips where CuPy has no device).

Run on the GPU machine: ``python -m pytest -m gpu tests/test_cupy_gpu.py -q``. The device results are
compared with the array-generic path on NumPy (itself checked against the reference on the CPU, see
tests/test_cupy_backend.py) and with fdaref's semantic modules.
"""
from __future__ import annotations

import numpy as np
import pytest


def _available() -> bool:
    try:
        import cupy
        return bool(cupy.is_available())
    except Exception:
        return False


pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not _available(), reason="CuPy has no CUDA device here (cupy.is_available() is False)")]

RNG = np.random.default_rng(99)
DTYPES = [np.float32, np.float64]


@pytest.fixture(scope="module")
def be():
    from fdaref.backend_loader import load_backend
    return load_backend("cupy")


@pytest.fixture(scope="module")
def host():
    from fdaref.backends.cupy.ops import ArrayBackend, PortableKernels
    return ArrayBackend(np, PortableKernels(np))


def _tol(dtype) -> float:
    return 2e-5 if dtype == np.float32 else 1e-11


def _cmp(be, got, want, tol, exact=False):
    if want is None:
        assert got is None
        return
    g = be.to_numpy(got)
    assert g.dtype == np.asarray(want).dtype and g.shape == np.shape(want)
    if exact:
        np.testing.assert_array_equal(g, want)
    else:
        np.testing.assert_allclose(g, want, rtol=tol, atol=tol)


def test_backend_identity_and_tf32_off(be):
    from cupy._core import _routines_linalg as linalg

    from fdaref.optable import missing_ops
    assert be.name == "cupy" and missing_ops(be) == []
    assert be.refuses("conv2d_forward", "cuda", "float32") is None
    assert linalg.get_compute_type(np.dtype(np.float32)) == linalg.COMPUTE_TYPE_FP32
    from fdaref.backends.cupy.device import configure_tf32
    try:
        assert configure_tf32(True) == "COMPUTE_TYPE_TF32"
    finally:
        assert configure_tf32(False) == "COMPUTE_TYPE_FP32"


def test_round_trip_and_devices(be):
    a = RNG.normal(size=(3, 4)).astype(np.float32)
    x = be.from_numpy(a, "cuda")
    np.testing.assert_array_equal(be.to_numpy(x), a)
    assert be.zeros((2, 2), like=x).dtype == np.float32
    with pytest.raises(ValueError):
        be.from_numpy(a, "cpu")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,omega,clip", [(0, 0.1, None), (9, 0.1, None), (18, 0.1, 1.0), (50, 0.3, None)])
def test_fused_fda_matches_reference(be, dtype, n, omega, clip):
    from fdaref import estimators
    k = np.arange(-8, 9)
    x = np.concatenate([RNG.normal(0, 25, 200000), k * np.pi / omega, k * np.pi / omega + 3e-5,
                        [0.0, np.nan, np.inf, 1.0, -1.0]]).astype(dtype)
    got = be.to_numpy(be.surrogate(be.from_numpy(x, "cuda"), "fda", {"n": n, "omega": omega, "clip": clip}))
    want = estimators.fda(x, n, omega, clip)
    peak = estimators.fda_peak(n, omega)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    tol = (4e-6 if dtype == np.float32 else 1e-12) * peak
    np.testing.assert_allclose(got[ok], want[ok], rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", [("fda_series", {"n": 6}), ("ste", {}), ("clipped_ste", {}),
                                         ("approx_sign", {}), ("sign_swish", {}), ("tanh", {"beta": 3.0})])
def test_surrogates(be, dtype, name, params):
    from fdaref import estimators
    x = np.concatenate([RNG.normal(0, 2, 5000), [0.0, 1.0, -1.0, 400.0]]).astype(dtype)
    got = be.surrogate(be.from_numpy(x, "cuda"), name, params)
    _cmp(be, got, estimators.estimator_grad(x, name, **params), 4e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero", [-1.0, 0.0, 1.0])
def test_sign(be, dtype, zero):
    from fdaref.binarize import sign
    x = np.array([-1.0, -0.0, 0.0, 2.0, np.nan], dtype=dtype)
    _cmp(be, be.sign(be.from_numpy(x, "cuda"), zero), sign(x, zero), 0, exact=True)


def _args(dtype):
    """(op, positional host arrays, kwargs) covering every op; arrays are moved to the device per call."""
    from fdaref.noise import init_noise_params
    r = np.random.default_rng(5)
    f = lambda *s: r.normal(size=s).astype(dtype)  # noqa: E731
    w1a, w2a = init_noise_params(8, 4, r, dtype)
    w1w, w2w = init_noise_params(27, 4, r, dtype)
    labels = r.integers(0, 5, 6)
    conv = dict(stride=(2, 1), padding=(1, 1), dilation=(1, 1), pad_value=-1.0)
    pool = dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1))
    bn = dict(training=True, momentum=0.1, eps=1e-5)
    q = dict(layout="activation", eta_kind="sin", a=0.1)
    return [
        ("noise_forward", (f(2, 8, 5, 4), w1a, w2a), q),
        ("noise_backward", (f(2, 8, 5, 4), f(2, 8, 5, 4), w1a, w2a), q),
        ("quantize_forward", (f(2, 8, 5, 4), w1a, w2a), dict(q, alpha=0.1, zero=-1.0, training=True)),
        ("quantize_backward", (f(2, 8, 5, 4), f(2, 8, 5, 4), w1a, w2a),
         dict(q, alpha=0.1, estimator="fda", params={"n": 12})),
        ("quantize_backward", (f(6, 3, 3, 3), f(6, 3, 3, 3), w1w, w2w),
         dict(layout="weight", eta_kind="linear", a=0.1, alpha=0.05, estimator="sign_swish", params={})),
        ("weight_scale", (f(6, 3, 3, 3),), dict(mode="channel")),
        ("conv2d_forward", (f(2, 3, 9, 8), f(4, 3, 3, 3), f(4)), conv),
        ("conv2d_backward", (f(2, 4, 5, 8), f(2, 3, 9, 8), f(4, 3, 3, 3)), dict(conv, has_bias=True)),
        ("linear_forward", (f(6, 7), f(5, 7), f(5)), {}),
        ("linear_backward", (f(6, 5), f(6, 7), f(5, 7)), dict(has_bias=True)),
        ("batch_norm_forward", (f(4, 3, 5, 5), f(3), f(3), f(3), np.abs(f(3)) + 0.5), bn),
        ("relu_forward", (f(3, 4),), {}),
        ("relu_backward", (f(3, 4), f(3, 4)), {}),
        ("prelu_forward", (f(2, 3, 4, 4), np.full(1, 0.25, dtype)), {}),
        ("prelu_backward", (f(2, 3, 4, 4), f(2, 3, 4, 4), np.full(3, 0.25, dtype)), {}),
        ("max_pool2d_forward", (f(2, 3, 8, 7),), pool),
        ("max_pool2d_backward", (f(2, 3, 4, 4), f(2, 3, 8, 7)), pool),
        ("avg_pool2d_forward", (f(2, 3, 8, 7),), pool),
        ("avg_pool2d_backward", (f(2, 3, 4, 4), f(2, 3, 8, 7)), pool),
        ("cross_entropy_forward", (f(6, 5), labels), dict(label_smoothing=0.1)),
        ("cross_entropy_backward", (np.array(1.0, dtype), f(6, 5), labels), dict(label_smoothing=0.1)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_op_matches_the_host_path(be, host, dtype):
    for op, arrays, kwargs in _args(dtype):
        dev = [be.from_numpy(a, "cuda") for a in arrays]
        got = getattr(be, op)(*dev, **kwargs)
        want = getattr(host, op)(*arrays, **kwargs)
        gots, wants = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        for g, w in zip(gots, wants):
            try:
                _cmp(be, g, w, _tol(dtype))
            except AssertionError as exc:
                raise AssertionError(f"{op} ({np.dtype(dtype).name}): {exc}") from None


def test_strided_inputs_to_fused_kernels(be):
    import cupy
    t = cupy.asarray(RNG.normal(size=(4, 6, 5, 3)))[:, ::2, :, ::-1]
    np.testing.assert_array_equal(be.to_numpy(be.sign(t)), np.where(cupy.asnumpy(t) > 0, 1.0, -1.0))


@pytest.mark.parametrize("c", [5, 64, 130])
@pytest.mark.parametrize("pad", [0.0, -1.0, 1.0])
def test_pack_and_xnor_exact(be, host, c, pad):
    xs = np.where(RNG.normal(size=(2, c, 7, 6)) > 0, 1.0, -1.0)
    ws = np.where(RNG.normal(size=(3, c, 3, 3)) > 0, 1.0, -1.0)
    xpk = be.pack_signs(be.from_numpy(xs, "cuda"), axis=1, zero=-1.0)
    wpk = be.pack_signs(be.from_numpy(ws, "cuda"), axis=1, zero=-1.0)
    np.testing.assert_array_equal(be.to_numpy(xpk), host.pack_signs(xs, axis=1, zero=-1.0))
    geom = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), pad_value=pad)
    got = be.to_numpy(be.xnor_conv2d(xpk, wpk, channels=c, **geom))
    want = host.conv2d_forward(xs, ws, None, **geom).astype(np.int32)
    np.testing.assert_array_equal(got, want)
    lin = be.xnor_linear(be.pack_signs(be.from_numpy(xs[:, :, 0, 0], "cuda"), axis=1),
                         be.pack_signs(be.from_numpy(ws[:, :, 0, 0], "cuda"), axis=1), features=c)
    np.testing.assert_array_equal(be.to_numpy(lin), (xs[:, :, 0, 0] @ ws[:, :, 0, 0].T).astype(np.int32))


def test_engine_resnet20_steps_match_reference(be):
    """Two SGD steps of binary resnet20 (float64) through fdaref's engine: CuPy vs the NumPy reference."""
    reference = pytest.importorskip("fdaref.reference", exc_type=ImportError)
    from fdaref.autodiff import Tensor
    from fdaref.functions import cross_entropy
    from fdaref.nn.models import resnet20
    from fdaref.optim import SGD
    rng = np.random.default_rng(0)
    x_np, y = rng.normal(size=(8, 3, 16, 16)), rng.integers(0, 10, 8)
    out = []
    for ops, device in ((reference.REFERENCE, "cpu"), (be, "cuda")):
        model = resnet20(in_channels=3, num_classes=10, seed=0).to(ops, device)
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        x = Tensor.from_numpy(x_np, ops, device)
        labels = y if ops is reference.REFERENCE else be.from_numpy(y, device)
        losses = []
        for _ in range(2):
            loss = cross_entropy(model(x), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.numpy()))
        out.append(losses)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-8)
