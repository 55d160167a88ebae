"""The gradient checker itself: it accepts correct VJPs and rejects wrong ones."""
import numpy as np
import pytest

from fdaref.gradcheck import assert_vjp, check_vjp


def _matmul(x, w):
    return x @ w.T


def test_correct_vjp_passes():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    err = check_vjp(_matmul, lambda g, x, w: (g @ w, g.T @ x), {"x": x, "w": w}, rng)
    assert err < 1e-8


def test_mapping_result_and_nonlinear_function():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6,))
    assert_vjp(lambda x: np.sin(x) * x, lambda g, x: {"x": g * (np.cos(x) * x + np.sin(x))}, {"x": x}, rng)


def test_wrong_vjp_is_caught():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    # dw transposed wrongly scaled: must fail
    with pytest.raises(AssertionError, match="relative error"):
        assert_vjp(_matmul, lambda g, x, w: (g @ w, 2 * g.T @ x), {"x": x, "w": w}, rng)


def test_wrt_holds_other_inputs_fixed():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    # a wrong dw is irrelevant when only x is checked
    assert_vjp(_matmul, lambda g, x, w: (g @ w, None), {"x": x, "w": w}, rng, wrt=["x"])


def test_scalar_output():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2))
    assert_vjp(lambda x: np.sum(x ** 2), lambda g, x: (2 * g * x,), {"x": x}, rng)


def test_rejects_float32_and_bad_shapes():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3,)).astype(np.float32)
    with pytest.raises(TypeError, match="must be float64"):
        check_vjp(lambda x: x, lambda g, x: (g,), {"x": x}, rng)
    x = x.astype(np.float64)
    with pytest.raises(ValueError, match="has shape"):
        check_vjp(lambda x: x, lambda g, x: (g[:2],), {"x": x}, rng)
    with pytest.raises(ValueError, match="no gradient"):
        check_vjp(lambda x: x, lambda g, x: (None,), {"x": x}, rng)
