"""Models: shapes, parameter counts, the option-A shortcut, state_dict round trips, summary, moving."""
from __future__ import annotations

import numpy as np
import pytest

from fdaref import nn
from fdaref.autodiff import Tensor, no_grad
from fdaref.functions import cross_entropy
from fdaref.presets import BinaryOptions
from fdaref.reference import REFERENCE

# (C_in, C_out, stride) of ResNet-20's 18 binary convs, written out (SEMANTICS 8: 3 stages x 3 blocks x 2 convs)
RESNET20_CONVS = ([(16, 16, 1)] * 6 + [(16, 32, 2)] + [(32, 32, 1)] * 5 + [(32, 64, 2)] + [(64, 64, 1)] * 5)


def noise_params(d, k=64):
    """SEMANTICS 3: W1 (d, m) and W2 (m, d) with m = max(1, d // k)."""
    return 2 * d * max(1, d // k)


def _x(shape, seed=0):
    return Tensor.from_numpy(np.random.default_rng(seed).standard_normal(shape))


def test_resnet20_shapes_and_parameter_counts():
    model = nn.resnet20()
    with no_grad():
        assert model(_x((2, 3, 32, 32))).shape == (2, 10)
    binary = sum(ci * co * 9 for ci, co, _ in RESNET20_CONVS)
    noise = sum(noise_params(ci * 9) + noise_params(ci) for ci, _, _ in RESNET20_CONVS)
    bn = 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64)
    float_ = 3 * 16 * 9 + bn + 18 + 64 * 10 + 10  # stem, 19 BN, 18 one-slope PReLUs, FC
    assert nn.count_params(model) == {"binary": binary, "float": float_, "noise": noise}
    assert binary + float_ == 269_740  # the classic ResNet-20 size (0.27 M)
    assert noise == 2 * (6 * 16 * 9 * 2 + 6 * 16 * 1) + 2 * (16 * 9 * 2 + 16 + 5 * (32 * 9 * 4 + 32)) \
        + 2 * (32 * 9 * 4 + 32 + 5 * (64 * 9 * 9 + 64))  # m = 2, 4, 9 for d = 144, 288, 576; m = 1 for d <= 64
    fp = nn.resnet20(binary=False)
    assert nn.count_params(fp) == {"binary": 0, "float": 269_740, "noise": 0}
    assert not nn.binary_layers(fp)
    assert len(nn.binary_layers(nn.resnet20(options=BinaryOptions(noise=False)))) == 18
    assert nn.count_params(nn.resnet20(options=BinaryOptions(noise=False)))["noise"] == 0


def test_resnet20_structure_follows_spec8():
    model = nn.resnet20(in_channels=1, num_classes=7)
    convs = [m for m in model.modules() if isinstance(m, nn.BinaryConv2d)]
    assert [(m.in_channels, m.out_channels, m.stride[0]) for m in convs] == RESNET20_CONVS
    block = model.layers[0]
    assert isinstance(block.act1, nn.PReLU) and block.act1.weight.numpy().tolist() == [0.25]
    assert isinstance(model.conv1, nn.Conv2d) and isinstance(model.fc, nn.Linear)
    with no_grad():
        assert model(_x((1, 1, 16, 16))).shape == (1, 7)


def test_option_a_shortcut():
    rng = np.random.default_rng(1)
    block = nn.BasicBlock(16, 32, 2, binary=True, options=BinaryOptions(), rng=rng, dtype=np.float64)
    x_np = rng.standard_normal((2, 16, 8, 8))
    x = Tensor.from_numpy(x_np, requires_grad=True)
    sc = block.shortcut(x)
    assert sc.shape == (2, 32, 4, 4)
    expected = np.zeros((2, 32, 4, 4))
    expected[:, 8:24] = x_np[:, :, ::2, ::2]
    np.testing.assert_array_equal(sc.numpy(), expected)
    g = rng.standard_normal(sc.shape)
    sc.backward(g)
    dx = np.zeros_like(x_np)
    dx[:, :, ::2, ::2] = g[:, 8:24]
    np.testing.assert_array_equal(x.grad, dx)
    # the block adds the shortcut to the residual branch; no parameters in the shortcut
    same = nn.BasicBlock(16, 16, 1, binary=True, options=BinaryOptions(), rng=rng, dtype=np.float64)
    assert same.shortcut(x) is x
    with no_grad():
        out = block(x).numpy()
        branch = block.bn2(block.act2(block.conv2(block.bn1(block.act1(block.conv1(x)))))).numpy()
    np.testing.assert_allclose(out - branch, expected, atol=1e-12)


def test_vgg_small_shapes_and_counts():
    model = nn.vgg_small(image_size=16)
    convs = [(3, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
    counts = nn.count_params(model)
    assert counts["binary"] == sum(ci * co * 9 for ci, co in convs[1:])
    assert counts["float"] == 3 * 128 * 9 + 2 * sum(co for _, co in convs) + 6 + 512 * 2 * 2 * 10 + 10
    assert counts["noise"] == sum(noise_params(ci * 9) + noise_params(ci) for ci, _ in convs[1:])
    assert len(nn.binary_layers(model)) == 5
    assert isinstance(model[0], nn.Conv2d) and isinstance(model[len(model) - 1], nn.Linear)
    model.eval()
    with no_grad():
        assert model(_x((1, 3, 16, 16))).shape == (1, 10)
    assert nn.count_params(nn.vgg_small())["float"] == counts["float"] + 512 * 10 * 12  # 4x4 maps at 32 px


def test_tiny_float_variant_has_same_architecture():
    b, f = nn.tiny(), nn.tiny(binary=False)
    assert [k for k, _ in b.named_parameters() if "noise" not in k] == [k for k, _ in f.named_parameters()]
    assert [p.shape for k, p in b.named_parameters() if "noise" not in k] == [p.shape for p in f.parameters()]


def _train_steps(model, steps=2, seed=0):
    from fdaref.optim import SGD
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = Tensor.from_numpy(rng.standard_normal((4, 1, 8, 8)))
        loss = cross_entropy(model(x), rng.integers(0, 10, 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_state_dict_round_trip_gives_identical_outputs():
    a = _train_steps(nn.tiny(seed=0))  # trained a little so weights and running stats moved from init
    b = nn.tiny(seed=1)
    b.load_state_dict(a.state_dict())
    x = _x((3, 1, 8, 8), seed=5)
    for mode in ("eval", "train"):
        getattr(a, mode)(), getattr(b, mode)()
        with no_grad():
            np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    # the state dict is a copy, not a view
    sd = a.state_dict()
    sd["0.weight"][...] = 0
    assert a.state_dict()["0.weight"].any()


def test_load_state_dict_errors_name_the_problem():
    model = nn.tiny()
    sd = model.state_dict()
    missing = {k: v for k, v in sd.items() if k != "2.weight"}
    with pytest.raises(KeyError, match=r"missing keys \['2.weight'\]"):
        model.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected keys \['extra'\]"):
        model.load_state_dict({**sd, "extra": np.zeros(1)})
    model.load_state_dict({**sd, "extra": np.zeros(1)}, strict=False)
    bad = dict(sd)
    bad["0.weight"] = np.zeros((1, 2, 3))
    before = model.state_dict()["1.running_var"].copy()
    with pytest.raises(ValueError, match=r"0.weight: checkpoint \(1, 2, 3\) vs model \(16, 1, 3, 3\)"):
        model.load_state_dict({**bad, "1.running_var": before + 1})
    np.testing.assert_array_equal(model.state_dict()["1.running_var"], before)  # nothing changed


def test_state_dict_keys_in_construction_order():
    model = nn.resnet20()
    keys = list(model.state_dict())
    assert keys[:5] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"]
    assert keys[5:10] == ["layers.0.conv1.weight", "layers.0.conv1.w_noise1", "layers.0.conv1.w_noise2",
                          "layers.0.conv1.a_noise1", "layers.0.conv1.a_noise2"]
    assert keys[-2:] == ["fc.weight", "fc.bias"]


def test_to_casts_and_moves_in_place():
    model = nn.tiny(seed=2)
    p0 = model.parameters()[0]
    model.to(REFERENCE, dtype=np.float32)
    assert model.parameters()[0] is p0 and p0.dtype == np.float32
    assert all(v.dtype == np.float32 for v in model.state_dict().values())
    with no_grad():
        y32 = model(Tensor.from_numpy(np.ones((1, 1, 8, 8), np.float32), REFERENCE)).numpy()
    assert y32.dtype == np.float32


@pytest.mark.parametrize("backend", ["torch"])
def test_same_seed_same_outputs_on_another_backend(backend):
    from fdaref.backend_loader import BackendUnavailable, load_backend
    try:
        ops = load_backend(backend)
    except (BackendUnavailable, LookupError) as exc:
        pytest.skip(f"{backend} backend not available here: {exc}")
    # training mode: in eval mode a binary conv often outputs exact zeros (equal counts of +-s), and
    # BN with its initial running stats keeps them at ~1e-16, where the next sign is a coin flip between
    # backends (SEMANTICS 9's band around 0); batch statistics move them away from 0.
    ref = nn.tiny(seed=7)
    other = nn.tiny(seed=7).to(ops)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    with no_grad():
        y_ref = ref(Tensor.from_numpy(x)).numpy()
        y = other(Tensor.from_numpy(x, ops)).numpy()
    np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-9)


def test_summary_counts_macs_and_sizes():
    model = nn.resnet20()
    s = nn.summary(model, (1, 3, 32, 32))
    size = {16: 32, 32: 16, 64: 8}
    binary_macs = sum(co * size[co] ** 2 * ci * 9 for ci, co, _ in RESNET20_CONVS)
    assert s.macs == {"binary": binary_macs, "float": 16 * 32 * 32 * 27 + 64 * 10}
    assert s.params == nn.count_params(model)
    assert s.float32_bytes == 4 * sum(s.params.values())
    assert s.packed_bytes == (s.params["binary"] + 7) // 8 + 4 * (s.params["float"] + 16 * 6 + 32 * 6 + 64 * 6)
    text = s.table()
    assert "layers.3.conv1" in text and "binary parameters" in text and "packed size" in text
    assert model.training  # the trace ran in eval mode and restored the mode


# -- whole-model gradients on the smooth twin (sign -> s_n, frozen scale; see test_layers) ---------------

@pytest.mark.parametrize("in_planes,planes,stride", [(4, 4, 1), (4, 8, 2)])
def test_basic_block_grad_on_smooth_twin(in_planes, planes, stride):
    from test_layers import SmoothTwin, module_vjp_error
    rng = np.random.default_rng(20)
    block = nn.BasicBlock(in_planes, planes, stride, binary=True, options=BinaryOptions(k=2), rng=rng,
                          dtype=np.float64)
    assert module_vjp_error(block, rng.standard_normal((3, in_planes, 4, 4)) * 3, rng, ops=SmoothTwin()) < 1e-7


@pytest.mark.parametrize("build", [lambda: nn.tiny(width=4, options=BinaryOptions(k=4)),
                                   lambda: nn.resnet20(in_channels=1, num_classes=3)])
def test_whole_model_grad_on_smooth_twin(build):
    from test_layers import SmoothTwin, module_vjp_error
    rng = np.random.default_rng(21)
    model = build()
    # eps 1e-8: ResNet-20 has ~10^5 (P)ReLU inputs; with eps 1e-6 a few of them cross their kink inside
    # the finite-difference step (the error then shrinks linearly with eps, not quadratically)
    err = module_vjp_error(model, rng.standard_normal((3, 1, 8, 8)) * 3, rng, ops=SmoothTwin(), eps=1e-8)
    assert err < 1e-6


# -- resnet20 forward written out in plain numpy (SEMANTICS 5 and 8), nothing from fdaref but the state dict --

def _np_conv(x, w, stride, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride], w[:, :, i, j])
    return out


def _np_bn_eval(x, sd, name):
    col = (1, -1, 1, 1)
    return ((x - sd[f"{name}.running_mean"].reshape(col)) / np.sqrt(sd[f"{name}.running_var"].reshape(col) + 1e-5)
            * sd[f"{name}.weight"].reshape(col) + sd[f"{name}.bias"].reshape(col))


def _np_binary_conv(x, w, stride):
    sign = lambda v: np.where(v > 0, 1.0, -1.0)  # noqa: E731  (zero -1, the paper preset)
    s = np.abs(w).mean(axis=(1, 2, 3), keepdims=True)  # channel scale
    return _np_conv(sign(x), sign(w) * s, stride, 1)


def _np_prelu(x, slope):
    return np.where(x > 0, x, slope[0] * x)


def numpy_resnet20_eval(x, sd):
    """Eval-mode resnet20: FP stem + BN; 3 stages x 3 blocks at 16/32/64 channels (stride 2 entering stages
    2 and 3); block out = BN(PReLU(BinConv(x))), BN(PReLU(BinConv(out))), + option-A shortcut; head ReLU,
    global average pool, FP linear."""
    out = _np_bn_eval(_np_conv(x, sd["conv1.weight"], 1, 1), sd, "bn1")
    block, in_planes = 0, 16
    for planes, first_stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            stride, p = (first_stride if i == 0 else 1), f"layers.{block}"
            y = _np_bn_eval(_np_prelu(_np_binary_conv(out, sd[f"{p}.conv1.weight"], stride), sd[f"{p}.act1.weight"]),
                            sd, f"{p}.bn1")
            y = _np_bn_eval(_np_prelu(_np_binary_conv(y, sd[f"{p}.conv2.weight"], 1), sd[f"{p}.act2.weight"]),
                            sd, f"{p}.bn2")
            short = out[:, :, ::stride, ::stride]
            extra = planes - in_planes
            short = np.pad(short, ((0, 0), (extra // 2, extra - extra // 2), (0, 0), (0, 0)))
            out, in_planes, block = y + short, planes, block + 1
    features = np.maximum(out, 0).mean(axis=(2, 3))
    return features @ sd["fc.weight"].T + sd["fc.bias"]


@pytest.mark.parametrize("ops_name", ["reference", "numpy"])
def test_resnet20_matches_a_numpy_forward_written_in_the_test(ops_name):
    from fdaref.backend_loader import load_backend
    model = nn.resnet20(in_channels=2, num_classes=5, seed=3)
    rng = np.random.default_rng(4)
    sd = model.state_dict()
    for k in sd:  # BN statistics and affine parameters away from their init, so nothing is degenerate
        if k.endswith(("running_mean", "bias")) and "bn" in k:
            sd[k] = rng.normal(0, 0.3, sd[k].shape)
        elif k.endswith(("running_var", "weight")) and "bn" in k:
            sd[k] = rng.uniform(0.5, 1.5, sd[k].shape)
        elif k.endswith("act1.weight") or k.endswith("act2.weight"):
            sd[k] = rng.uniform(0.1, 0.4, 1)
    model.load_state_dict(sd)
    model.to(load_backend(ops_name)).eval()
    x = rng.standard_normal((2, 2, 12, 12))
    with no_grad():
        got = model(Tensor.from_numpy(x, model.fc.weight.ops)).numpy()
    np.testing.assert_allclose(got, numpy_resnet20_eval(x, sd), rtol=1e-9, atol=1e-9)
