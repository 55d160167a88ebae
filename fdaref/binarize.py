"""Binarization: the sign function with an explicit convention at zero (SPEC 1, Eq. 1)."""
from __future__ import annotations

import numpy as np

from ._validate import check_choice, check_float_array

ZERO_CONVENTIONS = (-1.0, 0.0, 1.0)


def sign(x: np.ndarray, zero: float = -1.0) -> np.ndarray:
    """Eq. 1: +1 where x > 0, -1 where x < 0, ``zero`` where x == 0; NaN stays NaN.

    ``zero`` = -1 is the paper's (w <= 0 -> -1); 0 is numpy/torch/BiBench; +1 is larq/LCE.
    Shape and dtype of ``x`` are kept.
    """
    check_float_array(x, "x")
    zero = check_choice(float(zero) if not isinstance(zero, bool) else zero, "zero", ZERO_CONVENTIONS)
    out = np.sign(x)
    out[x == 0] = zero  # also catches -0.0
    return out
