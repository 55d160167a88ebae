"""Bit packing layout (SEMANTICS 9) and XNOR-popcount conv / linear: exactly the float ops on +-1 tensors."""
import itertools

import numpy as np
import pytest

from fdaref.functional.bitpack import pack_signs, xnor_conv2d, xnor_linear
from fdaref.functional.conv import conv2d_forward
from fdaref.functional.linear import linear_forward


def test_bit_layout_word_and_bit_positions():
    x = np.ones(130)
    x[[0, 3, 63, 64, 129]] = -1.0
    p = pack_signs(x, axis=0, zero=-1)
    assert p.dtype == np.uint64 and p.shape == (3,)
    assert int(p[0]) == (1 << 0) | (1 << 3) | (1 << 63)
    assert int(p[1]) == 1 << 0          # element 64 is bit 0 of word 1
    assert int(p[2]) == 1 << 1          # element 129 is bit 1 of word 2; bits 2..63 unused and 0


def test_zero_convention_and_axis_moved_last():
    x = np.array([[0.0, -0.0, 2.0], [-3.0, 0.0, 1.0]])
    assert pack_signs(x, axis=1, zero=-1).tolist() == [[0b011], [0b011]]
    assert pack_signs(x, axis=1, zero=1).tolist() == [[0b000], [0b001]]
    p = pack_signs(x, axis=0, zero=1)  # pack the rows' axis: shape (3, 1), word of column j
    assert p.shape == (3, 1) and p[:, 0].tolist() == [0b10, 0b00, 0b00]
    assert pack_signs(np.zeros((2, 3, 4, 5), np.float32), axis=1, zero=-1).shape == (2, 4, 5, 1)
    assert pack_signs(np.zeros((2, 3, 4, 5)), axis=-3, zero=1).shape == (2, 4, 5, 1)


def test_pack_bad_input():
    with pytest.raises(ValueError, match="NaN has no sign"):
        pack_signs(np.array([1.0, np.nan]), axis=0, zero=-1)
    with pytest.raises(ValueError, match="zero: expected -1 or \\+1"):
        pack_signs(np.array([1.0]), axis=0, zero=0)
    with pytest.raises(ValueError, match="axis: expected an axis"):
        pack_signs(np.ones((2, 2)), axis=2, zero=-1)
    with pytest.raises(TypeError, match="float32 or float64"):
        pack_signs(np.ones(3, dtype=np.int64), axis=0, zero=-1)


def _pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


@pytest.mark.parametrize("channels", [1, 5, 63, 64, 65, 130])
def test_xnor_conv_exact(channels):
    rng = np.random.default_rng(channels)
    x, w = _pm1(rng, (2, channels, 6, 5)), _pm1(rng, (3, channels, 3, 2))
    xp, wp = pack_signs(x, axis=1, zero=-1), pack_signs(w, axis=1, zero=-1)
    for pv, stride, padding, dilation in itertools.product([0.0, -1.0, 1.0], [(1, 1), (2, 3)], [(0, 0), (2, 1)],
                                                           [(1, 1), (2, 1)]):
        kw = dict(stride=stride, padding=padding, dilation=dilation, pad_value=pv)
        got = xnor_conv2d(xp, wp, channels=channels, **kw)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, conv2d_forward(x, w, None, **kw))


def test_xnor_conv_ignores_stray_bits_in_unused_positions():
    rng = np.random.default_rng(7)
    x, w = _pm1(rng, (1, 5, 4, 4)), _pm1(rng, (2, 5, 3, 3))
    xp, wp = pack_signs(x, axis=1, zero=-1), pack_signs(w, axis=1, zero=-1)
    xp_dirty = xp | np.uint64(0xFFFF_0000_0000_0000)  # bits 48..63 are beyond C = 5
    kw = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1), pad_value=1.0)
    np.testing.assert_array_equal(xnor_conv2d(xp_dirty, wp, channels=5, **kw), conv2d_forward(x, w, None, **kw))


@pytest.mark.parametrize("features", [1, 5, 63, 64, 65, 130])
def test_xnor_linear_exact(features):
    rng = np.random.default_rng(features)
    x, w = _pm1(rng, (7, features)), _pm1(rng, (4, features))
    got = xnor_linear(pack_signs(x, axis=1, zero=1), pack_signs(w, axis=1, zero=1), features=features)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, linear_forward(x, w, None))


def test_xnor_bad_input():
    xp = np.zeros((1, 4, 4, 1), np.uint64)
    wp = np.zeros((2, 3, 3, 1), np.uint64)
    kw = dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), pad_value=0.0)
    with pytest.raises(ValueError, match="expected 2 words"):
        xnor_conv2d(xp, wp, channels=65, **kw)
    with pytest.raises(TypeError, match="expected a uint64"):
        xnor_conv2d(xp.astype(np.int64), wp, channels=5, **kw)
    with pytest.raises(ValueError, match="larger than the padded input"):
        xnor_conv2d(xp, np.zeros((2, 5, 3, 1), np.uint64), channels=5, **kw)
    with pytest.raises(ValueError, match="pad_value: expected one of"):
        xnor_conv2d(xp, wp, channels=5, **dict(kw, pad_value=2.0))
    with pytest.raises(ValueError, match="features: expected an integer >= 1"):
        xnor_linear(np.zeros((1, 1), np.uint64), np.zeros((1, 1), np.uint64), features=0)
