"""Torch-native modules (fdaref.backends.torch.modules) against the fdaref reference models, and the engine
(fdaref.autodiff) running on the torch op table."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fdaref import autodiff as ad  # noqa: E402
from fdaref import functions as F  # noqa: E402
from fdaref.nn import models as ref_models  # noqa: E402
from fdaref.nn.layers import BinaryConv2d, BinaryLinear, set_schedule  # noqa: E402
from fdaref.presets import BinaryOptions, get_preset  # noqa: E402

from fdaref.backends.torch import backend as TB  # noqa: E402
from fdaref.backends.torch import modules as M  # noqa: E402


def _ref_forward(model, x: np.ndarray, training: bool) -> np.ndarray:
    model.train(training)
    with ad.no_grad():
        return model(ad.Tensor.from_numpy(x)).numpy()


def _torch_forward(model, x: np.ndarray, training: bool) -> np.ndarray:
    model.train(training)
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


# End-to-end comparisons use scale "none": with a channel scale s, a binary conv output that is exactly 0 in
# one summation order (as many +s as -s) is +-1e-17 in another, and the next sign flips (SEMANTICS 9 counts such
# flips in a band around 0). With s = 1 every conv output is an exact integer in both, so outputs agree.
EXACT = BinaryOptions(scale="none")


@pytest.mark.parametrize("training", (False, True))
def test_resnet20_reference_to_torch_and_back(training):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 32, 32))
    ref = ref_models.resnet20(seed=3, options=EXACT)
    tm = M.resnet20(options=EXACT).double()
    M.load_reference_state_dict(tm, ref.state_dict())
    np.testing.assert_allclose(_torch_forward(tm, x, training), _ref_forward(ref, x, training), rtol=1e-9, atol=1e-9)
    # and back: a fresh reference model loads the torch state and agrees
    ref2 = ref_models.resnet20(seed=99, options=EXACT)
    ref2.load_state_dict(M.reference_state_dict(tm))
    np.testing.assert_allclose(_ref_forward(ref2, x, training), _torch_forward(tm, x, training), rtol=1e-9, atol=1e-9)


def test_vgg_small_torch_to_reference():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 16, 16))
    opts = get_preset("bibench").with_(scale="none")
    tm = M.vgg_small(options=opts, image_size=16, seed=5).double()
    ref = ref_models.vgg_small(options=opts, image_size=16, seed=0)
    assert list(M.reference_state_dict(tm)) == list(ref.state_dict())
    ref.load_state_dict(M.reference_state_dict(tm))
    for training in (False, True):
        np.testing.assert_allclose(_ref_forward(ref, x, training), _torch_forward(tm, x, training),
                                   rtol=1e-9, atol=1e-9)


def test_default_state_dict_round_trip_is_exact():
    tm = M.resnet20(seed=1).double()
    ref = ref_models.resnet20(seed=2)
    ref.load_state_dict(M.reference_state_dict(tm))
    tm2 = M.resnet20(seed=3).double()
    M.load_reference_state_dict(tm2, ref.state_dict())
    for (k1, v1), (k2, v2) in zip(tm.state_dict().items(), tm2.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2), k1


def test_release_preset_has_no_noise_keys():
    tm = M.resnet20(options=get_preset("release"))
    keys = list(M.reference_state_dict(tm))
    assert not any("noise" in k for k in keys)
    assert keys == list(ref_models.resnet20(options=get_preset("release")).state_dict())


def test_load_reference_state_dict_strict():
    tm = M.resnet20()
    state = M.reference_state_dict(tm)
    state.pop("fc.bias")
    with pytest.raises(KeyError, match="fc.bias"):
        M.load_reference_state_dict(tm, state)


def test_parameters_exist_from_construction():
    layer = M.FDAConv2d(8, 4, 3, padding=1, options=BinaryOptions(k=4))
    names = dict(layer.named_parameters())
    assert set(names) == {"weight", "w_quant.noise.w1", "w_quant.noise.w2", "a_quant.noise.w1", "a_quant.noise.w2"}
    assert names["w_quant.noise.w1"].shape == (72, 18) and names["a_quant.noise.w1"].shape == (8, 2)
    assert M.FDALinear(10, 3).a_quant.noise.w1.shape == (10, 1)  # m = max(1, d // 64)


def _grads_match(options: BinaryOptions, layer_kind: str) -> None:
    """One binary layer: forward and every gradient of the torch module equal the engine on the reference."""
    rng = np.random.default_rng(7)
    if layer_kind == "conv":
        ref = BinaryConv2d(3, 4, 3, 1, 1, options=options, rng=rng)
        tm = M.FDAConv2d(3, 4, 3, 1, 1, options=options).double()
        x = rng.standard_normal((2, 3, 5, 5))
    else:
        ref = BinaryLinear(6, 4, options=options, rng=rng)
        tm = M.FDALinear(6, 4, options=options).double()
        x = rng.standard_normal((3, 6))
    M.load_reference_state_dict(tm, ref.state_dict())
    ref.set_schedule(1, 3)
    for q in (tm.w_quant, tm.a_quant):
        q.set_schedule(1, 3)
    g = rng.standard_normal(_ref_forward(ref, x, True).shape)
    xr = ad.Tensor.from_numpy(x, requires_grad=True)
    ref.train()
    yr = ref(xr)
    (yr * ad.Tensor.from_numpy(g)).sum().backward()
    xt = torch.from_numpy(x).requires_grad_(True)
    tm.train()
    yt = tm(xt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(yt.detach().numpy(), yr.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(xt.grad.numpy(), np.asarray(xr.grad),
                               rtol=1e-9, atol=1e-10)
    ref_grads = {k: np.asarray(p.grad) for k, p in ref.named_parameters()}
    torch_grads = {M._rename(k, M._TO_REF): p.grad.numpy() for k, p in tm.named_parameters()}
    assert set(ref_grads) == set(torch_grads)
    for k in ref_grads:
        np.testing.assert_allclose(torch_grads[k], ref_grads[k], rtol=1e-9, atol=1e-10, err_msg=k)


@pytest.mark.parametrize("kind", ("conv", "linear"))
@pytest.mark.parametrize("preset", ("paper", "bibench", "release"))
def test_layer_gradients_match_engine(kind, preset):
    _grads_match(get_preset(preset).with_(k=2), kind)


def test_pad_value_layer_matches_reference():
    _grads_match(BinaryOptions(pad_value=-1.0, k=2), "conv")


def test_schedule_callback_matches_reference_schedule():
    opts = BinaryOptions()
    tm = M.resnet20(options=opts)
    ref = ref_models.resnet20(options=opts)
    cb = M.FDASchedule(tm, epochs=5)
    for epoch in range(5):
        got = cb.on_epoch_start(epoch)
        want = set_schedule(ref, epoch, 5)
        assert got == want
        assert all(m.w_quant.params == m.a_quant.params for m in M.fda_layers(tm))


def _quantize_call(path: str, t, w1, w2, alpha: float, n: int, layout: str, training: bool = True):
    """path "eager": the CPU custom ops (the op table's kernels); "math": the pure tensor math."""
    from fdaref.backends.torch import quantize as Q
    params = (("clip", None), ("omega", 0.1))
    alpha_t, n_t = torch.tensor(alpha, dtype=t.dtype), torch.tensor(n)
    if path == "eager":
        return Q.quantize(t, w1, w2, alpha_t, n_t, zero=-1.0, estimator="fda", params=params,
                          params_json=Q.params_json(params), layout=layout, eta="sin", a=0.1, training=training,
                          n_max=18)
    return Q.QuantizeMath.apply(t, w1, w2, alpha_t, n_t, -1.0, "fda", params, layout, "sin", 0.1, training, 18)


@pytest.mark.parametrize("path", ("eager", "math"))
@pytest.mark.parametrize("layout", ("weight", "activation"))
def test_quantize_backward_is_spec4(path, layout):
    """Both quantizer paths' backward is the SEMANTICS 4 formula: the noise part equals autograd of alpha e(t),
    plus g times the reference fda surrogate; forward is sign(t) + alpha e(t)."""
    torch.manual_seed(0)
    shape, d = ((4, 18), 18) if layout == "weight" else ((2, 130, 3, 3), 130)   # 130 channels: m = 2
    t = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    noise = M.NoiseAdaptation(d, k=64 if layout == "activation" else 4).double()
    g = torch.randn(*shape, dtype=torch.float64)
    alpha = 0.3
    z = _quantize_call(path, t, noise.w1, noise.w2, alpha, 9, layout)
    z.backward(g)
    got = (t.grad.clone(), noise.w1.grad.clone(), noise.w2.grad.clone())
    t.grad = noise.w1.grad = noise.w2.grad = None
    e = noise(t, layout)
    (alpha * (e * g).sum()).backward()
    from fdaref.estimators import fda
    surrogate = torch.from_numpy(fda(t.detach().numpy(), 9, 0.1))
    torch.testing.assert_close(got[0], t.grad + g * surrogate, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[1], noise.w1.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[2], noise.w2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(z.detach(), torch.sign(t.detach()) + alpha * e.detach())


@pytest.mark.parametrize("alpha", (0.0, 0.05))
def test_quantize_paths_agree_in_float32(alpha):
    """The CPU eager kernels and the pure-math path (torch.compile, GPUs) give the same z and gradients in
    float32, on activations with large values (the range reduction) and exact zeros (sign(0) = -1)."""
    torch.manual_seed(1)
    t0 = torch.randn(4, 16, 6, 6) * 30
    t0[0, 0, 0, :3] = 0.0
    noise = M.NoiseAdaptation(16, k=64)
    g = torch.randn_like(t0)
    outs = []
    for path in ("eager", "math"):
        t = t0.clone().requires_grad_(True)
        noise.zero_grad()
        z = _quantize_call(path, t, noise.w1, noise.w2, alpha, 13, "activation")
        z.backward(g)
        outs.append((z.detach(), t.grad, noise.w1.grad.clone(), noise.w2.grad.clone()))
    peak = 4 * 0.1 / np.pi * 14 * g.abs().max()
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=0, atol=float(2e-6 * peak))
    for a, b in zip(outs[0][2:], outs[1][2:]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert torch.equal(outs[0][0][0, 0, 0, :3], torch.full((3,), -1.0))


def test_engine_step_on_torch_matches_reference():
    """fdaref's engine running on the torch op table gives the reference's loss and gradients (float64)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 1, 12, 12))
    labels = rng.integers(0, 10, 4).astype(np.int64)
    results = []
    for ops in (None, TB):
        model = ref_models.tiny(seed=2, width=4)
        if ops is not None:
            model.to(ops, "cpu")
        be = ops or ad.default_ops()
        model.train()
        loss = F.cross_entropy(model(ad.Tensor.from_numpy(x, ops=be)), be.from_numpy(labels))
        loss.backward()
        results.append((float(loss.numpy()), {k: be.to_numpy(p.grad) for k, p in model.named_parameters()}))
    (l0, g0), (l1, g1) = results
    assert abs(l0 - l1) < 1e-10
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=1e-8, atol=1e-10, err_msg=k)


def test_torch_module_trains():
    """A few SGD steps of the torch-native resnet20 reduce the loss on a fixed batch."""
    torch.manual_seed(0)
    model = M.resnet20(num_classes=4, seed=0)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    M.FDASchedule(model, 10).on_epoch_start(0)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("compiled_math", [False, True])
def test_eval_backward_is_that_of_sign_the_module_gets_no_gradient(compiled_math):
    """SEMANTICS 4 in eval: dL/dt = g fda'(t), no gradient for the noise module, on both CPU paths (the
    custom ops eager, the pure tensor math torch.compile traces)."""
    from fdaref.estimators import fda
    from fdaref.backends.torch import quantize as Q
    q = M.FDAQuantizer(16, "activation", generator=torch.Generator().manual_seed(3)).eval()
    t = torch.randn(2, 16, 3, 3, dtype=torch.float64, requires_grad=True)
    q = q.double()
    g = torch.randn(2, 16, 3, 3, dtype=torch.float64)
    if compiled_math:
        o = q.options
        z = Q.QuantizeMath.apply(t, q.noise.w1, q.noise.w2, q.alpha, q.n, float(o.zero), o.estimator,
                                 q._static_params, "activation", o.eta, float(o.a), False, q._n_max)
    else:
        z = q(t)
    z.backward(g)
    want = g.numpy() * fda(t.detach().numpy(), int(q.n), q.options.omega)
    np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-12, atol=1e-12)
    assert q.noise.w1.grad is None and q.noise.w2.grad is None
