"""Every BinaryOptions field changes what a binary layer computes, the way SEMANTICS says; every preset's
``params_at`` reaches the layer's backward. Expected values are written here in plain numpy (no fdaref code
beyond the layer under test), on the reference op table."""
import math

import numpy as np
import pytest

from fdaref import nn
from fdaref.autodiff import Tensor
from fdaref.presets import PRESETS, BinaryOptions
from fdaref.reference import REFERENCE


def sign_with(x, zero):
    return np.where(x > 0, 1.0, np.where(x < 0, -1.0, zero))


def fda_prime(x, n, omega, clip=None):
    g = 4 * omega / math.pi * sum(np.cos((2 * i + 1) * omega * x) for i in range(n + 1))
    return g if clip is None else np.where(np.abs(x) > clip, 0.0, g)


SURROGATES = {  # SEMANTICS 2, written out with the defaults
    "ste": lambda x: np.ones_like(x),
    "clipped_ste": lambda x: (np.abs(x) <= 1).astype(float),
    "approx_sign": lambda x: np.where(np.abs(x) <= 1, 2 - 2 * np.abs(x), 0.0),
    "sign_swish": lambda x: 5 * (2 - 5 * x * np.tanh(5 * x / 2)) / (1 + np.cosh(5 * x)),
    "tanh": lambda x: 2 * (1 - np.tanh(2 * x) ** 2),
    "fda": lambda x: fda_prime(x, 9, 0.1),
}


def linear_layer(options, in_features=6, out_features=3, seed=0):
    layer = nn.BinaryLinear(in_features, out_features, bias=False, options=options, rng=np.random.default_rng(seed))
    return layer.to(REFERENCE)


def forward_backward(layer, x, g=None):
    """(y, dL/dx, dL/dW) with L = sum(g * y)."""
    xt = Tensor.from_numpy(x, REFERENCE, requires_grad=True)
    layer.zero_grad()
    y = layer(xt)
    g = np.ones(y.shape) if g is None else g
    y.backward(g)
    return y.numpy(), xt.grad, layer.weight.grad


def scale_of(w, mode):
    if mode == "channel":
        return np.abs(w).mean(axis=tuple(range(1, w.ndim)), keepdims=True)
    if mode == "layer":
        return np.abs(w).mean()
    return 1.0


def noise_e(rows, w1, w2, kind, a):
    shortcut = {"sin": a * np.sin(rows), "linear": a * rows, "none": 0.0 * rows}[kind]
    return np.maximum(rows @ w1, 0) @ w2 + shortcut


def noise_vjp_rows(gz, rows, w1, w2, kind, a):
    """(de/dT)^T gz on rows (Eq. 13's chain rule, relu'(0) = 0)."""
    shortcut = {"sin": a * np.cos(rows), "linear": a + 0 * rows, "none": 0 * rows}[kind]
    return ((gz @ w2.T) * (rows @ w1 > 0)) @ w1.T + gz * shortcut


def expected_linear(layer, x, g, zero, est_prime, eta_kind="sin", a=0.1):
    """y, dL/dx and dL/dW of a BinaryLinear (no bias) in training, from SEMANTICS 4-5 (Eq. 14 on x and W)."""
    w, alpha = layer.weight.numpy(), layer.alpha
    s = scale_of(w, layer.options.scale)
    qx, qw = sign_with(x, zero), sign_with(w, zero)
    has_noise = layer.a_noise1 is not None and alpha != 0
    if has_noise:
        a1, a2, w1, w2 = (p.numpy() for p in (layer.a_noise1, layer.a_noise2, layer.w_noise1, layer.w_noise2))
        qx = qx + alpha * noise_e(x, a1, a2, eta_kind, a)
        qw = qw + alpha * noise_e(w, w1, w2, eta_kind, a)
    y = qx @ (qw * s).T
    gqx, gqw = g @ (qw * s), (g.T @ qx) * s
    dx, dw = gqx * est_prime(x), gqw * est_prime(w)
    if has_noise:
        dx = dx + alpha * noise_vjp_rows(gqx, x, a1, a2, eta_kind, a)
        dw = dw + alpha * noise_vjp_rows(gqw, w, w1, w2, eta_kind, a)
    return y, dx, dw


def check(layer, x, zero, est_prime, g=None, **noise):
    g = np.random.default_rng(9).standard_normal((x.shape[0], layer.out_features)) if g is None else g
    got = forward_backward(layer, x, g)
    want = expected_linear(layer, x, g, zero, est_prime, **noise)
    for name, a, b in zip(("y", "dx", "dw"), got, want):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12, err_msg=name)
    return got


X = np.random.default_rng(1).standard_normal((4, 6)) * 1.5


@pytest.mark.parametrize("zero", [-1.0, 0.0, 1.0])
def test_zero_decides_sign_at_exact_zeros(zero):
    layer = linear_layer(BinaryOptions(zero=zero, noise=False))
    x = X.copy()
    x[0, :3] = 0.0
    y, _, _ = check(layer, x, zero, SURROGATES["fda"])
    y_other, _, _ = forward_backward(linear_layer(BinaryOptions(zero=-zero if zero else 1.0, noise=False)), x)
    assert not np.allclose(y[0], y_other[0])


@pytest.mark.parametrize("estimator", sorted(SURROGATES))
def test_estimator_is_the_surrogate_in_the_backward(estimator):
    check(linear_layer(BinaryOptions(estimator=estimator, noise=False)), X, -1.0, SURROGATES[estimator])


def test_estimator_params_reach_the_backward():
    layer = linear_layer(BinaryOptions(estimator="tanh", estimator_params=(("beta", 3.0),), noise=False))
    check(layer, X, -1.0, lambda x: 3 * (1 - np.tanh(3 * x) ** 2))


def test_omega_reaches_the_backward():
    check(linear_layer(BinaryOptions(omega=0.5, noise=False)), X, -1.0, lambda x: fda_prime(x, 9, 0.5))


def test_clip_zeroes_the_gradient_past_the_clip_in_x_and_w():
    layer = linear_layer(BinaryOptions(clip=1.0, noise=False))
    w = layer.weight.numpy()
    w[0, :3] = [1.5, -1.0, 2.0]    # past the clip, at it, past it
    layer.weight.data = w
    x = X.copy()
    x[:, 0] = [-1.0, 1.0, 1.2, -3.0]
    _, dx, dw = check(layer, x, -1.0, lambda v: fda_prime(v, 9, 0.1, clip=1.0))
    assert np.all(dx[2:, 0] == 0) and np.all(dx[:2, 0] != 0)
    assert dw[0, 0] == 0 and dw[0, 2] == 0 and dw[0, 1] != 0


@pytest.mark.parametrize("schedule,start,end,expected_n", [("linear", 9, 18, lambda e, E: 9 + (9 * e) // (E - 1)),
                                                            ("bibench", 9, 18, lambda e, E: 9 + (9 * e) // E),
                                                            ("fixed", 5, 18, lambda e, E: 5),
                                                            ("linear", 2, 6, lambda e, E: 2 + (4 * e) // (E - 1))])
def test_n_schedule_reaches_the_backward(schedule, start, end, expected_n):
    layer = linear_layer(BinaryOptions(n_schedule=schedule, n_start=start, n_end=end, noise=False))
    for e in (0, 4, 7):
        layer.set_schedule(e, 8)
        n = expected_n(e, 8)
        assert layer.params["n"] == n
        check(layer, X * 10, -1.0, lambda x: fda_prime(x, n, 0.1))


@pytest.mark.parametrize("eta_kind", ["sin", "linear", "none"])
@pytest.mark.parametrize("a", [0.1, 0.4])
def test_noise_eta_and_a_reach_forward_and_backward(eta_kind, a):
    layer = linear_layer(BinaryOptions(eta=eta_kind, a=a, k=2))
    layer.set_schedule(1, 10)
    assert layer.alpha == pytest.approx(0.05 * (1 + math.cos(math.pi * 2 / 10)), rel=1e-15)
    assert layer.params["n"] == 10
    check(layer, X, -1.0, lambda x: fda_prime(x, 10, 0.1), eta_kind=eta_kind, a=a)


def test_noise_false_means_no_module_and_training_equals_sign():
    layer = linear_layer(BinaryOptions(noise=False))
    assert [k for k, _ in layer.named_parameters()] == ["weight"] and layer.alpha == 0.0
    y_train = forward_backward(layer, X)[0]
    layer.eval()
    np.testing.assert_array_equal(forward_backward(layer, X)[0], y_train)
    assert np.abs(forward_backward(linear_layer(BinaryOptions()).train(), X)[0] - y_train).max() > 1e-4


@pytest.mark.parametrize("k", [1, 2, 4, 64])
def test_k_sets_the_hidden_width(k):
    layer = nn.BinaryConv2d(8, 4, 3, options=BinaryOptions(k=k), rng=np.random.default_rng(0))
    assert layer.w_noise1.shape == (72, max(1, 72 // k)) and layer.w_noise2.shape == (max(1, 72 // k), 72)
    assert layer.a_noise1.shape == (8, max(1, 8 // k))


@pytest.mark.parametrize("alpha0", [0.1, 0.5])
def test_alpha0_scales_the_noise_term(alpha0):
    layer = linear_layer(BinaryOptions(alpha0=alpha0, k=2))
    layer.set_schedule(0, 4)
    assert layer.alpha == pytest.approx(alpha0 / 2 * (1 + math.cos(math.pi / 4)), rel=1e-15)
    check(layer, X, -1.0, SURROGATES["fda"])


@pytest.mark.parametrize("mode", ["channel", "layer", "none"])
def test_scale_multiplies_the_binary_weights(mode):
    check(linear_layer(BinaryOptions(scale=mode, noise=False)), X, -1.0, SURROGATES["fda"])


@pytest.mark.parametrize("pad_value", [0.0, -1.0, 1.0])
def test_pad_value_fills_the_border_of_the_binarized_input(pad_value):
    rng = np.random.default_rng(3)
    layer = nn.BinaryConv2d(2, 3, 3, padding=1, options=BinaryOptions(pad_value=pad_value, noise=False),
                            rng=rng).to(REFERENCE).eval()
    x = rng.standard_normal((1, 2, 4, 4))
    w = layer.weight.numpy()
    xp = np.pad(sign_with(x, -1.0), ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=pad_value)
    wq = sign_with(w, -1.0) * scale_of(w, "channel")
    expected = np.zeros((1, 3, 4, 4))
    for i in range(3):
        for j in range(3):
            expected += np.einsum("nchw,oc->nohw", xp[:, :, i:i + 4, j:j + 4], wq[:, :, i, j])
    np.testing.assert_allclose(layer(Tensor.from_numpy(x, REFERENCE)).numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_s_params_reach_the_backward(preset):
    """The layer's backward at epoch e uses exactly the surrogate SEMANTICS 7 names for the preset."""
    opts = PRESETS[preset]
    layer = linear_layer(opts.with_(k=2))
    x = X * 2
    x[0, 0], x[1, 0] = 1.0, 1.5   # at and past bibench's clip
    for e in (0, 5, 9):
        layer.set_schedule(e, 10)
        if preset == "paper":
            prime = lambda v, n=9 + e: fda_prime(v, n, 0.1)           # noqa: E731
        elif preset == "bibench":
            prime = lambda v, n=9 + (9 * e) // 10: fda_prime(v, n, 0.1, clip=1.0)  # noqa: E731
        else:
            prime = SURROGATES["ste"]
        _, dx, _ = check(layer, x, opts.zero, prime)
        if preset == "bibench":
            assert dx[0, 0] != 0 and (layer.alpha != 0 or dx[1, 0] == 0)
