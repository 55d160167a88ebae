"""Every constant and default of SEMANTICS (docs/SEMANTICS.md) as a literal number, through the public API:
a default that drifts (beta 5 -> 4, omega 0.1 -> 0.2, k 64 -> 32, a 0.1 -> 0.2, ...) fails here by name."""
import math

import numpy as np
import pytest

from fdaref import nn
from fdaref.binarize import ZERO_CONVENTIONS, sign
from fdaref.estimators import estimator_grad, fda_peak, get_estimator
from fdaref.noise import eta, eta_grad, noise_width
from fdaref.presets import PRESETS, BinaryOptions
from fdaref.reference import REFERENCE
from fdaref.schedules import alpha_cosine, n_bibench, n_linear

X = np.linspace(-3.0, 3.0, 61)


def test_sign_default_zero_is_minus_one_and_the_three_conventions():
    assert ZERO_CONVENTIONS == (-1.0, 0.0, 1.0)
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.nan])
    for f in (lambda v: sign(v), lambda v: REFERENCE.sign(v)):
        np.testing.assert_array_equal(f(x), [-1.0, -1.0, -1.0, 1.0, np.nan])
    np.testing.assert_array_equal(sign(x, 0.0), [-1.0, 0.0, 0.0, 1.0, np.nan])
    np.testing.assert_array_equal(sign(x, 1.0), [-1.0, 1.0, 1.0, 1.0, np.nan])
    tiny = np.array([5e-324, -5e-324, 1e-45], dtype=np.float64)  # subnormals are ordinary nonzero numbers
    np.testing.assert_array_equal(sign(tiny), [1.0, -1.0, 1.0])
    np.testing.assert_array_equal(sign(np.array([1e-45], np.float32)), [1.0])


def test_sign_swish_default_beta_is_5():
    assert get_estimator("sign_swish").defaults == {"beta": 5.0}
    expected = 5 * (2 - 5 * X * np.tanh(5 * X / 2)) / (1 + np.cosh(5 * X))
    np.testing.assert_allclose(estimator_grad(X, "sign_swish"), expected, rtol=1e-13, atol=1e-15)


def test_tanh_default_beta_is_2():
    assert get_estimator("tanh").defaults == {"beta": 2.0}
    np.testing.assert_allclose(estimator_grad(X, "tanh"), 2 * (1 - np.tanh(2 * X) ** 2), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", ["fda", "fda_series"])
def test_fda_defaults_are_n_9_omega_0_1_no_clip(name):
    assert get_estimator(name).defaults == {"n": 9, "omega": 0.1, "clip": None}
    x = np.linspace(-40.0, 40.0, 81)  # omega matters away from 0; no clip: |x| > 1 keeps its gradient
    expected = 4 * 0.1 / math.pi * sum(np.cos((2 * i + 1) * 0.1 * x) for i in range(10))
    np.testing.assert_allclose(estimator_grad(x, name), expected, rtol=0, atol=1e-12)
    assert fda_peak(9, 0.1) == pytest.approx(4 * 0.1 / math.pi * 10, rel=1e-15)


def test_clipped_ste_and_approx_sign_constants():
    x = np.array([-1.5, -1.0, -0.25, 0.0, 0.5, 1.0, 1.0000001])
    np.testing.assert_array_equal(estimator_grad(x, "clipped_ste"), [0, 1, 1, 1, 1, 1, 0])
    np.testing.assert_allclose(estimator_grad(x, "approx_sign"), [0, 0, 1.5, 2, 1, 0, 0], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(estimator_grad(x, "ste"), np.ones(7))


def test_noise_module_k_is_64_and_m_never_zero():
    assert [noise_width(d) for d in (1, 63, 64, 127, 128, 576)] == [1, 1, 1, 1, 2, 9]
    assert BinaryOptions().k == 64
    layer = nn.BinaryConv2d(64, 8, 3, rng=np.random.default_rng(0))   # d_w = 576, d_a = 64
    assert layer.w_noise1.shape == (576, 9) and layer.a_noise1.shape == (64, 1)


def test_eta_default_is_sin_with_a_0_1():
    np.testing.assert_allclose(eta(X), 0.1 * np.sin(X), rtol=1e-15)
    np.testing.assert_allclose(eta_grad(X), 0.1 * np.cos(X), rtol=1e-15)
    opts = BinaryOptions()
    assert (opts.eta, opts.a) == ("sin", 0.1)


def test_n_schedule_is_9_to_18_and_bibench_9_plus_floor_9e_over_E():
    assert [n_linear(e, 5) for e in range(5)] == [9, 11, 13, 15, 18]
    assert [n_bibench(e, 5) for e in range(5)] == [9, 10, 12, 14, 16]
    opts = BinaryOptions()
    assert (opts.n_schedule, opts.n_start, opts.n_end) == ("linear", 9, 18)
    assert [opts.n_at(e, 5) for e in range(5)] == [9, 11, 13, 15, 18]
    assert [PRESETS["bibench"].n_at(e, 5) for e in range(5)] == [9, 10, 12, 14, 16]


def test_alpha_0_is_0_1_and_decays_to_0():
    assert [alpha_cosine(e, 4) for e in range(4)] == pytest.approx(
        [0.05 * (1 + math.cos(math.pi * (e + 1) / 4)) for e in range(4)], abs=1e-17)
    assert alpha_cosine(3, 4) == 0.0
    assert BinaryOptions().alpha0 == 0.1
    assert BinaryOptions().alpha_at(0, 4) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)), rel=1e-15)


def test_prelu_init_is_0_25_one_slope_everywhere_in_resnet20():
    model = nn.resnet20(seed=0)
    slopes = [m.weight.numpy() for m in model.modules() if isinstance(m, nn.PReLU)]
    assert len(slopes) == 18 and all(s.shape == (1,) and s[0] == 0.25 for s in slopes)


def test_layer_defaults_are_channel_scale_and_zero_padding():
    opts = BinaryOptions()
    assert (opts.scale, opts.pad_value, opts.zero, opts.estimator, opts.omega, opts.clip, opts.noise) == \
        ("channel", 0.0, -1.0, "fda", 0.1, None, True)
    assert nn.BinaryConv2d(2, 2, 3, rng=np.random.default_rng(0)).options == PRESETS["paper"] == opts


def test_preset_values():
    bib, rel = PRESETS["bibench"], PRESETS["release"]
    assert (bib.zero, bib.omega, bib.clip, bib.n_schedule, bib.scale, bib.pad_value, bib.noise) == \
        (0.0, 0.1, 1.0, "bibench", "channel", 0.0, True)
    assert (rel.zero, rel.estimator, rel.noise, rel.scale) == (0.0, "ste", False, "layer")


def test_batch_norm_defaults_momentum_0_1_eps_1e_5():
    bn = nn.BatchNorm(3)
    assert (bn.momentum, bn.eps) == (0.1, 1e-5)
    np.testing.assert_array_equal(bn.weight.numpy(), [1, 1, 1])
    np.testing.assert_array_equal(bn.bias.numpy(), [0, 0, 0])
    np.testing.assert_array_equal(bn.running_mean.numpy(), [0, 0, 0])
    np.testing.assert_array_equal(bn.running_var.numpy(), [1, 1, 1])
