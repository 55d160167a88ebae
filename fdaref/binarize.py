"""Binarization: the sign function with an explicit convention at zero (SEMANTICS 1, Eq. 1)."""
from __future__ import annotations

import numpy as np

from ._validate import check_choice, check_float_array

ZERO_CONVENTIONS = (-1.0, 0.0, 1.0)


def check_zero(zero: float) -> float:
    """The sign(0) convention as a float, one of ZERO_CONVENTIONS (a bool is refused, not read as 0 / 1)."""
    return check_choice(float(zero) if not isinstance(zero, bool) else zero, "zero", ZERO_CONVENTIONS)


def sign(x: np.ndarray, zero: float = -1.0) -> np.ndarray:
    """Eq. 1: +1 where x > 0, -1 where x < 0, ``zero`` where x == 0 (-0.0 included); NaN stays NaN.

    ``zero`` = -1 is the paper's (w <= 0 -> -1); 0 is numpy/torch/BiBench; +1 is larq/LCE. Subnormals are
    ordinary nonzero numbers. Shape and dtype of ``x`` are kept (every value is exact in any float dtype).
    """
    check_float_array(x, "x")
    zero = check_zero(zero)
    out = np.where(x > 0, 1.0, np.where(x < 0, -1.0, np.where(x == 0, zero, np.nan)))
    return out.astype(x.dtype)
