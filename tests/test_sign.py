import numpy as np
import pytest

from fdaref.binarize import sign


@pytest.mark.parametrize("zero", [-1.0, 0.0, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sign_zero_convention(zero, dtype):
    x = np.array([-2.5, -1e-30, -0.0, 0.0, 1e-30, 3.0], dtype=dtype)
    out = sign(x, zero)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, [-1, -1, zero, zero, 1, 1])


def test_default_convention_is_papers_minus_one():
    assert sign(np.zeros(3))[0] == -1


def test_nan_stays_nan_and_input_untouched():
    x = np.array([np.nan, 0.0, 2.0])
    out = sign(x)
    assert np.isnan(out[0]) and out[1] == -1 and out[2] == 1
    assert x[1] == 0.0


def test_bad_input():
    with pytest.raises(TypeError, match="float32 or float64"):
        sign(np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        sign([1.0, 2.0])
    with pytest.raises(ValueError, match="zero: expected one of"):
        sign(np.ones(2), zero=0.5)
