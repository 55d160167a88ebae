"""The GPU kernel set: ``cupy.ElementwiseKernel`` / ``cupy.RawModule`` objects built from :mod:`.kernels_src`.

Imported only once a CUDA device is known to exist (see ``backends/cupy/__init__.py``); kernels compile
lazily on first use (NVRTC) and CuPy caches them on disk (``~/.cupy/kernel_cache``).
"""
from __future__ import annotations

from typing import Any

import cupy
import numpy as np

from .geometry import Window, launch_config
from .kernels_src import DEVICE_FUNCTIONS, ELEMENTWISE, RAW_KERNEL_NAMES, RAW_KERNELS

_BLOCK = 256


class CudaKernels:
    """Same interface as :class:`backends.cupy.ops.PortableKernels`, on CuPy arrays, one launch each."""

    def __init__(self) -> None:
        self.xp = cupy
        self._ew = {name: cupy.ElementwiseKernel(inp, out, body, name=f"fdaref_{name}", preamble=DEVICE_FUNCTIONS)
                    for name, (inp, out, body) in ELEMENTWISE.items()}
        self._module: Any = None

    def _raw(self, name: str) -> Any:
        if self._module is None:
            self._module = cupy.RawModule(code=DEVICE_FUNCTIONS + RAW_KERNELS, options=("--std=c++14",),
                                          name_expressions=RAW_KERNEL_NAMES)
        return self._module.get_function(name)

    # element-wise (scalars are cast to the declared kernel parameter types by CuPy)
    def sign(self, x: Any, zero: float) -> Any:
        return self._ew["sign"](x, float(zero))

    def surrogate(self, x: Any, est: int, n: int, p: float, clip_on: int, clip: float) -> Any:
        return self._ew["surrogate"](x, int(est), int(n), float(p), int(clip_on), float(clip))

    def surrogate_mul(self, g: Any, x: Any, est: int, n: int, p: float, clip_on: int, clip: float) -> Any:
        return self._ew["surrogate_mul"](g, x, int(est), int(n), float(p), int(clip_on), float(clip))

    def quant_fwd(self, t: Any, fc: Any, zero: float, alpha: float, eta: int, a: float) -> Any:
        return self._ew["quant_fwd"](t, fc, float(zero), float(alpha), int(eta), float(a))

    def quant_bwd(self, g: Any, t: Any, dfc: Any, est: int, n: int, p: float, clip_on: int, clip: float,
                  alpha: float, eta: int, a: float) -> Any:
        return self._ew["quant_bwd"](g, t, dfc, int(est), int(n), float(p), int(clip_on), float(clip),
                                     float(alpha), int(eta), float(a))

    # raw kernels (inputs already C-contiguous uint64)
    def xnor_conv2d(self, x: Any, w: Any, *, channels: int, win: Window, pad: int) -> Any:
        n, h, wd, words = x.shape
        c_out = w.shape[0]
        ho, wo = win.out_shape
        out = cupy.empty((n, c_out, ho, wo), dtype=cupy.int32)
        total = out.size
        if total:
            grid, block = launch_config(total, _BLOCK)
            i32 = np.int32
            self._raw("fdaref_xnor_conv2d")(grid, block, (
                x, w, out, np.int64(total), i32(c_out), i32(ho), i32(wo), i32(h), i32(wd), i32(words),
                i32(channels), i32(win.kernel[0]), i32(win.kernel[1]), i32(win.stride[0]), i32(win.stride[1]),
                i32(win.padding[0]), i32(win.padding[1]), i32(win.dilation[0]), i32(win.dilation[1]), i32(pad)))
        return out

    def xnor_linear(self, x: Any, w: Any, *, features: int) -> Any:
        b, words = x.shape
        o = w.shape[0]
        out = cupy.empty((b, o), dtype=cupy.int32)
        if out.size:
            grid, block = launch_config(out.size, _BLOCK)
            self._raw("fdaref_xnor_linear")(grid, block, (x, w, out, np.int64(out.size), np.int32(o),
                                                          np.int32(words), np.int32(features)))
        return out
