"""The fast ``numpy`` backend (backends/numpy) against the literal reference, on what only a fast kernel can
get wrong: blocking and chunking, the flat conv mode, float32 sines, in-place updates. Every op is also run
by the conformance suite (tests/test_conformance_*.py, ``fdaref conform --backend numpy``)."""
import importlib

import numpy as np
import pytest

from fdaref.autodiff import default_ops
from fdaref.backend_loader import load_backend
from fdaref.estimators import fda_peak, fda_series
from fdaref.reference import REFERENCE

BACKEND = load_backend("numpy")
fast_conv = importlib.import_module("fdaref.backends.numpy.conv")
fast_surrogates = importlib.import_module("fdaref.backends.numpy.surrogates")


def test_the_numpy_backend_is_a_fast_table_of_its_own_and_the_default():
    assert BACKEND is not REFERENCE and BACKEND.name == "numpy" and REFERENCE.name == "reference"
    assert BACKEND.conv2d_forward is not REFERENCE.conv2d_forward
    assert default_ops() is BACKEND


def special_points(omega, dtype):
    """At and near x = k pi / omega (the closed form's 0/0), and a sweep."""
    at = np.arange(-6, 7) * np.pi / omega
    near = np.concatenate([at * (1 + 1e-9), at + 1e-7, at - 1e-4, at + 1e-2])
    return np.concatenate([at, near, np.linspace(-50, 50, 1001)]).astype(dtype)


@pytest.mark.parametrize("omega", [0.1, 1.0, 3.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_fda_matches_the_series(omega, dtype):
    """float32 takes float32 sines: within 3e-7 of the peak (n + 1) of the float64 series."""
    x = special_points(omega, dtype)
    atol_rel = 1e-11 if dtype == np.float64 else 3e-7
    for n in (0, 1, 9, 18, 40):
        fast = BACKEND.surrogate(x, "fda", {"n": n, "omega": omega, "clip": None})
        assert fast.dtype == dtype
        np.testing.assert_allclose(fast, fda_series(x.astype(np.float64), n, omega), rtol=0,
                                   atol=atol_rel * fda_peak(n, omega), err_msg=f"n={n}")


def test_fast_fda_blocks_do_not_change_values(monkeypatch):
    x = np.random.default_rng(0).normal(0, 30, 1000)
    whole = BACKEND.surrogate(x, "fda", {"n": 9})
    monkeypatch.setattr(fast_surrogates, "FDA_BLOCK", 7)
    np.testing.assert_array_equal(BACKEND.surrogate(x, "fda", {"n": 9}), whole)


def test_a_replaced_estimator_is_the_registry_s_not_the_fast_kernel(monkeypatch):
    from fdaref import estimators
    # the registry entry is restored whole (every field of the record) when the test ends
    monkeypatch.setitem(estimators._REGISTRY, "ste", estimators.get_estimator("ste"))
    estimators.register_estimator("ste", lambda x: np.full_like(x, 3.0), replace=True)
    np.testing.assert_array_equal(BACKEND.surrogate(np.zeros(2), "ste", {}), [3.0, 3.0])


def _conv_case(rng, stride, pad_value, n=5):
    x, w = rng.standard_normal((n, 3, 6, 6)), rng.standard_normal((2, 3, 3, 3))
    return x, w, dict(stride=stride, padding=(1, 1), dilation=(1, 1), pad_value=pad_value)


@pytest.mark.parametrize("stride", [(1, 1), (2, 1)])  # the flat mode and the exact windows
def test_conv_chunks_of_one_image_change_nothing(monkeypatch, stride):
    rng = np.random.default_rng(2)
    x, w, kw = _conv_case(rng, stride, 1.0)
    y = BACKEND.conv2d_forward(x, w, None, **kw)
    g = rng.standard_normal(y.shape)
    grads = BACKEND.conv2d_backward(g, x, w, has_bias=True, **kw)
    monkeypatch.setattr(fast_conv, "CHUNK_BYTES", 1)
    np.testing.assert_allclose(BACKEND.conv2d_forward(x, w, None, **kw), y, rtol=1e-12, atol=1e-12)
    for a, b in zip(BACKEND.conv2d_backward(g, x, w, has_bias=True, **kw), grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    ref = REFERENCE.conv2d_backward(g, x, w, has_bias=True, **kw)
    for a, b in zip(grads, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_flat_conv_mode_keeps_finite_dw_entries_next_to_an_inf():
    """Stride 1: tap (0, 2) of a 3x3 valid conv never reads column 0, so dw[..., 0, 2] stays finite with an
    inf at x[1, 0] (a thrown-away flat position reads it: 0 * inf = NaN unless inputs with infs take exact
    windows), exactly as in the reference."""
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 1, 0] = np.inf
    w = np.ones((1, 1, 3, 3))
    kw = dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), pad_value=0.0)
    y = BACKEND.conv2d_forward(x, w, None, **kw)
    _, dw, _ = BACKEND.conv2d_backward(np.ones_like(y), x, w, has_bias=False, **kw)
    _, dw_ref, _ = REFERENCE.conv2d_backward(np.ones_like(y), x, w, has_bias=False, **kw)
    np.testing.assert_array_equal(dw, dw_ref)
    assert np.isfinite(dw[0, 0, :, 1:]).all() and np.isinf(dw[0, 0, 1, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_kernels_leave_their_inputs_alone(dtype):
    rng = np.random.default_rng(5)
    t = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
    g = rng.standard_normal(t.shape).astype(dtype)
    w1, w2 = rng.standard_normal((3, 1)).astype(dtype), rng.standard_normal((1, 3)).astype(dtype)
    copies = [a.copy() for a in (t, g, w1, w2)]
    kw = dict(layout="activation", eta_kind="sin", a=0.1)
    BACKEND.quantize_forward(t, w1, w2, alpha=0.3, zero=-1.0, training=True, **kw)
    BACKEND.quantize_backward(g, t, w1, w2, alpha=0.3, estimator="fda", params={"n": 9}, **kw)
    gamma, beta = np.ones(3, dtype), np.zeros(3, dtype)
    y, mean, invstd, _, _ = BACKEND.batch_norm_forward(t, gamma, beta, np.zeros(3, dtype), np.ones(3, dtype),
                                                       training=True, momentum=0.1, eps=1e-5)
    BACKEND.batch_norm_backward(g, t, gamma, mean, invstd, training=True)
    BACKEND.prelu_backward(g, t, np.full(1, 0.25, dtype))
    for a, b in zip((t, g, w1, w2), copies):
        np.testing.assert_array_equal(a, b)
