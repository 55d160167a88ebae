"""linear, batch norm, ReLU / PReLU references: forward formulas and gradients vs finite differences."""
import numpy as np
import pytest

from fdaref.functional.activation import prelu_backward, prelu_forward, relu_backward, relu_forward
from fdaref.functional.linear import linear_backward, linear_forward
from fdaref.functional.norm import batch_norm_backward, batch_norm_forward
from fdaref.gradcheck import assert_vjp


@pytest.mark.parametrize("has_bias", [True, False])
def test_linear(has_bias):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    expect = np.einsum("bi,oi->bo", x, w) + (b if has_bias else 0)
    np.testing.assert_allclose(linear_forward(x, w, b if has_bias else None), expect, rtol=1e-12)
    inputs = {"x": x, "w": w, **({"b": b} if has_bias else {})}
    assert_vjp(lambda x, w, b=None: linear_forward(x, w, b),
               lambda g, x, w, b=None: linear_backward(g, x, w, has_bias=has_bias), inputs, rng, rtol=1e-7)
    assert linear_backward(np.ones((5, 3)), x, w, has_bias=False)[2] is None


def test_linear_bad_input():
    x, w = np.zeros((2, 3)), np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"w: expected \(out, 3\)"):
        linear_forward(x, np.zeros((4, 2)), None)
    with pytest.raises(TypeError, match="expected the dtype of x"):
        linear_forward(x, w.astype(np.float32), None)
    with pytest.raises(ValueError, match="expected 2 dimensions"):
        linear_forward(np.zeros(3), w, None)
    with pytest.raises(ValueError, match="expected the output shape"):
        linear_backward(np.zeros((2, 3)), x, w, has_bias=True)
    with pytest.raises(TypeError, match="float32 or float64"):
        linear_forward(x.astype(np.int32), w, None)


def _bn_inputs(rng, shape):
    c = shape[1]
    return (rng.standard_normal(shape) * 2 + 1, rng.standard_normal(c), rng.standard_normal(c),
            rng.standard_normal(c), rng.random(c) + 0.5)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 2)])
def test_batch_norm_training_forward_and_running_update(shape):
    rng = np.random.default_rng(1)
    x, gamma, beta, rm, rv = _bn_inputs(rng, shape)
    y, mean, invstd, nrm, nrv = batch_norm_forward(x, gamma, beta, rm, rv, training=True, momentum=0.1, eps=1e-5)
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    m, v = x.mean(axis=axes), x.var(axis=axes)
    np.testing.assert_allclose(y, (x - m.reshape(bshape)) / np.sqrt(v.reshape(bshape) + 1e-5) * gamma.reshape(bshape)
                               + beta.reshape(bshape), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean, m, rtol=1e-12)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(v + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(nrm, 0.9 * rm + 0.1 * m, rtol=1e-12)
    np.testing.assert_allclose(nrv, 0.9 * rv + 0.1 * x.var(axis=axes, ddof=1), rtol=1e-12)  # unbiased
    assert not np.shares_memory(nrm, rm)


def test_batch_norm_eval_uses_running_stats():
    rng = np.random.default_rng(2)
    x, gamma, beta, rm, rv = _bn_inputs(rng, (4, 3, 2, 2))
    y, mean, invstd, nrm, nrv = batch_norm_forward(x, gamma, beta, rm, rv, training=False, momentum=0.1, eps=1e-3)
    b = (1, -1, 1, 1)
    np.testing.assert_allclose(y, (x - rm.reshape(b)) / np.sqrt(rv.reshape(b) + 1e-3) * gamma.reshape(b) + beta.reshape(b),
                               rtol=1e-12)
    np.testing.assert_array_equal(nrm, rm)
    np.testing.assert_array_equal(nrv, rv)
    np.testing.assert_array_equal(mean, rm)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 4, 3)])
def test_batch_norm_gradients(training, shape):
    rng = np.random.default_rng(3)
    x, gamma, beta, rm, rv = _bn_inputs(rng, shape)

    def fwd(x, gamma, beta):
        return batch_norm_forward(x, gamma, beta, rm, rv, training=training, momentum=0.1, eps=1e-5)[0]

    def vjp(g, x, gamma, beta):
        _, mean, invstd, _, _ = batch_norm_forward(x, gamma, beta, rm, rv, training=training, momentum=0.1, eps=1e-5)
        return batch_norm_backward(g, x, gamma, mean, invstd, training=training)

    assert_vjp(fwd, vjp, {"x": x, "gamma": gamma, "beta": beta}, rng, rtol=1e-6)


def test_batch_norm_bad_input():
    x = np.zeros((4, 3))
    v = np.ones(3)
    with pytest.raises(ValueError, match=r"gamma: expected shape \(3,\)"):
        batch_norm_forward(x, np.ones(2), v, v, v, training=True, momentum=0.1, eps=1e-5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm_forward(np.zeros((1, 3)), v, v, v, v, training=True, momentum=0.1, eps=1e-5)
    with pytest.raises(ValueError, match="momentum: expected a number in"):
        batch_norm_forward(x, v, v, v, v, training=True, momentum=1.5, eps=1e-5)
    with pytest.raises(ValueError, match="expected 2 or 4 dimensions"):
        batch_norm_forward(np.zeros((2, 3, 4)), v, v, v, v, training=True, momentum=0.1, eps=1e-5)
    with pytest.raises(TypeError, match="expected the dtype of x"):
        batch_norm_forward(x, v.astype(np.float32), v, v, v, training=True, momentum=0.1, eps=1e-5)


def test_relu():
    x = np.array([[-1.0, 0.0, 2.0, np.nan]])
    np.testing.assert_array_equal(relu_forward(x), [[0.0, 0.0, 2.0, np.nan]])
    np.testing.assert_array_equal(relu_backward(np.full((1, 4), 3.0), x), [[0.0, 0.0, 3.0, 0.0]])  # relu'(0) = 0
    rng = np.random.default_rng(4)
    assert_vjp(relu_forward, relu_backward, {"x": rng.standard_normal((4, 5))}, rng, rtol=1e-7)
    assert relu_forward(x.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="expected the shape of x"):
        relu_backward(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 4)])
def test_prelu(per_channel, shape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    slope = rng.random(3) if per_channel else np.array([0.25])
    b = (1, -1) + (1,) * (x.ndim - 2)
    np.testing.assert_allclose(prelu_forward(x, slope), np.maximum(x, 0) + slope.reshape(b) * np.minimum(x, 0))
    assert_vjp(prelu_forward, prelu_backward, {"x": x, "slope": slope}, rng, rtol=1e-7)
    assert prelu_backward(np.ones_like(x), x, slope)[1].shape == slope.shape


def test_prelu_at_zero_and_bad_slope():
    dx, ds = prelu_backward(np.array([[2.0, 2.0]]), np.array([[0.0, 1.0]]), np.array([0.25]))
    np.testing.assert_array_equal(dx, [[0.5, 2.0]])  # x == 0 takes the slope branch
    np.testing.assert_array_equal(ds, [0.0])
    with pytest.raises(ValueError, match=r"slope: expected shape \(1,\) or \(3,\)"):
        prelu_forward(np.zeros((2, 3)), np.ones(2))
    with pytest.raises(TypeError, match="slope: expected the dtype of x"):
        prelu_forward(np.zeros((2, 3)), np.ones(3, np.float32))
