"""Weight scale of binary layers (SEMANTICS 5); no gradient flows through it."""
from __future__ import annotations

import numpy as np

from ._validate import check_choice, check_float_array
from .precision import as_dtype_of, f64

SCALE_MODES = ("channel", "layer", "none")


def weight_scale(w: np.ndarray, mode: str = "channel") -> np.ndarray:
    """Scale s for a weight of shape (C_out, ...): ``channel`` mean |W| per output channel (shape
    (C_out, 1, ...)), ``layer`` one mean |W| (shape (1, ...)), ``none`` ones (shape (1, ...))."""
    check_float_array(w, "w", ndim=(2, 4))
    check_choice(mode, "scale", SCALE_MODES)
    if mode == "channel":
        return as_dtype_of(np.mean(np.abs(f64(w)), axis=tuple(range(1, w.ndim)), keepdims=True), w)
    if mode == "layer":
        return as_dtype_of(np.mean(np.abs(f64(w)), keepdims=True), w)
    return np.ones((1,) * w.ndim, dtype=w.dtype)
