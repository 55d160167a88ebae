"""Layers through the engine: gradients vs central finite differences (float64, random directions),
the quantizer's backward vs SEMANTICS 4 computed independently, eval = pure sign, parameters at construction.

Binary layers are not differentiable (sign), so their wiring is checked on a "smooth twin" op table: the
reference with sign replaced by the truncated Fourier series s_n (Eq. 9), whose exact derivative is the
`fda` surrogate (Eq. 10), and with the weight scale frozen (SEMANTICS 5: no gradient flows through s). On the
twin, the engine's VJP must equal finite differences of the whole layer (SEMANTICS 9: "fda against finite
differences of s_n").
"""
from __future__ import annotations

import numpy as np
import pytest

from fdaref import nn
from fdaref.autodiff import Tensor, no_grad
from fdaref.functions import quantize
from fdaref.estimators import fourier_series
from fdaref.gradcheck import check_vjp
from fdaref.noise import noise_forward
from fdaref.presets import BinaryOptions
from fdaref.reference import REFERENCE

TOL = 1e-7


class SmoothTwin:
    """The reference op table with sign -> s_n (Eq. 9) in the quantizer and the weight scale frozen."""

    def __init__(self, n: int = 9, omega: float = 0.1):
        self.n, self.omega = n, omega
        self.scales: list[np.ndarray] = []
        self.calls = 0

    def __getattr__(self, name):
        return getattr(REFERENCE, name)

    def quantize_forward(self, t, w1, w2, *, alpha, zero, layout, eta_kind, a, training):
        z = fourier_series(t, self.n, self.omega)
        if training and alpha != 0 and w1 is not None:
            z = z + alpha * noise_forward(t, w1, w2, layout=layout, eta_kind=eta_kind, a=a)
        return z

    def weight_scale(self, w, mode):
        # the i-th call of a forward pass gets the scale computed at the base point: s is a constant
        if self.calls == len(self.scales):
            self.scales.append(REFERENCE.weight_scale(w, mode))
        s = self.scales[self.calls]
        self.calls += 1
        return s


def module_vjp_error(module: nn.Module, x: np.ndarray, rng: np.random.Generator, *, ops=REFERENCE,
                     wrt_x: bool = True, eps: float = 1e-6) -> float:
    """Engine VJP of ``module`` w.r.t. x and every parameter vs central differences of its forward."""
    module.to(ops)
    params = dict(module.named_parameters())
    inputs = {"x": x, **{k: p.numpy() for k, p in params.items()}}

    def load(arrays):
        for k, p in params.items():
            p.data = ops.from_numpy(arrays[k])
        if isinstance(ops, SmoothTwin):
            ops.calls = 0
        return Tensor.from_numpy(arrays["x"], ops, requires_grad=wrt_x)

    def forward(**arrays):
        with no_grad():
            return module(load(arrays)).numpy()

    def vjp(g, **arrays):
        x_t = load(arrays)
        module.zero_grad()
        module(x_t).backward(np.asarray(g))
        return {"x": x_t.grad, **{k: p.grad for k, p in params.items()}}

    wrt = (["x"] if wrt_x else []) + list(params)
    return check_vjp(forward, vjp, inputs, rng, wrt=wrt, eps=eps)


# ---------------------------------------------------------------------------------------------------
# Float layers

@pytest.mark.parametrize("kw", [dict(stride=1, padding=1, bias=True), dict(stride=2, padding=0, bias=False),
                                dict(stride=(2, 1), padding=(1, 2), dilation=2, bias=True)])
def test_conv2d_grad(kw):
    rng = np.random.default_rng(0)
    layer = nn.Conv2d(3, 4, 3, rng=rng, **kw)
    assert module_vjp_error(layer, rng.standard_normal((2, 3, 7, 6)), rng) < TOL


def test_linear_grad():
    rng = np.random.default_rng(1)
    assert module_vjp_error(nn.Linear(5, 4, rng=rng), rng.standard_normal((3, 5)), rng) < TOL
    assert module_vjp_error(nn.Linear(5, 4, bias=False, rng=rng), rng.standard_normal((3, 5)), rng) < TOL


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (3, 3, 4, 5)])
def test_batch_norm_grad(training, shape):
    rng = np.random.default_rng(2)
    bn = nn.BatchNorm(3)
    bn.weight.data = rng.uniform(0.5, 2, 3)
    bn.bias.data = rng.standard_normal(3)
    bn.running_mean.data, bn.running_var.data = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    bn.train(training)
    assert module_vjp_error(bn, rng.standard_normal(shape) * 2 + 1, rng) < TOL


def test_batch_norm_running_stats_are_buffers_updated_in_training_only():
    rng = np.random.default_rng(3)
    bn = nn.BatchNorm(2, momentum=0.1)
    assert [k for k, _ in bn.named_buffers()] == ["running_mean", "running_var"]
    assert [k for k, _ in bn.named_parameters()] == ["weight", "bias"]
    x = rng.standard_normal((8, 2, 3, 3)) * 3 + 5
    bn(Tensor.from_numpy(x))
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), ddof=1)  # unbiased for the running update
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-12)
    bn.eval()
    before = bn.running_mean.numpy().copy()
    y = bn(Tensor.from_numpy(x)).numpy()
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)
    expected = (x - before[None, :, None, None]) / np.sqrt(bn.running_var.numpy()[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_activations_and_pools_grad():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 6, 6))
    for layer in [nn.ReLU(), nn.PReLU(), nn.MaxPool2d(2), nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2),
                  nn.AvgPool2d(3, 1, 1), nn.GlobalAvgPool(), nn.Flatten()]:
        assert module_vjp_error(layer, x, rng) < TOL, layer


def test_prelu_one_slope_init():
    p = nn.PReLU()
    assert p.weight.shape == (1,) and p.weight.numpy()[0] == 0.25
    y = p(Tensor.from_numpy(np.array([[-2.0, 3.0]]))).numpy()
    np.testing.assert_array_equal(y, [[-0.5, 3.0]])


def test_sequential_grad_and_indexing():
    rng = np.random.default_rng(5)
    seq = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=rng), nn.BatchNorm(3), nn.PReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(12, 4, rng=rng))
    assert len(seq) == 6 and isinstance(seq[-1], nn.Linear)
    assert [k for k, _ in seq.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight",
                                                      "5.weight", "5.bias"]
    assert module_vjp_error(seq, rng.standard_normal((3, 2, 4, 4)), rng) < TOL


# ---------------------------------------------------------------------------------------------------
# Binary layers

@pytest.mark.parametrize("options", [BinaryOptions(), BinaryOptions(eta="linear", k=2),
                                     BinaryOptions(noise=False, scale="layer")])
def test_binary_conv2d_grad_on_smooth_twin(options):
    rng = np.random.default_rng(6)
    layer = nn.BinaryConv2d(4, 3, 3, stride=2, padding=1, bias=True, options=options, rng=rng)
    assert layer.params["n"] == 9
    assert module_vjp_error(layer, rng.standard_normal((2, 4, 5, 5)) * 5, rng, ops=SmoothTwin()) < TOL


@pytest.mark.parametrize("options", [BinaryOptions(), BinaryOptions(k=3, scale="none"), BinaryOptions(noise=False)])
def test_binary_linear_grad_on_smooth_twin(options):
    rng = np.random.default_rng(7)
    layer = nn.BinaryLinear(7, 4, options=options, rng=rng)
    assert module_vjp_error(layer, rng.standard_normal((5, 7)) * 5, rng, ops=SmoothTwin()) < TOL


def test_smooth_twin_would_catch_a_scale_gradient_bug():
    """Guard for the test itself: without the frozen s, finite differences differ from the engine (which
    treats s as a constant, SEMANTICS 5), so the twin's freezing is what makes the check above meaningful."""
    class Unfrozen(SmoothTwin):
        def weight_scale(self, w, mode):
            return REFERENCE.weight_scale(w, mode)
    rng = np.random.default_rng(8)
    layer = nn.BinaryLinear(6, 3, options=BinaryOptions(noise=False), rng=rng)
    assert module_vjp_error(layer, rng.standard_normal((4, 6)), rng, ops=Unfrozen()) > 1e-4


# -- the quantizer vs SEMANTICS 4, computed independently ----------------------------------------------------

def _rows(x, layout):
    """SEMANTICS 3 rows: one per pixel for NCHW activations, one per output unit for weights."""
    if layout == "activation" and x.ndim == 4:
        return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
    return x.reshape(x.shape[0], -1)


def _unrows(r, shape, layout):
    if layout == "activation" and len(shape) == 4:
        b, c, h, w = shape
        return np.moveaxis(r.reshape(b, h, w, c), -1, 1)
    return r.reshape(shape)


def _spec4(g, t, w1, w2, alpha, n, omega, a, layout):
    """SEMANTICS 4 / Eq. 10 / Eq. 13 in plain numpy: (dt, dW1, dW2)."""
    def rows(x):
        return _rows(x, layout)

    def unrows(r):
        return _unrows(r, t.shape, layout)

    fda_prime = 4 * omega / np.pi * sum(np.cos((2 * i + 1) * omega * t) for i in range(n + 1))
    T_, G = rows(t), rows(g)
    h = T_ @ w1
    gh = (G @ w2.T) * (h > 0)
    de_t = unrows(gh @ w1.T) + g * a * np.cos(t)          # (de/dt)^T g with eta = a sin
    return g * fda_prime + alpha * de_t, alpha * T_.T @ gh, alpha * np.maximum(h, 0).T @ G


@pytest.mark.parametrize("layout,shape", [("weight", (6, 3, 3, 3)), ("weight", (5, 70)),
                                          ("activation", (2, 65, 3, 4)), ("activation", (4, 9))])
def test_quantize_backward_equals_spec4(layout, shape):
    rng = np.random.default_rng(9)
    t = rng.standard_normal(shape) * 3
    d = int(np.prod(shape[1:])) if layout == "weight" else shape[1]
    m = max(1, d // 64)
    w1, w2 = rng.standard_normal((d, m)), rng.standard_normal((m, d))
    alpha, n = 0.07, 11
    tt, t1, t2 = (Tensor.from_numpy(v, requires_grad=True) for v in (t, w1, w2))
    z = quantize(tt, t1, t2, alpha=alpha, zero=-1.0, estimator="fda", params={"n": n, "omega": 0.1, "clip": None},
                 layout=layout, eta_kind="sin", a=0.1, training=True)
    # forward: Eq. 14
    e = _unrows(np.maximum(_rows(t, layout) @ w1, 0) @ w2, shape, layout) + 0.1 * np.sin(t)
    np.testing.assert_allclose(z.numpy(), np.where(t > 0, 1.0, -1.0) + alpha * e, rtol=1e-12, atol=1e-14)
    g = rng.standard_normal(shape)
    z.backward(g)
    dt, dw1, dw2 = _spec4(g, t, w1, w2, alpha, n, 0.1, 0.1, layout)
    np.testing.assert_allclose(tt.grad, dt, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(t1.grad, dw1, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(t2.grad, dw2, rtol=1e-12, atol=1e-13)


def test_quantize_noise_part_vs_finite_differences():
    """dL/dt minus the surrogate term, and dW1, dW2, are the exact derivatives of alpha * e(t)."""
    rng = np.random.default_rng(10)
    t0 = rng.standard_normal((3, 70))
    kw = dict(alpha=0.3, zero=-1.0, estimator="fda", params={"n": 9, "omega": 0.1, "clip": None},
              layout="weight", eta_kind="sin", a=0.1, training=True)

    def forward(t, w1, w2):  # sign(t) is constant under the small perturbations (no t near 0)
        with no_grad():
            return quantize(*(Tensor.from_numpy(v) for v in (t, w1, w2)), **kw).numpy()

    def vjp(g, t, w1, w2):
        ts = [Tensor.from_numpy(v, requires_grad=True) for v in (t, w1, w2)]
        quantize(*ts, **kw).backward(g)
        from fdaref.estimators import fda
        return ts[0].grad - g * fda(t, 9, 0.1), ts[1].grad, ts[2].grad

    inputs = {"t": t0, "w1": rng.standard_normal((70, 1)), "w2": rng.standard_normal((1, 70))}
    assert check_vjp(forward, vjp, inputs, rng) < TOL


# -- modes, construction, schedule ------------------------------------------------------------------------

def _sign(x):
    return np.where(x > 0, 1.0, -1.0)


def test_eval_mode_is_pure_sign_and_ignores_noise_module():
    rng = np.random.default_rng(11)
    layer = nn.BinaryConv2d(3, 4, 3, padding=1, options=BinaryOptions(pad_value=-1.0), rng=rng).eval()
    x = rng.standard_normal((2, 3, 5, 5))
    w = layer.weight.numpy()
    s = np.abs(w).mean(axis=(1, 2, 3), keepdims=True)
    expected = REFERENCE.conv2d_forward(_sign(x), _sign(w) * s, None, stride=(1, 1), padding=(1, 1),
                                        dilation=(1, 1), pad_value=-1.0)
    y = layer(Tensor.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-13)
    layer.a_noise1.data = layer.a_noise1.data * 100.0  # the module is not evaluated in eval mode
    layer.w_noise2.data = layer.w_noise2.data * 100.0
    np.testing.assert_array_equal(layer(Tensor.from_numpy(x)).numpy(), y)
    layer.train()
    assert np.abs(layer(Tensor.from_numpy(x)).numpy() - y).max() > 1e-3  # training adds alpha * e(t)


def test_eval_backward_is_that_of_sign_the_module_gets_no_gradient():
    """SEMANTICS 4: in eval z = sign(t), so dL/dt = g fda'(t) and the module's gradients are 0."""
    from fdaref.estimators import fda
    rng = np.random.default_rng(13)
    t, g = rng.standard_normal((2, 70)), rng.standard_normal((2, 70))
    w1, w2 = rng.standard_normal((70, 1)), rng.standard_normal((1, 70))
    kw = dict(alpha=0.3, zero=-1.0, estimator="fda", params={"n": 9, "omega": 0.1, "clip": None},
              layout="weight", eta_kind="sin", a=0.1, training=False)
    ts = [Tensor.from_numpy(v, requires_grad=True) for v in (t, w1, w2)]
    quantize(*ts, **kw).backward(g)
    np.testing.assert_allclose(ts[0].grad, g * fda(t, 9, 0.1), rtol=1e-13)
    assert not ts[1].grad.any() and not ts[2].grad.any()


def test_binary_linear_eval_is_pure_sign_with_layer_scale():
    rng = np.random.default_rng(12)
    layer = nn.BinaryLinear(6, 3, options=BinaryOptions(scale="layer", zero=1.0), rng=rng).eval()
    x = rng.standard_normal((4, 6))
    x[0, 0] = 0.0
    w = layer.weight.numpy()
    sx = np.where(x >= 0, 1.0, -1.0)  # zero = +1
    expected = sx @ (np.where(w >= 0, 1.0, -1.0) * np.abs(w).mean()).T + layer.bias.numpy()
    np.testing.assert_allclose(layer(Tensor.from_numpy(x)).numpy(), expected, rtol=1e-13)


def test_all_parameters_exist_at_construction():
    rng = np.random.default_rng(13)
    conv = nn.BinaryConv2d(16, 32, 3, rng=rng)
    assert {k: p.shape for k, p in conv.named_parameters()} == {
        "weight": (32, 16, 3, 3), "w_noise1": (144, 2), "w_noise2": (2, 144),
        "a_noise1": (16, 1), "a_noise2": (1, 16)}
    lin = nn.BinaryLinear(130, 5, options=BinaryOptions(k=64), rng=rng)
    assert {k: p.shape for k, p in lin.named_parameters()} == {
        "weight": (5, 130), "bias": (5,), "w_noise1": (130, 2), "w_noise2": (2, 130),
        "a_noise1": (130, 2), "a_noise2": (2, 130)}
    plain = nn.BinaryConv2d(4, 4, 3, options=BinaryOptions(noise=False), rng=rng)
    assert [k for k, _ in plain.named_parameters()] == ["weight"]
    assert plain.alpha == 0.0


def test_noise_init_is_zero_mean_uniform_with_spec3_bounds():
    rng = np.random.default_rng(14)
    conv = nn.BinaryConv2d(64, 8, 3, options=BinaryOptions(k=8), rng=rng)
    w1, w2 = conv.w_noise1.numpy(), conv.w_noise2.numpy()
    d, m = 576, 72
    assert w1.shape == (d, m) and np.abs(w1).max() <= 1 / np.sqrt(d) and abs(w1.mean()) < 0.05 / np.sqrt(d)
    assert w2.shape == (m, d) and np.abs(w2).max() <= 1 / np.sqrt(m)


def test_set_schedule_follows_spec6():
    model = nn.tiny(options=BinaryOptions())
    layers = nn.binary_layers(model)
    assert len(layers) == 2
    for e in (0, 3, 9):
        info = nn.set_schedule(model, e, 10)
        for layer in layers:
            assert layer.params["n"] == 9 + (9 * e) // 9
            assert layer.alpha == pytest.approx(0.05 * (1 + np.cos(np.pi * (e + 1) / 10)), abs=1e-15)
        assert info == {"n": layers[0].params["n"], "alpha": layers[0].alpha}
    assert layers[0].alpha == 0.0 and layers[0].params["n"] == 18
    bib = nn.tiny(options=BinaryOptions(n_schedule="bibench"))
    nn.set_schedule(bib, 9, 10)
    assert nn.binary_layers(bib)[0].params["n"] == 17


def test_alpha_zero_in_training_equals_sign():
    rng = np.random.default_rng(15)
    layer = nn.BinaryLinear(5, 3, rng=rng)
    x = Tensor.from_numpy(rng.standard_normal((2, 5)))
    layer.alpha = 0.0
    y_train = layer(x).numpy()
    np.testing.assert_array_equal(y_train, layer.eval()(x).numpy())


def test_seeded_init_and_float32():
    a, b = nn.tiny(seed=3), nn.tiny(seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and np.array_equal(va, vb)
    c = nn.tiny(seed=4)
    assert not np.array_equal(a.state_dict()["0.weight"], c.state_dict()["0.weight"])
    f32 = nn.tiny(seed=3, dtype=np.float32)
    assert all(v.dtype == np.float32 for v in f32.state_dict().values())
    np.testing.assert_allclose(f32.state_dict()["4.weight"], a.state_dict()["4.weight"], rtol=1e-6)
    x = Tensor.from_numpy(np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32))
    loss = f32(x).sum()
    loss.backward()
    assert all(p.grad.dtype == np.float32 for p in f32.parameters())
