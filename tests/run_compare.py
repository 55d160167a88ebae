"""Comparing what two training runs wrote, bit for bit (shared by the resume and kill tests)."""
from __future__ import annotations

from typing import Any, Collection

import numpy as np


def bit_exact(obj: Any, volatile: Collection[str]) -> Any:
    """``obj`` without the keys in ``volatile`` (timings, paths), arrays as (dtype, shape, bytes): two results
    compare equal only when every array is bit-identical, not merely close."""
    if isinstance(obj, dict):
        return {k: bit_exact(v, volatile) for k, v in obj.items() if k not in volatile}
    if isinstance(obj, list):
        return [bit_exact(v, volatile) for v in obj]
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, obj.tobytes())
    return obj
