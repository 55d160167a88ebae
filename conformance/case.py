"""One concrete call of one op: its positional array inputs (by name) and its keyword parameters.

The arrays of a :class:`Case` are the *given inputs*: float arrays are already in the dtype under test
(float32 or float64), integer arrays (labels, packed bits) in their own dtype. The reference sees float64
copies of exactly these values (:meth:`Case.reference_args`), so rounding the inputs to float32 never
counts against a backend.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


@dataclass
class Case:
    """``getattr(backend, op)(*arrays, **kwargs)``; ``label`` names an edge case ("" for a random one)."""

    op: str
    arrays: tuple[tuple[str, Optional[np.ndarray]], ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.arrays)

    def get(self, name: str) -> Optional[np.ndarray]:
        for key, value in self.arrays:
            if key == name:
                return value
        raise KeyError(f"case of {self.op} has no input {name!r}; it has {self.names}")

    def shapes(self) -> dict[str, Optional[tuple[int, ...]]]:
        return {name: (None if a is None else tuple(a.shape)) for name, a in self.arrays}

    def reference_args(self) -> list[Optional[np.ndarray]]:
        """float64 copies of the float inputs, the other inputs unchanged (the reference's arguments)."""
        return [to_f64(a) for _, a in self.arrays]

    @property
    def float_dtype(self) -> Optional[np.dtype]:
        """The dtype under test: that of the first float input (None where there is none)."""
        return next((a.dtype for _, a in self.arrays if isinstance(a, np.ndarray) and a.dtype.kind == "f"), None)

    def reference_kwargs(self) -> dict[str, Any]:
        """A copy of the keyword parameters as the float64 reference must see them. SEMANTICS 10 compares the
        fda ``clip`` in the input's dtype, so it is rounded to the dtype under test here: the reference, on
        float64 copies, then keeps the gradient of a float32 x equal to float32(clip) as a float32
        implementation must (an unrounded 0.1 would drop it)."""
        kwargs = copy.deepcopy(self.kwargs)
        params, dtype = kwargs.get("params"), self.float_dtype
        if isinstance(params, dict) and params.get("clip") is not None and dtype is not None:
            params["clip"] = float(dtype.type(params["clip"]))
        return kwargs

    def strided(self) -> Optional["Case"]:
        """The same case with every input of two or more elements as :func:`noncontiguous` lays it out. None
        where no input changes (all 0-d or absent)."""
        arrays = tuple((name, noncontiguous(a)) for name, a in self.arrays)
        if all(new is old for (_, new), (_, old) in zip(arrays, self.arrays)):
            return None
        return Case(self.op, arrays, copy.deepcopy(self.kwargs), self.label)

    def replace_arrays(self, **new: Optional[np.ndarray]) -> "Case":
        arrays = tuple((name, new.get(name, a)) for name, a in self.arrays)
        return Case(self.op, arrays, dict(self.kwargs), self.label)

    def describe(self) -> str:
        parts = [f"{n}{'=None' if a is None else list(a.shape)}" for n, a in self.arrays]
        kw = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.op}({', '.join(parts)}{', ' if kw else ''}{kw})"


def noncontiguous(a: Optional[np.ndarray], layout: Optional[str] = None) -> Optional[np.ndarray]:
    """The values of ``a`` as a non-C-contiguous array (what the engine's transposes, slices and a
    channels-last buffer hand an op); ``a`` itself where it has fewer than two elements (or is None).

    - 2-D: Fortran order, a transposed matrix (the engine's ``w.T``; BLAS takes another path for it);
    - 3-D and up: ``layout="channels_last"``, axis 1 last in memory (an NHWC buffer viewed as NCHW), or
      ``"batch_last"``, axis 0 last in memory (a CHWN buffer, as some GPU kernels keep). Neither is C- or
      Fortran-contiguous, so a kernel that handles those two orders, or NCHW and NHWC, and reads any other
      layout in memory order differs. By default the shape chooses (an even sum of its sizes:
      channels-last), so the cases of an op see both and a reproduction of ``a`` gets the same;
    - 1-D, and where the above is still C-contiguous, or for 3-D and up Fortran-contiguous (size-1 axes):
      every other element of a buffer twice as long (gaps between the elements: never contiguous)."""
    if not isinstance(a, np.ndarray) or a.size < 2:
        return a
    if layout is None:
        layout = "channels_last" if sum(a.shape) % 2 == 0 else "batch_last"
    if a.ndim == 2:
        view = np.asfortranarray(a)
    elif a.ndim >= 3:
        axis = 1 if layout == "channels_last" else 0
        view = np.moveaxis(np.ascontiguousarray(np.moveaxis(a, axis, -1)), -1, axis)
    else:
        view = a
    if not view.flags.c_contiguous and (a.ndim < 3 or not view.flags.f_contiguous):
        return view
    buffer = np.zeros(2 * a.size, dtype=a.dtype)
    buffer[::2] = a.reshape(-1)
    return buffer[::2].reshape(a.shape)


def to_f64(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """float64 copy of a float array; other arrays (and None) unchanged."""
    if a is None or not isinstance(a, np.ndarray):
        return a
    if a.dtype.kind == "f":
        return a.astype(np.float64)
    return a


def as_outputs(result: Any) -> list[Any]:
    """An op's result as a list of outputs (a single array becomes a one-element list)."""
    if isinstance(result, (tuple, list)):
        return list(result)
    return [result]


def plain(value: Any) -> Any:
    """numpy scalars and tuples inside kwargs as plain Python values (for repr and JSON)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value
