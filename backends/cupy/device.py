"""The CuPy backend proper: :class:`ArrayBackend` on ``cupy`` with the CUDA kernel set.

Imported only by :func:`backends.cupy.backend` after a CUDA device was found, so that importing
``fdaref.backends.cupy`` never touches CUDA.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import cupy
import numpy as np

from .cuda_kernels import CudaKernels
from .ops import ArrayBackend, parse_device


def configure_tf32(allow: bool) -> str:
    """Set CuPy's cuBLAS compute type for float32 GEMMs: full FP32 (``allow=False``, what conformance
    needs) or TF32 tensor cores (``allow=True``). Returns the compute type's name.

    CuPy reads ``CUPY_TF32=1`` at import to allow TF32; this call overrides that process-wide setting
    for float32 (``cupy._core._routines_linalg.set_compute_type``). cuDNN is not used by this backend
    (convolution is im2col + cuBLAS GEMM), so nothing else can pick TF32. ``NVIDIA_TF32_OVERRIDE=0``
    in the environment also forbids TF32 in every NVIDIA library.
    """
    from cupy._core import _routines_linalg as linalg
    kind = linalg.COMPUTE_TYPE_TF32 if allow else linalg.COMPUTE_TYPE_FP32
    linalg.set_compute_type(np.dtype(np.float32), kind)
    return str(linalg.compute_type_to_str(linalg.get_compute_type(np.dtype(np.float32))))


class CupyBackend(ArrayBackend):
    """fdaref's op table on CuPy arrays (one CUDA device; see the package docstring)."""

    name = "cupy"
    devices = ("cuda",)
    dtypes = ("float32", "float64")

    def __init__(self, allow_tf32: Optional[bool] = None) -> None:
        super().__init__(cupy, CudaKernels())
        if allow_tf32 is None:
            allow_tf32 = os.environ.get("FDAREF_CUPY_TF32", "0") == "1"
        self.allow_tf32 = bool(allow_tf32)
        self.float32_compute_type = configure_tf32(self.allow_tf32)
        try:
            runtime = cupy.cuda.runtime.runtimeGetVersion()
            runtime_s = f"{runtime // 1000}.{runtime % 1000 // 10}"
        except Exception:  # pragma: no cover - informative only
            runtime_s = "?"
        self.version = f"{cupy.__version__} (CUDA runtime {runtime_s})"

    def from_numpy(self, a: np.ndarray, device: str = "cuda") -> Any:
        index = parse_device(device)
        with cupy.cuda.Device(index):
            return cupy.array(np.asarray(a), copy=True)

    def to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, np.ndarray):
            return x
        return cupy.asnumpy(x)

    def smoke_test(self) -> None:
        """Compile and run one element-wise kernel (raises if NVRTC or the driver cannot)."""
        x = cupy.asarray(np.array([-2.0, 0.0, 3.0], dtype=np.float32))
        got = cupy.asnumpy(self.sign(x, zero=-1.0))
        if got.tolist() != [-1.0, -1.0, 1.0]:
            raise RuntimeError(f"sign kernel smoke test returned {got.tolist()}")
