"""The FDA quantizer (Eq. 14) against SEMANTICS 4, computed independently."""
import numpy as np
import pytest

from fdaref.noise import init_noise_params
from fdaref.quantizer import quantize_backward, quantize_forward

RNG = np.random.default_rng(11)


def spec4_by_hand(g, t, w1, w2, alpha, n, omega, a):
    """SEMANTICS 4 for layout "weight" on 2-D t, written from the formulas with explicit loops over rows."""
    series = sum(np.cos((2 * i + 1) * omega * t) for i in range(n + 1)) * 4 * omega / np.pi
    dt = g * series
    dw1 = np.zeros_like(w1)
    dw2 = np.zeros_like(w2)
    for r in range(t.shape[0]):
        h = t[r] @ w1
        dh = (w2 @ g[r]) * (h > 0)
        dt[r] += alpha * (w1 @ dh + g[r] * a * np.cos(t[r]))
        dw1 += alpha * np.outer(t[r], dh)
        dw2 += alpha * np.outer(np.maximum(h, 0), g[r])
    return dt, dw1, dw2


def setup(shape=(6, 10), k=4):
    t = RNG.normal(size=shape)
    w1, w2 = init_noise_params(shape[1], k, RNG)
    return t, w1, w2


def test_training_forward_adds_alpha_times_noise():
    t, w1, w2 = setup()
    z = quantize_forward(t, w1, w2, alpha=0.05, layout="weight", eta_kind="sin", a=0.1)
    e = np.maximum(t @ w1, 0) @ w2 + 0.1 * np.sin(t)
    np.testing.assert_allclose(z, np.where(t > 0, 1.0, -1.0) + 0.05 * e, rtol=1e-14)


@pytest.mark.parametrize("kwargs", [{"training": False, "alpha": 0.1}, {"training": True, "alpha": 0.0}])
def test_eval_or_zero_alpha_is_pure_sign(kwargs):
    t, w1, w2 = setup()
    t[0, 0] = 0.0
    z = quantize_forward(t, w1, w2, layout="weight", zero=-1.0, **kwargs)
    assert set(np.unique(z)) <= {-1.0, 1.0}
    assert z[0, 0] == -1.0


def test_backward_is_spec4_exactly():
    t, w1, w2 = setup()
    g = RNG.normal(size=t.shape)
    params = {"n": 7, "omega": 0.3, "clip": None}
    dt, dw1, dw2 = quantize_backward(g, t, w1, w2, alpha=0.07, estimator="fda_series", params=params,
                                     layout="weight", eta_kind="sin", a=0.1)
    edt, edw1, edw2 = spec4_by_hand(g, t, w1, w2, 0.07, 7, 0.3, 0.1)
    np.testing.assert_allclose(dt, edt, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dw1, edw1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dw2, edw2, rtol=1e-12, atol=1e-14)


def test_backward_without_module_or_alpha():
    t, w1, w2 = setup()
    g = RNG.normal(size=t.shape)
    dt, dw1, dw2 = quantize_backward(g, t, None, None, alpha=0.1, estimator="ste", layout="weight")
    np.testing.assert_array_equal(dt, g)
    assert dw1 is None and dw2 is None
    dt, dw1, dw2 = quantize_backward(g, t, w1, w2, alpha=0.0, estimator="ste", layout="weight")
    np.testing.assert_array_equal(dt, g)
    np.testing.assert_array_equal(dw1, 0)
    np.testing.assert_array_equal(dw2, 0)


def test_any_estimator_replaces_fda():
    t, w1, w2 = setup()
    g = RNG.normal(size=t.shape)
    dt, _, _ = quantize_backward(g, t, w1, w2, alpha=0.0, estimator="tanh", params={"beta": 2.0},
                                 layout="weight")
    np.testing.assert_allclose(dt, g * 2 * (1 - np.tanh(2 * t) ** 2))


def test_bad_input():
    t, w1, w2 = setup()
    with pytest.raises(ValueError, match="shape of t"):
        quantize_backward(np.ones((2, 2)), t, w1, w2, alpha=0.1, estimator="fda", layout="weight")
    with pytest.raises(ValueError, match="alpha: expected a finite real"):
        quantize_forward(t, w1, w2, alpha=float("nan"), layout="weight")
    with pytest.raises(ValueError, match="n: expected an integer >= 0"):
        quantize_backward(t, t, w1, w2, alpha=0.1, estimator="fda", params={"n": -2}, layout="weight")
