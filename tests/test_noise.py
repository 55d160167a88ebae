"""The noise adaptation module (Eq. 13) and its row layouts (SPEC 3)."""
import numpy as np
import pytest

from fdaref.noise import (eta, eta_grad, from_rows, init_noise_params, noise_backward, noise_forward,
                          noise_width, row_length, to_rows)

RNG = np.random.default_rng(7)


def random_direction_check(f, vjp, inputs, rng, eps=1e-6):
    """<g, (f(x + eps v) - f(x - eps v)) / 2 eps> against sum_i <vjp_i, v_i> in float64."""
    g = rng.normal(size=f(*inputs).shape)
    dirs = [rng.normal(size=x.shape) for x in inputs]
    plus = f(*[x + eps * v for x, v in zip(inputs, dirs)])
    minus = f(*[x - eps * v for x, v in zip(inputs, dirs)])
    numeric = np.sum(g * (plus - minus)) / (2 * eps)
    analytic = sum(np.sum(d * v) for d, v in zip(vjp(g), dirs))
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("d,k,m", [(1, 64, 1), (16, 64, 1), (63, 64, 1), (64, 64, 1), (144, 64, 2), (576, 64, 9),
                                   (10, 4, 2)])
def test_width_never_zero(d, k, m):
    assert noise_width(d, k) == m


def test_activation_rows_are_pixels_and_weight_rows_are_filters():
    t = RNG.normal(size=(2, 3, 4, 5))
    rows = to_rows(t, "activation")
    assert rows.shape == (2 * 4 * 5, 3)
    np.testing.assert_array_equal(rows[1 * 20 + 2 * 5 + 3], t[1, :, 2, 3])
    np.testing.assert_array_equal(from_rows(rows, t.shape, "activation"), t)
    w_rows = to_rows(t, "weight")
    assert w_rows.shape == (2, 60)
    np.testing.assert_array_equal(w_rows[1], t[1].ravel())
    assert row_length((8, 20), "activation") == 20 and row_length((8, 20), "weight") == 20


@pytest.mark.parametrize("layout,shape", [("weight", (4, 3, 3, 3)), ("weight", (5, 7)),
                                          ("activation", (2, 6, 3, 4)), ("activation", (3, 9))])
@pytest.mark.parametrize("kind", ["sin", "linear", "none"])
def test_forward_is_eq13_row_by_row(layout, shape, kind):
    t = RNG.normal(size=shape)
    d = row_length(shape, layout)
    w1, w2 = init_noise_params(d, 2, RNG)
    e = noise_forward(t, w1, w2, layout=layout, eta_kind=kind, a=0.1)
    rows = to_rows(t, layout)
    expected = np.stack([np.maximum(r @ w1, 0) @ w2 for r in rows])
    expected = from_rows(expected, shape, layout) + eta(t, kind, 0.1)
    np.testing.assert_allclose(e, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("layout,shape", [("weight", (4, 3, 3, 3)), ("activation", (2, 6, 3, 4)),
                                          ("activation", (3, 9))])
@pytest.mark.parametrize("kind", ["sin", "linear", "none"])
def test_backward_matches_finite_differences(layout, shape, kind):
    rng = np.random.default_rng(3)
    t = rng.normal(size=shape)
    w1, w2 = init_noise_params(row_length(shape, layout), 2, rng)
    random_direction_check(
        lambda t_, a_, b_: noise_forward(t_, a_, b_, layout=layout, eta_kind=kind, a=0.1),
        lambda g: noise_backward(g, t, w1, w2, layout=layout, eta_kind=kind, a=0.1),
        [t, w1, w2], rng)


def test_relu_derivative_at_zero_is_zero():
    t = np.zeros((2, 4))  # h = 0 exactly in every row
    w1, w2 = init_noise_params(4, 2, RNG)
    dt, dw1, dw2 = noise_backward(np.ones((2, 4)), t, w1, w2, layout="activation", eta_kind="none", a=0.1)
    np.testing.assert_array_equal(dt, 0)
    np.testing.assert_array_equal(dw1, 0)
    np.testing.assert_array_equal(dw2, 0)


def test_eta_derivatives():
    t = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(eta_grad(t, "sin", 0.3), 0.3 * np.cos(t))
    np.testing.assert_allclose(eta_grad(t, "linear", 0.3), 0.3)
    np.testing.assert_array_equal(eta_grad(t, "none", 0.3), 0)


def test_init_is_zero_mean_uniform_and_seeded():
    w1, w2 = init_noise_params(576, 64, np.random.default_rng(0))
    assert w1.shape == (576, 9) and w2.shape == (9, 576)
    assert np.abs(w1).max() <= 1 / np.sqrt(576) and np.abs(w2).max() <= 1 / 3
    assert abs(w1.mean()) < 0.1 / np.sqrt(576) and abs(w2.mean()) < 0.1 / 3
    again = init_noise_params(576, 64, np.random.default_rng(0))
    np.testing.assert_array_equal(w1, again[0])
    assert init_noise_params(8, 64, RNG, np.float32)[0].dtype == np.float32


def test_bad_input():
    t = RNG.normal(size=(2, 8))
    w1, w2 = init_noise_params(8, 4, RNG)
    with pytest.raises(ValueError, match=r"expects w1 \(d, m\)"):
        noise_forward(t, w1[:4], w2, layout="weight")
    with pytest.raises(ValueError, match="layout: expected one of"):
        noise_forward(t, w1, w2, layout="rows")
    with pytest.raises(ValueError, match="eta: expected one of"):
        noise_forward(t, w1, w2, layout="weight", eta_kind="cos")
    with pytest.raises(ValueError, match="shape of t"):
        noise_backward(np.ones((3, 8)), t, w1, w2, layout="weight")
    with pytest.raises(ValueError, match="2-D or 4-D"):
        noise_forward(np.ones(8), w1, w2, layout="weight")
    with pytest.raises(ValueError, match="d: expected an integer >= 1"):
        noise_width(0)
