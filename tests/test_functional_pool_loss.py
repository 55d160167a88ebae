"""Pooling and cross-entropy references: formulas, ties, gradients vs finite differences, bad input."""
import numpy as np
import pytest

from fdaref.functional.loss import cross_entropy_backward, cross_entropy_forward
from fdaref.functional.pool import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                                    max_pool2d_forward)
from fdaref.gradcheck import assert_vjp

GEOMS = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 1), (1, 1)), ((3, 2), (1, 2), (1, 0))]


def naive_pool(x, k, s, p, op, pad):
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * p[0], w + 2 * p[1]), pad)
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = x
    ho, wo = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    out = np.zeros((n, c, ho, wo))
    for y in range(ho):
        for z in range(wo):
            out[:, :, y, z] = op(xp[:, :, y * s[0]:y * s[0] + k[0], z * s[1]:z * s[1] + k[1]].reshape(n, c, -1), axis=-1)
    return out


@pytest.mark.parametrize("k,s,p", GEOMS)
def test_pool_forward(k, s, p):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6)) - 3  # mostly negative: -inf padding must never win, 0 would
    kw = dict(kernel=k, stride=s, padding=p)
    np.testing.assert_allclose(max_pool2d_forward(x, **kw), naive_pool(x, k, s, p, np.max, -np.inf))
    np.testing.assert_allclose(avg_pool2d_forward(x, **kw), naive_pool(x, k, s, p, np.sum, 0.0) / (k[0] * k[1]))


@pytest.mark.parametrize("k,s,p", GEOMS)
def test_pool_gradients(k, s, p):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 7, 6))  # distinct values: max is differentiable
    kw = dict(kernel=k, stride=s, padding=p)
    assert_vjp(lambda x: max_pool2d_forward(x, **kw), lambda g, x: max_pool2d_backward(g, x, **kw), {"x": x}, rng,
               rtol=1e-7)
    assert_vjp(lambda x: avg_pool2d_forward(x, **kw), lambda g, x: avg_pool2d_backward(g, x, **kw), {"x": x}, rng,
               rtol=1e-7)


def test_max_pool_ties_go_to_first_in_row_major_order():
    x = np.array([[[[1.0, 5.0], [5.0, 5.0]]]])
    dx = max_pool2d_backward(np.array([[[[2.0]]]]), x, kernel=(2, 2), stride=(2, 2), padding=(0, 0))
    np.testing.assert_array_equal(dx, [[[[0.0, 2.0], [0.0, 0.0]]]])
    # overlapping windows (stride 1) on an all-equal row: each window credits its own first element
    x = np.zeros((1, 1, 1, 4))
    dx = max_pool2d_backward(np.ones((1, 1, 1, 3)), x, kernel=(1, 2), stride=(1, 1), padding=(0, 0))
    np.testing.assert_array_equal(dx, [[[[1.0, 1.0, 1.0, 0.0]]]])


def test_avg_pool_counts_padding_in_divisor():
    x = np.ones((1, 1, 2, 2))
    y = avg_pool2d_forward(x, kernel=(2, 2), stride=(2, 2), padding=(1, 1))
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 0.25))


def test_pool_bad_input():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="at most half the kernel"):
        max_pool2d_forward(x, kernel=(2, 2), stride=(1, 1), padding=(2, 0))
    with pytest.raises(ValueError, match="larger than the padded input"):
        avg_pool2d_forward(x, kernel=(5, 1), stride=(1, 1), padding=(0, 0))
    with pytest.raises(ValueError, match="kernel: expected an integer >= 1"):
        max_pool2d_forward(x, kernel=(0, 2), stride=(1, 1), padding=(0, 0))
    with pytest.raises(ValueError, match="expected the output shape"):
        max_pool2d_backward(np.zeros((1, 1, 3, 3)), x, kernel=(2, 2), stride=(2, 2), padding=(0, 0))


def _ce_independent(z, y, s):
    """Per-sample loss written out directly: logsumexp(z) - sum_c q_c z_c (sum_c q_c = 1)."""
    k = z.shape[1]
    lse = np.array([np.log(np.sum(np.exp(row - row.max()))) + row.max() for row in z])
    zy = z[np.arange(len(y)), y]
    return np.mean(lse - (1 - s) * zy - s * z.sum(axis=1) / k)


@pytest.mark.parametrize("s", [0.0, 0.1, 1.0])
def test_cross_entropy_matches_independent_formula(s):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, 4)) * 3
    y = rng.integers(0, 4, size=6)
    loss = cross_entropy_forward(z, y, label_smoothing=s)
    assert loss.shape == () and loss.dtype == np.float64
    np.testing.assert_allclose(loss, _ce_independent(z, y, s), rtol=1e-12)


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0], [-1000.0, 0.0]], dtype=np.float32)
    loss = cross_entropy_forward(z, np.array([0, 1]), label_smoothing=0.0)
    assert np.isfinite(loss) and loss.dtype == np.float32 and abs(float(loss)) < 1e-6


@pytest.mark.parametrize("s", [0.0, 0.2])
def test_cross_entropy_gradient(s):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 7))
    y = rng.integers(0, 7, size=5)
    assert_vjp(lambda z: cross_entropy_forward(z, y, label_smoothing=s),
               lambda g, z: cross_entropy_backward(g, z, y, label_smoothing=s), {"z": z}, rng, rtol=1e-7)


def test_cross_entropy_bad_input():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        cross_entropy_forward(z, np.array([0, 3]), label_smoothing=0.0)
    with pytest.raises(TypeError, match="labels: expected an int64"):
        cross_entropy_forward(z, np.array([0.0, 1.0]), label_smoothing=0.0)
    with pytest.raises(ValueError, match=r"labels: expected shape \(2,\)"):
        cross_entropy_forward(z, np.array([0]), label_smoothing=0.0)
    with pytest.raises(ValueError, match="label_smoothing: expected a number in"):
        cross_entropy_forward(z, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="0-d upstream gradient"):
        cross_entropy_backward(np.ones(2), z, np.array([0, 1]), label_smoothing=0.0)
