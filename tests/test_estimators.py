"""Every surrogate against an independent formula; fda against finite differences of s_n and its series."""
import numpy as np
import pytest

from fdaref.estimators import (estimator_grad, estimator_names, fda, fda_peak, fda_series, fourier_series,
                               get_estimator, register_estimator)

RNG = np.random.default_rng(1234)
X = np.concatenate([RNG.normal(0, 2, 500), [-1.0, 1.0, 0.0, -0.999999, 1.000001, 5.0, -7.0]])


def central_difference(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


def test_ste_is_one():
    np.testing.assert_array_equal(estimator_grad(X, "ste"), np.ones_like(X))


def test_clipped_ste_keeps_boundary():
    expected = np.array([1.0 if -1.0 <= v <= 1.0 else 0.0 for v in X])
    np.testing.assert_array_equal(estimator_grad(X, "clipped_ste"), expected)


def test_approx_sign_piecewise():
    expected = np.array([2 - 2 * abs(v) if abs(v) <= 1 else 0.0 for v in X])
    np.testing.assert_allclose(estimator_grad(X, "approx_sign"), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("beta", [1.0, 5.0])
def test_sign_swish_is_derivative_of_swish_sign(beta):
    # BNN+: SS_beta(x) = 2 sigmoid(beta x) (1 + beta x (1 - sigmoid(beta x))) - 1
    def ss(x):
        s = 1 / (1 + np.exp(-beta * x))
        return 2 * s * (1 + beta * x * (1 - s)) - 1
    np.testing.assert_allclose(estimator_grad(X, "sign_swish", beta=beta), central_difference(ss, X),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_tanh_is_derivative_of_tanh(beta):
    np.testing.assert_allclose(estimator_grad(X, "tanh", beta=beta),
                               central_difference(lambda x: np.tanh(beta * x), X), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("n", [0, 1, 9, 18])
@pytest.mark.parametrize("omega", [0.1, 1.0, 2.5])
def test_fda_is_derivative_of_truncated_series(n, omega):
    x = np.linspace(-8, 8, 401)
    fd = central_difference(lambda v: fourier_series(v, n, omega), x, h=1e-5)
    np.testing.assert_allclose(fda(x, n, omega), fd, rtol=0, atol=1e-7 * fda_peak(n, omega))


def special_points(omega, dtype):
    """Inputs at and near x = k pi / omega, where sin(omega x) = 0 and the closed form is 0/0."""
    k = np.arange(-6, 7)
    at = k * np.pi / omega
    near = np.concatenate([at * (1 + 1e-9), at + 1e-7, at - 1e-4, at + 1e-2])
    return np.concatenate([at, near, np.linspace(-50, 50, 1001)]).astype(dtype)


@pytest.mark.parametrize("omega", [0.1, 1.0, 3.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_closed_form_matches_series_for_n_0_to_40(omega, dtype):
    x = special_points(omega, dtype)
    # float32 results are compared with the float64 series on the same (float32-rounded) inputs
    atol_rel = 1e-11 if dtype == np.float64 else 3e-7  # float32: float32 sines
    for n in range(41):
        closed = fda(x, n, omega)
        assert closed.dtype == dtype
        series64 = fda_series(x.astype(np.float64), n, omega)
        np.testing.assert_allclose(closed, series64, rtol=0, atol=atol_rel * fda_peak(n, omega),
                                   err_msg=f"n={n} omega={omega}")


def test_closed_form_limit_at_multiples_of_pi():
    n, omega = 9, 0.5
    for k in range(-4, 5):
        value = fda(np.array([k * np.pi / omega]), n, omega)[0]
        assert value == pytest.approx(4 * omega / np.pi * (n + 1) * (-1) ** k, rel=1e-12)


def test_fda_sum_is_inclusive_n_plus_one_terms():
    # at x = 0 every cosine is 1: the value counts the terms
    assert fda(np.zeros(1), 9, 0.1)[0] == pytest.approx(0.4 / np.pi * 10)
    assert fda_series(np.zeros(1), 9, 0.1)[0] == pytest.approx(0.4 / np.pi * 10)


@pytest.mark.parametrize("name", ["fda", "fda_series"])
def test_fda_clip_is_inclusive(name):
    x = np.array([-1.5, -1.0, 0.3, 1.0, 1.0000001])
    g = estimator_grad(x, name, n=3, omega=0.1, clip=1.0)
    unclipped = estimator_grad(x, name, n=3, omega=0.1)
    np.testing.assert_array_equal(g[[1, 2, 3]], unclipped[[1, 2, 3]])
    np.testing.assert_array_equal(g[[0, 4]], [0.0, 0.0])


def test_nan_and_inf_give_nan():
    g = fda(np.array([np.nan, np.inf, 0.0]), 9, 0.1)
    assert np.isnan(g[0]) and np.isnan(g[1]) and np.isfinite(g[2])


def test_registry_is_open_to_third_parties():
    name = "test_triangle"
    if name not in estimator_names():
        register_estimator(name, lambda x, width=2.0: np.maximum(0, 1 - np.abs(x) / width) / width,
                           {"width": 2.0})
    np.testing.assert_allclose(estimator_grad(np.array([0.0, 1.0, 3.0]), name, width=2.0), [0.5, 0.25, 0.0])
    with pytest.raises(ValueError, match="already registered"):
        register_estimator(name, lambda x: x)
    assert {"ste", "clipped_ste", "approx_sign", "sign_swish", "tanh", "fda"} <= set(estimator_names())


def test_bad_parameters_are_rejected_with_what_was_expected():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="n: expected an integer >= 0"):
        estimator_grad(x, "fda", n=-1)
    with pytest.raises(TypeError, match="n: expected an integer"):
        estimator_grad(x, "fda", n=2.5)
    with pytest.raises(ValueError, match="omega: expected a finite number > 0"):
        estimator_grad(x, "fda", omega=0.0)
    with pytest.raises(ValueError, match="omega"):
        estimator_grad(x, "fda", omega=float("nan"))
    with pytest.raises(ValueError, match="clip"):
        estimator_grad(x, "fda", clip=-1.0)
    with pytest.raises(TypeError, match="unknown parameter"):
        estimator_grad(x, "fda", m=3)
    with pytest.raises(KeyError, match="unknown estimator 'nope'"):
        get_estimator("nope")
    with pytest.raises(TypeError, match="float32 or float64"):
        estimator_grad(np.zeros(3, dtype=np.int64), "ste")
