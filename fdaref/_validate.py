"""Input checks shared by every public function: bad input fails loudly, saying what was expected."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def check_float_array(x: Any, name: str, *, ndim: int | tuple[int, ...] | None = None,
                      allow_nan: bool = True) -> np.ndarray:
    """Return ``x`` unchanged if it is a float32/float64 ndarray of the right rank, else raise."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray of float32 or float64, got {type(x).__name__}")
    if x.dtype.type not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in allowed:
            raise ValueError(f"{name}: expected {' or '.join(map(str, allowed))} dimensions, got shape {x.shape}")
    if not allow_nan and x.size and not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: expected finite values, found NaN or infinity")
    return x


def check_bias(b: Any, x: np.ndarray, out_features: int, out_name: str) -> None:
    """An optional bias: None, or a 1-D array of x's dtype with ``out_features`` entries."""
    if b is None:
        return
    check_float_array(b, "b", ndim=1)
    if b.dtype != x.dtype:
        raise TypeError(f"b: expected the dtype of x ({x.dtype}), got {b.dtype}")
    if b.shape != (out_features,):
        raise ValueError(f"b: expected shape ({out_features},) ({out_name} of w), got {b.shape}")


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """An integer (not a bool, not a float) that is at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_positive(value: Any, name: str) -> float:
    """A finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number > 0, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value}")
    return float(value)


def check_real(value: Any, name: str) -> float:
    """A finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    return float(value)


def check_choice(value: Any, name: str, choices: tuple) -> Any:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def pair(value: Any, name: str, *, minimum: int = 0) -> tuple[int, int]:
    """An int or a pair of ints (height, width), each >= ``minimum``."""
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
            and min(value) >= minimum:
        return value  # the common case, without the generic checks (backends call this per op at batch 1)
    items = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) != 2:
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
    return tuple(check_int(v, name, minimum=minimum) for v in items)  # type: ignore[return-value]


def check_grad(g: Any, x: np.ndarray, shape: tuple[int, ...] | None = None) -> None:
    """The upstream gradient of a layer with input ``x``: a float array of the dtype of x and the output
    ``shape`` (None: the shape of x)."""
    check_float_array(g, "g", ndim=None if shape is None else len(shape))
    if g.dtype != x.dtype:
        raise TypeError(f"g: expected the dtype of x ({x.dtype}), got {g.dtype}")
    if shape is None and g.shape != x.shape:
        raise ValueError(f"g: expected the shape of x {x.shape}, got {g.shape}")
    if shape is not None and g.shape != shape:
        raise ValueError(f"g: expected the output shape {shape}, got {g.shape}")
