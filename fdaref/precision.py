"""The reference computes in float64 whatever dtype it is given, and answers in that dtype (SEMANTICS 10)."""
from __future__ import annotations

from typing import Optional

import numpy as np


def f64(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """``a`` as float64 (None stays None)."""
    return None if a is None else np.asarray(a, dtype=np.float64)


def as_dtype_of(y: Optional[np.ndarray], x: np.ndarray) -> Optional[np.ndarray]:
    """``y`` rounded once to the dtype of ``x`` (None stays None)."""
    return None if y is None else np.asarray(y).astype(x.dtype, copy=False)
