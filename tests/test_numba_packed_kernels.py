"""The numba XNOR-popcount kernels are EXACT: equal to the float conv / matmul of the +-1 tensors for every
SEMANTICS 5 padding value and channel counts that do not fill a word (SEMANTICS 9 layout)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("numba")
pytestmark = pytest.mark.usefixtures("numba_precompiled")   # conftest.py: the kernels compile in the background

from fdaref.backends.numba import backend as NB  # noqa: E402
from fdaref.reference import REFERENCE as REF  # noqa: E402

CHANNELS = [1, 5, 63, 64, 65, 130]


def float_conv_pm1(x: np.ndarray, w: np.ndarray, stride, padding, dilation, pad_value) -> np.ndarray:
    """Direct float64 cross-correlation with constant padding (an independent oracle: per-tap einsum)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo))
    for i, j in itertools.product(range(kh), range(kw)):
        win = xp[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
        out += np.einsum("nchw,oc->nohw", win, w[:, :, i, j])
    return out


def pm1(rng, shape, zeros=False):
    v = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    if zeros:  # exact zeros take the packing convention's sign
        v[rng.random(shape) < 0.1] = 0.0
    return v


@pytest.mark.parametrize("c", CHANNELS)
def test_pack_signs_layout(c):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, c, 3, 2))
    x[0, 0, 0, 0] = 0.0
    for zero in (-1.0, 1.0):
        got = NB.pack_signs(x, axis=1, zero=zero)
        assert got.dtype == np.uint64 and got.shape == (2, 3, 2, (c + 63) // 64)
        np.testing.assert_array_equal(got, REF.pack_signs(x, axis=1, zero=zero))
        # SEMANTICS 9 spelled out: bit j of word w is element 64 w + j, set = -1
        for k in range(c):
            bit = (got[1, 2, 1, k // 64] >> np.uint64(k % 64)) & np.uint64(1)
            assert bool(bit) == bool(x[1, k, 2, 1] < 0)
    for axis in (0, -1, 2):
        np.testing.assert_array_equal(NB.pack_signs(x.astype(np.float32), axis=axis, zero=-1),
                                      REF.pack_signs(x.astype(np.float32), axis=axis, zero=-1))


def test_pack_signs_errors():
    with pytest.raises(ValueError, match="NaN"):
        NB.pack_signs(np.array([[1.0, np.nan]]), axis=1, zero=-1)
    with pytest.raises(ValueError, match="zero"):
        NB.pack_signs(np.ones((2, 2)), axis=1, zero=0)


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("pad_value", [0.0, -1.0, 1.0])
def test_xnor_conv2d_exact(c, pad_value):
    rng = np.random.default_rng(100 * c + int(pad_value) + 1)
    co = 3 if c > 64 else 7
    x = pm1(rng, (2, c, 7, 6))
    w = pm1(rng, (co, c, 3, 3))
    xp, wp = NB.pack_signs(x, axis=1, zero=-1), NB.pack_signs(w, axis=1, zero=-1)
    for stride, padding, dilation in [((1, 1), (1, 1), (1, 1)), ((2, 2), (1, 1), (1, 1)), ((2, 1), (2, 1), (1, 2)),
                                      ((1, 2), (0, 0), (1, 1)), ((2, 2), (0, 2), (1, 1))]:
        got = NB.xnor_conv2d(xp, wp, channels=c, stride=stride, padding=padding, dilation=dilation,
                             pad_value=pad_value)
        want = float_conv_pm1(x, w, stride, padding, dilation, pad_value)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want.astype(np.int32))
        assert np.array_equal(got, want)


def test_xnor_conv2d_matches_reference_kernel():
    rng = np.random.default_rng(9)
    x, w = pm1(rng, (1, 20, 8, 8)), pm1(rng, (5, 20, 3, 1))
    xp, wp = NB.pack_signs(x, axis=1, zero=1), NB.pack_signs(w, axis=1, zero=1)
    kw = dict(channels=20, stride=(1, 1), padding=(2, 1), dilation=(2, 1), pad_value=0.0)
    np.testing.assert_array_equal(NB.xnor_conv2d(xp, wp, **kw), REF.xnor_conv2d(xp, wp, **kw))


def test_xnor_ignores_stray_bits_in_last_word():
    rng = np.random.default_rng(10)
    x, w = pm1(rng, (1, 5, 4, 4)), pm1(rng, (2, 5, 3, 3))
    xp, wp = NB.pack_signs(x, axis=1, zero=-1), NB.pack_signs(w, axis=1, zero=-1)
    kw = dict(channels=5, stride=(1, 1), padding=(1, 1), dilation=(1, 1), pad_value=0.0)
    clean = NB.xnor_conv2d(xp, wp, **kw)
    dirty_x, dirty_w = xp | np.uint64(1 << 40), wp | np.uint64(1 << 63)
    np.testing.assert_array_equal(NB.xnor_conv2d(dirty_x, dirty_w, **kw), clean)


@pytest.mark.parametrize("f", CHANNELS + [200])
def test_xnor_linear_exact(f):
    rng = np.random.default_rng(f)
    x, w = pm1(rng, (9, f)), pm1(rng, (11, f))
    xp, wp = NB.pack_signs(x, axis=1, zero=-1), NB.pack_signs(w, axis=1, zero=-1)
    got = NB.xnor_linear(xp, wp, features=f)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, (x @ w.T).astype(np.int32))


def test_xnor_errors():
    xp = np.zeros((1, 4, 4, 1), np.uint64)
    with pytest.raises(ValueError, match="words"):
        NB.xnor_conv2d(xp, np.zeros((1, 3, 3, 2), np.uint64), channels=5, stride=(1, 1), padding=(0, 0),
                       dilation=(1, 1), pad_value=0)
    with pytest.raises(TypeError, match="uint64"):
        NB.xnor_linear(np.zeros((1, 1)), np.zeros((1, 1), np.uint64), features=3)
    with pytest.raises(ValueError, match="pad_value"):
        NB.xnor_conv2d(xp, xp[:, :3, :3], channels=5, stride=(1, 1), padding=(1, 1), dilation=(1, 1),
                       pad_value=2)


@pytest.mark.parametrize("c", [5, 16, 64, 65])
@pytest.mark.parametrize("pad_value", [0.0, -1.0, 1.0])
def test_sign_xnor_conv2d_fused_equals_pack_then_conv(c, pad_value):
    """The inference fast path (signs packed inside the conv call) equals pack_signs + xnor_conv2d."""
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, c, 6, 7)).astype(np.float32)
    x[0, :, 0, 0] = 0.0
    w = pm1(rng, (4, c, 3, 3))
    wp = NB.pack_signs(w, axis=1, zero=-1)
    for zero in (-1.0, 1.0):
        for stride in ((1, 1), (2, 2), (2, 1)):
            kw = dict(stride=stride, padding=(1, 1), dilation=(1, 1), pad_value=pad_value)
            want = NB.xnor_conv2d(NB.pack_signs(x, axis=1, zero=zero), wp, channels=c, **kw)
            np.testing.assert_array_equal(NB.sign_xnor_conv2d(x, wp, zero=zero, **kw), want)
    with pytest.raises(ValueError, match="NaN"):
        x[1, 0, 1, 1] = np.nan
        NB.sign_xnor_conv2d(x, wp, zero=-1.0, stride=(1, 1), padding=(1, 1), dilation=(1, 1), pad_value=0.0)


# -- the prepared layer (weights and border table computed once) and the parallel drivers ---------------------

GEOMETRIES = [((1, 1), (1, 1), (1, 1)), ((2, 2), (1, 1), (1, 1)), ((2, 1), (2, 1), (1, 2)), ((1, 2), (0, 0), (1, 1)),
              ((2, 2), (0, 2), (1, 1)), ((3, 2), (1, 2), (2, 1)), ((1, 1), (2, 2), (2, 2))]


def _ops():
    from fdaref.backends.numba import ops
    return ops


@pytest.mark.parametrize("c", [1, 5, 8, 9, 16, 17, 32, 33, 63, 64, 65, 130])
@pytest.mark.parametrize("pad_value", [0.0, -1.0, 1.0])
@pytest.mark.parametrize("parallel", [False, True])
def test_prepared_layer_exact_and_equal_to_the_uncached_path(c, pad_value, parallel, monkeypatch):
    """XnorConv2d (weights in the lane dtype and border table cached per layer and input size) equals the float
    conv of the +-1 tensors and the per-call paths, for every lane width (8 / 16 / 32 / 64 bits, several words),
    3x3 and other kernels, strides, paddings and dilations, on the serial and both parallel drivers."""
    if parallel:   # force the parallel drivers on small inputs: images split (N >= threads) and planes split
        monkeypatch.setattr(_ops(), "XNOR_PAR_MIN", 0)
    # The parallel drivers call the serial bodies, whose float64 inputs the serial cases check; each extra
    # (lane, input dtype) specialisation of a parallel driver costs ~20 s of numba compile on a 2-core VM.
    x_dtypes = (np.float32,) if parallel else (np.float32, np.float64)
    rng = np.random.default_rng(1000 * c + int(pad_value) + 7 * parallel)
    for kh, kw_ in ((3, 3), (1, 2), (2, 3)):
        co = 3 if c > 64 else 5
        w = pm1(rng, (co, c, kh, kw_))
        wp = NB.pack_signs(w, axis=1, zero=-1)
        for stride, padding, dilation in GEOMETRIES:
            geom = dict(stride=stride, padding=padding, dilation=dilation, pad_value=pad_value)
            layer = NB.prepare_xnor_conv2d(wp, channels=c, **geom)
            for n_b, (h, wd) in ((1, (7, 6)), (3, (9, 10)), (1, (7, 6))):   # the cached (7, 6) tables reused
                x = rng.standard_normal((n_b, c, h, wd))
                x[0, :, 0, 0] = 0.0
                for zero in (-1.0, 1.0):
                    xs = np.where(x > 0, 1.0, np.where(x < 0, -1.0, zero))
                    want = float_conv_pm1(xs, w, stride, padding, dilation, pad_value).astype(np.int32)
                    xp = NB.pack_signs(x, axis=1, zero=zero)
                    for dt in x_dtypes:
                        got = layer.sign_conv(x.astype(dt), zero=zero)
                        assert got.dtype == np.int32 and got.shape == want.shape
                        np.testing.assert_array_equal(got, want)
                        np.testing.assert_array_equal(NB.sign_xnor_conv2d(x.astype(dt), wp, zero=zero, **geom),
                                                      want)
                    np.testing.assert_array_equal(layer.conv(xp), want)
                    np.testing.assert_array_equal(NB.xnor_conv2d(xp, wp, channels=c, **geom), want)


def test_resnet20_shapes_on_every_driver(monkeypatch):
    """The benchmark's shapes (16 / 32 / 64 channels, 3x3, pad 1, stride 1 and 2) at batch 1 and 4 on the serial
    driver and both parallel ones, against the float conv."""
    ops = _ops()
    rng = np.random.default_rng(20)
    for c_in, c_out, size, s in [(16, 16, 32, 1), (16, 32, 32, 2), (32, 32, 16, 1), (32, 64, 16, 2), (64, 64, 8, 1)]:
        w = pm1(rng, (c_out, c_in, 3, 3))
        layer = NB.prepare_xnor_conv2d(NB.pack_signs(w, axis=1, zero=-1), channels=c_in, stride=(s, s),
                                       padding=(1, 1), pad_value=0.0)
        for n_b in (1, 4):
            x = rng.standard_normal((n_b, c_in, size, size)).astype(np.float32)
            want = float_conv_pm1(np.where(x > 0, 1.0, -1.0), w, (s, s), (1, 1), (1, 1), 0.0).astype(np.int32)
            for par_min in (1 << 62, 0):
                monkeypatch.setattr(ops, "XNOR_PAR_MIN", par_min)
                layer._plans.clear()
                np.testing.assert_array_equal(layer.sign_conv(x), want)
                np.testing.assert_array_equal(layer.conv(NB.pack_signs(x, axis=1, zero=-1)), want)


def test_prepared_layer_copies_the_weights_and_checks_its_input():
    rng = np.random.default_rng(3)
    w = pm1(rng, (4, 10, 3, 3))
    wp = NB.pack_signs(w, axis=1, zero=-1)
    layer = NB.prepare_xnor_conv2d(wp, channels=10, padding=(1, 1))
    x = rng.standard_normal((2, 10, 5, 5))
    before = layer.sign_conv(x)
    wp[:] = 0                                   # later changes to the packed weights are not seen
    np.testing.assert_array_equal(layer.sign_conv(x), before)
    assert "XnorConv2d" in repr(layer)
    with pytest.raises(ValueError, match="channels"):
        layer.sign_conv(x[:, :9])
    with pytest.raises(ValueError, match="zero"):
        layer.sign_conv(x, zero=0.0)
    with pytest.raises(TypeError, match="float"):
        layer.sign_conv(x.astype(np.int64))
    with pytest.raises(ValueError, match="NaN"):
        x[1, 3, 2, 2] = np.nan
        layer.sign_conv(x)
    with pytest.raises(ValueError, match="words"):
        layer.conv(np.zeros((1, 5, 5, 2), np.uint64))
    with pytest.raises(ValueError, match="pad_value"):
        NB.prepare_xnor_conv2d(wp, channels=10, pad_value=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        NB.prepare_xnor_conv2d(wp, channels=10).sign_conv(np.ones((1, 10, 2, 2)))
