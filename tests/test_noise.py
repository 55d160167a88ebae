"""The noise adaptation module (Eq. 13) and its row layouts (SEMANTICS 3)."""
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


def rows_by_hand(t, layout):
    """SEMANTICS 3's rows, written out: weights -> one row per output unit; activations -> one row per pixel."""
    if layout == "weight":
        return [t[o].ravel() for o in range(t.shape[0])]
    if t.ndim == 2:
        return [t[b] for b in range(t.shape[0])]
    return [t[b, :, y, x] for b in range(t.shape[0]) for y in range(t.shape[2]) for x in range(t.shape[3])]


def place_rows(values, shape, layout):
    out = np.zeros(shape)
    if layout == "weight":
        for o, v in enumerate(values):
            out[o] = v.reshape(shape[1:])
    elif len(shape) == 2:
        out[:] = np.stack(values)
    else:
        it = iter(values)
        for b in range(shape[0]):
            for y in range(shape[2]):
                for x in range(shape[3]):
                    out[b, :, y, x] = next(it)
    return out


ETA = {"sin": lambda r: 0.1 * np.sin(r), "linear": lambda r: 0.1 * r, "none": lambda r: 0 * r}


@pytest.mark.parametrize("layout,shape", [("weight", (4, 3, 3, 3)), ("weight", (5, 7)),
                                          ("activation", (2, 6, 3, 4)), ("activation", (3, 9))])
@pytest.mark.parametrize("kind", ["sin", "linear", "none"])
def test_forward_is_eq13_row_by_row(layout, shape, kind):
    t = RNG.normal(size=shape)
    d = int(np.prod(shape[1:])) if layout == "weight" else shape[1]
    w1, w2 = RNG.normal(size=(d, 2)), RNG.normal(size=(2, d))
    e = noise_forward(t, w1, w2, layout=layout, eta_kind=kind, a=0.1)
    expected = place_rows([np.maximum(r @ w1, 0) @ w2 + ETA[kind](r) for r in rows_by_hand(t, layout)], shape, layout)
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


def ks_statistic(samples, bound):
    """Kolmogorov-Smirnov distance between the samples and U(-bound, bound)."""
    x = np.sort(samples.ravel())
    cdf = np.clip((x + bound) / (2 * bound), 0, 1)
    n = x.size
    return max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))


def ks_accepts_uniform(samples, bound):
    """KS test at level 0.001 (critical value 1.95 / sqrt(n))."""
    return ks_statistic(samples, bound) < 1.95 / np.sqrt(samples.size)


def test_init_is_uniform_on_plus_minus_one_over_sqrt_fan_in_by_ks_test():
    d, k = 576, 8                        # m = 576 // 8 = 72; fan_in is d for W1 and m for W2 (SEMANTICS 3)
    w1, w2 = init_noise_params(d, k, np.random.default_rng(0))
    assert w1.shape == (576, 72) and w2.shape == (72, 576)
    assert ks_accepts_uniform(w1, 1 / np.sqrt(576)) and ks_accepts_uniform(w2, 1 / np.sqrt(72))
    # the test has teeth: a narrower, a wider or a shifted distribution is rejected
    assert not ks_accepts_uniform(0.95 * w1, 1 / np.sqrt(576))
    assert not ks_accepts_uniform(w1, 0.95 / np.sqrt(576))
    assert not ks_accepts_uniform(w2 + 0.02, 1 / np.sqrt(72))


def test_layers_draw_their_modules_with_the_fan_in_of_their_rows():
    """Weights: d = C_in*kh*kw; activations: d = C_in (one row per pixel); linear: d = in."""
    from fdaref import nn
    from fdaref.presets import BinaryOptions
    conv = nn.BinaryConv2d(128, 16, 3, options=BinaryOptions(k=4), rng=np.random.default_rng(1))
    d_w, d_a = 128 * 9, 128
    assert ks_accepts_uniform(conv.w_noise1.numpy(), 1 / np.sqrt(d_w))
    assert ks_accepts_uniform(conv.w_noise2.numpy(), 1 / np.sqrt(d_w // 4))
    assert ks_accepts_uniform(conv.a_noise1.numpy(), 1 / np.sqrt(d_a))
    assert ks_accepts_uniform(conv.a_noise2.numpy(), 1 / np.sqrt(d_a // 4))
    lin = nn.BinaryLinear(400, 10, options=BinaryOptions(k=4), rng=np.random.default_rng(2))
    assert ks_accepts_uniform(lin.w_noise1.numpy(), 1 / np.sqrt(400))
    assert ks_accepts_uniform(lin.a_noise2.numpy(), 1 / np.sqrt(100))


def test_init_is_seeded_and_keeps_the_dtype():
    w1, _ = init_noise_params(576, 64, np.random.default_rng(0))
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
