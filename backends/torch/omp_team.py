"""Run a numba kernel on torch's own OpenMP team (the threads torch's CPU kernels use).

A second pool of threads beside torch's (Python threads, or numba's ``prange``, which loads another OpenMP
runtime) competes with torch's workers, which spin for a while after each of torch's parallel operations:
measured in session 5, a quantizer pass right after ``torch.sin`` took 5.3 ms on two threads instead of
2.2. Here the work is handed to the very runtime torch loaded (``GOMP_parallel`` of its libgomp, found in
the process's memory map), so it runs on the same, already spinning, threads.

The contract with the kernels (:mod:`.cpu_loops`): a numba ``cfunc`` taking one ``int64`` context array whose
element 0 is a slot counter and element 1 the number of slots (:func:`context` reads it); each thread of the
team takes slots with :func:`next_slot` until they run out (:func:`image_range`: a slot's images), so the
work of every slot is done whatever size the team really has (a team of one inside a nested parallel
region does them all) and which thread did a slot never changes a result. Without torch's libgomp
(another parallel backend, another platform), :func:`run` calls the function once on the calling thread,
which then takes every slot.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
from typing import Any, Optional

import torch

log = logging.getLogger(__name__)

try:
    import llvmlite.ir as _ir
    from numba import carray as _carray, njit as _njit, types as _types
    from numba.extending import intrinsic
except ImportError:  # pragma: no cover - depends on the environment
    intrinsic = None


def _loaded_libgomp() -> Optional[str]:
    """The path of torch's libgomp among those mapped into this process: the one in torch's own package
    (its wheels bundle one), else the only one mapped (a torch linked to the system's); None where neither
    settles it. Which other copies are mapped (numba's OpenMP layer maps the system's) does not matter, so
    the answer does not depend on what ran first."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line and "/" in line}
    except OSError:
        return None
    own = {p for p in paths if p.startswith(os.path.dirname(torch.__file__) + os.sep)}
    for candidates in (own, paths):
        if len(candidates) == 1:
            return candidates.pop()
    return None


@functools.lru_cache(maxsize=None)
def _gomp_parallel() -> Any:
    """``GOMP_parallel(fn, data, num_threads, flags)`` of torch's OpenMP runtime, or None."""
    if "OpenMP" not in torch.__config__.parallel_info():
        return None
    path = _loaded_libgomp()
    if path is None or not os.path.exists(path):
        return None
    try:
        fn = ctypes.CDLL(path).GOMP_parallel
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    fn.restype = None
    log.debug("OpenMP team through %s", path)
    return fn


def available() -> bool:
    """Whether :func:`run` can use more than the calling thread."""
    return _gomp_parallel() is not None


def run(kernel: Any, context: Any, slots: int) -> None:
    """Run the cfunc ``kernel`` on ``context`` (int64 numpy array, ``[0, slots, ...]``) with ``slots``
    threads of torch's team (the calling thread alone where there is no team or one slot)."""
    parallel = _gomp_parallel()
    context[0] = 0
    if parallel is None or slots <= 1:
        kernel.ctypes(context.ctypes.data)
    else:
        parallel(kernel.address, context.ctypes.data, slots, 0)   # the GIL is released meanwhile


if intrinsic is not None:
    def _pointer_cast(dtype: Any) -> Any:
        @intrinsic
        def cast(typingctx, address):  # pragma: no cover - compiled
            """An int64 address as a pointer to ``dtype`` (for ``numba.carray``)."""
            def codegen(context, builder, signature, args):
                return builder.inttoptr(args[0], context.get_value_type(signature.return_type))
            return _types.CPointer(dtype)(_types.int64), codegen
        return cast

    f32_ptr = _pointer_cast(_types.float32)
    f64_ptr = _pointer_cast(_types.float64)
    i64_ptr = _pointer_cast(_types.int64)

    @intrinsic
    def address(typingctx, pointer):  # pragma: no cover - compiled
        """A void pointer as an int64 address."""
        def codegen(context, builder, signature, args):
            return builder.ptrtoint(args[0], context.get_value_type(_types.int64))
        return _types.int64(_types.voidptr), codegen

    @intrinsic
    def take_slot(typingctx, counter):  # pragma: no cover - compiled
        """The next slot: atomically return ``*counter`` and add one to it."""
        def codegen(context, builder, signature, args):
            return builder.atomic_rmw("add", args[0], _ir.Constant(_ir.IntType(64), 1), "monotonic")
        return _types.int64(_types.CPointer(_types.int64)), codegen

    @_njit(inline="always", cache=True)
    def context(data, length):  # pragma: no cover - compiled
        """The cfunc's ``data`` as the int64 context array of ``length`` elements."""
        return _carray(i64_ptr(address(data)), length)

    @_njit(inline="always", cache=True)
    def next_slot(data):  # pragma: no cover - compiled
        """The calling thread's next slot (slots past the last mean: done)."""
        return take_slot(i64_ptr(address(data)))

    @_njit(inline="always", cache=True)
    def image_range(images, slot, slots):  # pragma: no cover - compiled
        """(b0, b1): slot ``slot`` of ``slots`` has images b0 .. b1 - 1 (contiguous, sizes within one)."""
        return images * slot // slots, images * (slot + 1) // slots
