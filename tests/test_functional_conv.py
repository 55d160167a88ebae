"""conv2d reference: forward vs a naive loop, gradients vs finite differences, bad input."""
import itertools

import numpy as np
import pytest

from fdaref.functional import conv
from fdaref.functional.conv import conv2d_backward, conv2d_forward
from fdaref.gradcheck import assert_vjp


def naive_conv(x, w, b, s, p, d, pv):
    """Direct loop over output pixels (independent of the im2col reference)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.full((n, c, h + 2 * p[0], wd + 2 * p[1]), pv, dtype=np.float64)
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + wd] = x
    ho = (h + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    wo = (wd + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    y = np.zeros((n, o, ho, wo))
    for yy in range(ho):
        for xx in range(wo):
            for i in range(kh):
                for j in range(kw):
                    patch = xp[:, :, yy * s[0] + i * d[0], xx * s[1] + j * d[1]]  # (n, c)
                    y[:, :, yy, xx] += patch @ w[:, :, i, j].T.astype(np.float64)
    if b is not None:
        y += b[None, :, None, None]
    return y


GEOMS = list(itertools.product([(1, 1), (2, 1), (1, 3)], [(0, 0), (1, 2)], [(1, 1), (2, 1)], [0.0, -1.0, 1.0]))


@pytest.mark.parametrize("stride,padding,dilation,pad_value", GEOMS)
def test_forward_matches_naive(stride, padding, dilation, pad_value):
    rng = np.random.default_rng(hash((stride, padding, dilation, pad_value)) % 2**32)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    kw = dict(stride=stride, padding=padding, dilation=dilation, pad_value=pad_value)
    np.testing.assert_allclose(conv2d_forward(x, w, b, **kw), naive_conv(x, w, b, stride, padding, dilation, pad_value),
                               rtol=1e-12, atol=1e-12)
    y = conv2d_forward(x, w, None, **kw)
    np.testing.assert_allclose(y, naive_conv(x, w, None, stride, padding, dilation, pad_value), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,wshape", [((1, 1, 1, 1), (1, 1, 1, 1)), ((3, 1, 5, 1), (2, 1, 3, 1)),
                                          ((2, 5, 4, 9), (1, 5, 1, 4)), ((1, 2, 3, 3), (3, 2, 3, 3))])
def test_forward_odd_shapes_and_dtypes(dtype, shape, wshape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(wshape).astype(dtype)
    b = rng.standard_normal(wshape[0]).astype(dtype)
    kw = dict(stride=(1, 2), padding=(1, 0), dilation=(1, 1), pad_value=-1.0)
    y = conv2d_forward(x, w, b, **kw)
    assert y.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, naive_conv(x, w, b, (1, 2), (1, 0), (1, 1), -1.0), rtol=tol, atol=tol)


def test_nonfinite_input_does_not_leak_into_thrown_away_positions():
    """An inf in a row no valid output reads (stride 2) must leave dw finite; stride-1 path too for NaN."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 3, :] = np.inf  # a 1x1 kernel with stride 2 reads rows 0, 2, 4 only
    w = np.ones((1, 1, 1, 1))
    kw = dict(stride=(2, 2), padding=(0, 0), dilation=(1, 1), pad_value=0.0)
    y = conv2d_forward(x, w, None, **kw)
    assert np.isfinite(y).all()
    _, dw, _ = conv2d_backward(np.ones_like(y), x, w, has_bias=False, **kw)
    assert np.isfinite(dw).all()
    # stride 1 (the flat path for finite data): inf in the input gives exactly the naive NaN/inf pattern
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 3] = np.inf
    w = np.ones((1, 1, 2, 2))
    kw = dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), pad_value=0.0)
    np.testing.assert_array_equal(conv2d_forward(x, w, None, **kw), naive_conv(x, w, None, (1, 1), (0, 0), (1, 1), 0.0))


def test_nonfinite_input_flat_path_keeps_finite_dw_entries():
    """Stride 1: tap (0, 2) of a 3x3 valid conv never reads column 0, so dw[..., 0, 2] stays finite
    with an inf at x[1, 0] (a thrown-away flat position would read it and give 0 * inf = NaN)."""
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 1, 0] = np.inf
    w = np.ones((1, 1, 3, 3))
    kw = dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), pad_value=0.0)
    y = conv2d_forward(x, w, None, **kw)
    _, dw, _ = conv2d_backward(np.ones_like(y), x, w, has_bias=False, **kw)
    assert np.isfinite(dw[0, 0, :, 1:]).all() and np.isinf(dw[0, 0, 1, 0])


@pytest.mark.parametrize("stride,padding,dilation,pad_value", [((1, 1), (1, 1), (1, 1), 0.0),
                                                                ((2, 1), (1, 2), (1, 2), -1.0),
                                                                ((1, 2), (0, 1), (2, 1), 1.0),
                                                                ((3, 3), (2, 0), (1, 1), 1.0)])
@pytest.mark.parametrize("has_bias", [True, False])
def test_backward_finite_differences(stride, padding, dilation, pad_value, has_bias):
    rng = np.random.default_rng(3)
    inputs = {"x": rng.standard_normal((2, 3, 7, 8)), "w": rng.standard_normal((4, 3, 3, 2))}
    if has_bias:
        inputs["b"] = rng.standard_normal(4)
    kw = dict(stride=stride, padding=padding, dilation=dilation, pad_value=pad_value)

    def fwd(x, w, b=None):
        return conv2d_forward(x, w, b, **kw)

    def vjp(g, x, w, b=None):
        dx, dw, db = conv2d_backward(g, x, w, has_bias=has_bias, **kw)
        assert (db is None) == (not has_bias)
        return (dx, dw, db) if has_bias else (dx, dw)

    assert_vjp(fwd, vjp, inputs, rng, rtol=1e-7)


def test_backward_float32_matches_float64():
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((3, 4, 9, 9)), rng.standard_normal((5, 4, 3, 3))
    kw = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1), pad_value=-1.0)
    g = rng.standard_normal((3, 5, 9, 9))
    r64 = conv2d_backward(g, x, w, has_bias=True, **kw)
    r32 = conv2d_backward(g.astype(np.float32), x.astype(np.float32), w.astype(np.float32), has_bias=True, **kw)
    for a, b in zip(r32, r64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _kw(**over):
    kw = dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), pad_value=0.0)
    kw.update(over)
    return kw


def test_bad_inputs():
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3))
    with pytest.raises(ValueError, match="expected 4 dimensions"):
        conv2d_forward(np.zeros((2, 5, 5)), w, None, **_kw())
    with pytest.raises(ValueError, match="expected C_in = 2"):
        conv2d_forward(x, np.zeros((3, 4, 3, 3)), None, **_kw())
    with pytest.raises(TypeError, match="expected the dtype of x"):
        conv2d_forward(x, w.astype(np.float32), None, **_kw())
    with pytest.raises(TypeError, match="float32 or float64"):
        conv2d_forward(x.astype(np.int64), w, None, **_kw())
    with pytest.raises(ValueError, match=r"b: expected shape \(3,\)"):
        conv2d_forward(x, w, np.zeros(2), **_kw())
    with pytest.raises(ValueError, match="stride: expected an integer >= 1"):
        conv2d_forward(x, w, None, **_kw(stride=(0, 1)))
    with pytest.raises(ValueError, match="padding: expected an integer >= 0"):
        conv2d_forward(x, w, None, **_kw(padding=(-1, 0)))
    with pytest.raises(ValueError, match="dilation: expected an int or a pair"):
        conv2d_forward(x, w, None, **_kw(dilation=(1, 1, 1)))
    with pytest.raises(ValueError, match="pad_value: expected one of"):
        conv2d_forward(x, w, None, **_kw(pad_value=0.5))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv2d_forward(x, np.zeros((3, 2, 3, 3)), None, **_kw(dilation=(3, 1)))
    with pytest.raises(ValueError, match="expected the output shape"):
        conv2d_backward(np.zeros((1, 3, 2, 2)), x, w, has_bias=False, **_kw())
    with pytest.raises(TypeError, match="g: expected the dtype of x"):
        conv2d_backward(np.zeros((1, 3, 3, 3), np.float32), x, w, has_bias=False, **_kw())
