"""The ``cupy`` backend: fdaref's op table on CuPy arrays (CUDA).

Importing this package never needs a GPU. :func:`backend` (the entry point ``fdaref.backends:cupy``)
raises :class:`fdaref.backend_loader.BackendUnavailable` with a one-line reason where CuPy is missing, no
CUDA device is visible, or kernels cannot be compiled; ``fdaref info`` and ``fdaref conform`` print it.

Layout:
- :mod:`.kernels_src`  CUDA C++ source (host-compilable device functions + kernel wrappers), strings only;
- :mod:`.geometry`     window / im2col / col2im / launch-parameter logic (pure Python);
- :mod:`.ops`          every op written against an array module ``xp`` (+ a portable kernel set);
- :mod:`.cuda_kernels` the CuPy ElementwiseKernel / RawModule kernel set (imported only with a GPU);
- :mod:`.device`       :class:`CupyBackend` (imported only with a GPU).

TF32: float32 GEMMs run in full FP32 by default (conformance); ``CupyBackend(allow_tf32=True)`` or
``FDAREF_CUPY_TF32=1`` enables TF32, and then ``refuses`` declines the GEMM ops in float32.
"""
from __future__ import annotations

from typing import Any, Optional

from fdaref.backend_loader import BackendUnavailable

__all__ = ["backend", "unavailable_reason", "BackendUnavailable"]

_INSTANCE: Any = None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def unavailable_reason() -> Optional[str]:
    """None when CuPy sees a CUDA device, else a one-line reason why the backend cannot run here."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return _one_line(f"CuPy is not importable here (pip install cupy-cuda13x): {type(exc).__name__}: {exc}")
    try:
        available = bool(cupy.is_available())
    except Exception as exc:  # pragma: no cover - is_available() itself is documented not to raise
        return _one_line(f"CuPy {cupy.__version__} cannot query CUDA: {type(exc).__name__}: {exc}")
    if available:
        return None
    detail = ""
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        detail = f"; CUDA says: {exc}"
    return _one_line(f"CuPy {cupy.__version__} is installed but no CUDA device is available "
                     f"(cupy.is_available() is False){detail}")


def backend() -> Any:
    """The CuPy op table (one per process). Raises BackendUnavailable with the reason where it cannot run."""
    global _INSTANCE
    if _INSTANCE is not None:
        return _INSTANCE
    reason = unavailable_reason()
    if reason is not None:
        raise BackendUnavailable(reason)
    try:
        from .device import CupyBackend
        be = CupyBackend()
        be.smoke_test()
    except BackendUnavailable:
        raise
    except Exception as exc:
        raise BackendUnavailable(_one_line(
            f"CuPy sees a CUDA device but cannot run fdaref's kernels (NVRTC / driver): "
            f"{type(exc).__name__}: {exc}")) from exc
    _INSTANCE = be
    return be
