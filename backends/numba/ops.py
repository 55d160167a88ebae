"""The ``numba`` backend: fdaref's op table (:class:`fdaref.optable.OpTable`) with Numba CPU kernels.

What runs where:
- Numba kernels (parallel where it pays, fastmath off, cached on disk): sign, every built-in surrogate (fda fused
  in one pass with the closed form and the range reduction of :func:`fdaref.estimators.fda`, see
  :mod:`._elementwise`), the noise module and the quantizer (forward: sign + alpha (fc + eta) in one pass;
  backward: g est' + alpha (dT + g eta') in one pass; on activations straight from NCHW, :mod:`._noise_act`),
  conv im2col / col2im, batch norm, PReLU, max / average pooling, bit packing and the XNOR-popcount conv2d /
  linear (:mod:`._bitpack`), plus the inference fast paths :meth:`NumbaBackend.sign_xnor_conv2d` and
  :meth:`NumbaBackend.prepare_xnor_conv2d` (weights prepared once per layer).
- BLAS through numpy (``@``): the GEMMs of conv, linear and the noise module on weights. Loading this backend
  makes numpy's OpenBLAS single-threaded (see :func:`_configure_blas`) and sets OMP_WAIT_POLICY=PASSIVE unless
  the user set it (see ``__init__``). The conv still uses every core: its batch chunks (im2col, GEMM,
  col2im) run side by side on Python threads (:func:`_map_chunks`).
- Plain numpy written here: cross entropy (float64 inside, with fdaref's log softmax and targets), linear.
- fdaref's own functions: the host-array plumbing, relu, weight_scale, and every argument check (so the errors are the
  reference's); a surrogate registered by a third party (any estimator that is not one of fdaref's built-ins)
  is evaluated by :func:`fdaref.estimators.estimator_grad`.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Optional, Sequence

import numba
import numpy as np

from fdaref import estimators as _est
from fdaref import scale as _scale
from fdaref._validate import check_float_array, check_grad, check_int, check_real
from fdaref.binarize import check_zero
from fdaref.functional import activation as _act
from fdaref.functional._geometry import geometry, out_size, pad_value_of
from fdaref.functional.bitpack import check_pack_args, check_packed, words as _words
from fdaref.functional.conv import check_conv_args
from fdaref.functional.linear import check_linear_args
from fdaref.functional.loss import check_cross_entropy_args, check_scalar_grad, log_softmax, smoothed_targets
from fdaref.functional.norm import check_batch_norm_args, check_batch_norm_grad_args
from fdaref.functional.pool import check_pool_args
from fdaref.noise import check_module, row_length
from fdaref.host import HostArrays

from . import _bitpack as bp
from . import _elementwise as ew
from . import _layers as ly
from . import _noise_act as na

Pair = tuple[int, int]
_ETA_CODE = {"sin": 0, "linear": 1, "none": 2}
# fdaref's built-in estimators, by the function registered for them (a replaced one falls back).
_BUILTIN = {"fda": _est.fda, "ste": _est.ste, "clipped_ste": _est.clipped_ste, "approx_sign": _est.approx_sign,
            "sign_swish": _est.sign_swish, "tanh": _est.tanh, "fda_series": _est.fda_series}
CONV_CHUNK_BYTES = 4 << 20  # im2col columns per batch chunk (keeps the GEMM operands in cache)
# Lane width of the XNOR conv's working copy: C <= 8 / 16 / 32 channels fit a uint8 / 16 / 32 lane, so a
# SIMD register holds 8 / 4 / 2 times more pixels than with the 64-bit words of the SEMANTICS 9 layout.
_LANES = {b: np.empty(0, dtype=f"uint{b}") for b in (8, 16, 32, 64)}
_XNOR_PLANS: dict = {}      # NumbaBackend._xnor_plan's results by call signature
XNOR_PAR_MIN = 1 << 19       # popcounts below which the XNOR conv runs serially: waking the threads costs
                             # 5 to 25 us, more than a batch-1 resnet20 conv takes (10 to 15 us serial)


# ------------------------------------------------------------------------------------------------------
# helpers

def _flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).reshape(-1)


def _ncp(x: np.ndarray) -> np.ndarray:
    """x (N, C, ...) as a contiguous (N, C, rest) array."""
    return np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)


def _elementwise(serial, parallel, size: int, *args: Any) -> None:
    """Run a kernel pair: the serial body for small arrays, the parallel driver otherwise."""
    if size < ew.PAR_MIN:
        serial(*args, 0, size)
    else:
        parallel(*args)


def _conv_chunks(n_b: int, bytes_per_image: int) -> list[tuple[int, int]]:
    """Batch chunks of near-equal size for the conv: each chunk's im2col fits CONV_CHUNK_BYTES, and their
    number is a multiple of the thread count (when the batch allows), so every thread gets the same work."""
    threads = numba.get_num_threads()
    per_chunk = max(1, CONV_CHUNK_BYTES // max(1, bytes_per_image))   # images whose columns fit
    count = -(-n_b // per_chunk)
    count = min(n_b, -(-count // threads) * threads)
    return [(n_b * i // count, n_b * (i + 1) // count) for i in range(count)]


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _map_chunks(work: Callable[[int, int], Any], chunks: list[tuple[int, int]]) -> list[Any]:
    """``work(n0, n1)`` for every chunk, on numba's thread count of Python threads. The chunk kernels
    release the GIL and numpy releases it around BLAS, so the threads really run side by side; each GEMM
    stays single-threaded (see :func:`_configure_blas`), so no thread pool spins against another."""
    threads = numba.get_num_threads()
    if threads == 1 or len(chunks) == 1:
        return [work(n0, n1) for n0, n1 in chunks]
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="fdaref-conv")
    return list(_POOLS[threads].map(lambda c: work(*c), chunks))


BLOCK = 4096   # elements per "plane" of the weight layout in the quantizer kernels


def _planes(t_shape: tuple, act: bool, c_dim: int, hw: int) -> tuple[int, int, int]:
    """(C, plane size, number of planes) for the quantizer kernels (see :mod:`._elementwise`)."""
    size = int(np.prod(t_shape))
    if act:
        return c_dim, hw, size // max(1, hw)
    return 1, BLOCK, -(-size // BLOCK)


def _run_planes(serial, parallel, size: int, planes: int, *args: Any) -> None:
    threads = numba.get_num_threads()
    if size < ew.PAR_MIN or planes < 2 or threads == 1:
        serial(*args, 0, planes)
    else:
        parallel(*args, planes, min(planes, 4 * threads))


def _resolve_estimator(name: str, params: Optional[Mapping[str, Any]]) -> tuple[int, dict]:
    """(code, resolved params): code -1 = fda (fused kernel), >= 0 a built-in, None-like -3 = fallback."""
    est = _est.get_estimator(name)
    p = est.resolve(params)
    if _BUILTIN.get(name) is not est.grad:
        return -3, p
    if name == "fda":
        return -1, p
    return ew.EST_CODES[name], p


def _est_args(code: int, p: dict, dtype: np.dtype) -> tuple:
    """(beta, n, omega, clip, m, np1, c6, scale) for the kernels on inputs of ``dtype``. The clip is rounded to
    that dtype (SEMANTICS 10): the kernels compare |x| with it in float64, which then decides as the dtype does
    (an unrounded 0.1 would drop the gradient of a float32 x equal to float32(0.1))."""
    n = int(p.get("n", 0))
    omega = float(p.get("omega", 0.1))
    clip = p.get("clip")
    m, np1, c6, scale, _, clipv = ew.fda_constants(n, omega, None if clip is None else float(dtype.type(clip)))
    return float(p.get("beta", 1.0)), n, omega, clipv, m, np1, c6, scale


def _check_module(t: np.ndarray, w1: np.ndarray, w2: np.ndarray, layout: str, eta_kind: str, a: float) -> None:
    """fdaref's checks of the noise module, plus one dtype for t, w1 and w2 (the kernels are typed)."""
    check_module(t, w1, w2, layout, eta_kind, a)
    if w1.dtype != t.dtype or w2.dtype != t.dtype:
        raise TypeError(f"w1, w2: expected the dtype of t ({t.dtype}), got {w1.dtype}, {w2.dtype}")


def _rows(t: np.ndarray, layout: str) -> tuple[np.ndarray, int, int, bool]:
    """(rows (R, d) contiguous, C, H*W, is_activation_4d) of ``t`` under ``layout`` (SEMANTICS 3)."""
    d = row_length(t.shape, layout)
    if layout == "activation" and t.ndim == 4:
        b, c, h, w = t.shape
        rows = np.empty((b * h * w, c), dtype=t.dtype)
        ly.bcp_to_rows(np.ascontiguousarray(t).reshape(b, c, h * w), rows)
        return rows, c, h * w, True
    return np.ascontiguousarray(t).reshape(-1, d), d, 1, False


def limit_blas_threads(n: int) -> bool:
    """Set the thread count of the OpenBLAS that numpy uses (scipy-openblas in numpy's wheels, or a plain
    OpenBLAS) to ``n``; True if a library took it. Linux only (the loaded library is found in /proc/self/maps)."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and line.rstrip().endswith(".so")
                     or "openblas" in line.lower() and ".so" in line.split()[-1]}
    except OSError:
        return False
    done = False
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn(int(n))
                done = True
                break
    return done


def _configure_blas() -> None:
    """The numba backend parallelises inside its own kernels; OpenBLAS's worker threads, which busy-wait after
    every GEMM, then fight them for the cores (measured on the 2-core box: a resnet20 step 2 s with one BLAS
    thread, 13 s with two). So numpy's BLAS runs single-threaded once this backend is loaded, unless the user
    chose: OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set, or FDAREF_NUMBA_BLAS_THREADS = N (0: leave it alone)."""
    choice = os.environ.get("FDAREF_NUMBA_BLAS_THREADS")
    if choice is None and ("OPENBLAS_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" in os.environ):
        return
    n = 1 if choice is None else int(choice)
    if n > 0:
        limit_blas_threads(n)


# ------------------------------------------------------------------------------------------------------

class NumbaBackend(HostArrays):
    """fdaref's op table on the CPU with Numba kernels (see the module docstring for what runs where).
    Arrays are host numpy arrays, so the plumbing is the reference's (:class:`fdaref.host.HostArrays`)."""

    name = "numba"

    def __init__(self) -> None:
        self.version = f"numba {numba.__version__}, numpy {np.__version__}"
        _configure_blas()

    # -- SEMANTICS 1-2 --------------------------------------------------------------------------------------------
    def sign(self, x: np.ndarray, zero: float = -1.0) -> np.ndarray:
        check_float_array(x, "x")
        zero = check_zero(zero)
        xf = _flat(x)
        out = np.empty_like(xf)
        _elementwise(ew.sign_range, ew.sign_par, xf.size, xf, out, x.dtype.type(zero))
        return out.reshape(x.shape)

    def surrogate(self, x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        check_float_array(x, "x")
        code, p = _resolve_estimator(estimator, params)
        if code == -3:
            return _est.estimator_grad(x, estimator, **p)     # reference fallback (third-party estimator)
        xf = _flat(x)
        out = np.empty_like(xf)
        beta, n, omega, clip, m, np1, c6, scale = _est_args(code, p, x.dtype)
        if code == -1:
            _elementwise(ew.fda_range, ew.fda_par, xf.size, xf, out, m, np1, c6, scale, omega, clip)
        else:
            _elementwise(ew.est_range, ew.est_par, xf.size, xf, out, code, beta, n, omega, clip)
        return out.reshape(x.shape)

    # -- SEMANTICS 3-4 --------------------------------------------------------------------------------------------
    def _module_forward(self, t: np.ndarray, w1: np.ndarray, w2: np.ndarray, layout: str, eta_kind: str,
                        a: float, zero: float, alpha: float) -> np.ndarray:
        if layout == "activation" and t.ndim == 4:      # straight from NCHW (see _noise_act)
            b, c, hh, ww = t.shape
            t3 = np.ascontiguousarray(t).reshape(b, c, hh * ww)
            h = np.empty((b, w1.shape[1], hh * ww))
            na.hidden(t3, w1, True, h)
            out = np.empty_like(t3)
            na.forward_out(t3, h, w2, zero, alpha, _ETA_CODE[eta_kind], float(a), out)
            return out.reshape(t.shape)
        rows, c_dim, hw, act = _rows(t, layout)
        h = rows @ w1
        ew.relu_inplace_range(h.reshape(-1), 0, h.size)
        fc = np.ascontiguousarray(h @ w2).reshape(-1)
        tf = _flat(t)
        out = np.empty_like(tf)
        cd, pl, planes = _planes(t.shape, act, c_dim, hw)
        _run_planes(ew.qfwd_range, ew.qfwd_par, tf.size, planes, tf, fc, out, zero, alpha, _ETA_CODE[eta_kind],
                    float(a), cd, pl)
        return out.reshape(t.shape)

    def noise_forward(self, t: np.ndarray, w1: np.ndarray, w2: np.ndarray, *, layout: str, eta_kind: str = "sin",
                      a: float = 0.1) -> np.ndarray:
        _check_module(t, w1, w2, layout, eta_kind, a)
        return self._module_forward(t, w1, w2, layout, eta_kind, a, math.nan, 1.0)

    def _module_backward(self, g: np.ndarray, t: np.ndarray, w1: np.ndarray, w2: np.ndarray, layout: str,
                         eta_kind: str, a: float, alpha: float, code: int, p: dict,
                         est_arr: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        beta, n, omega, clip, m, np1, c6, scale = _est_args(max(code, 0), p, t.dtype)
        kcode = -2 if code == -3 else code
        if layout == "activation" and t.ndim == 4:      # straight from NCHW (see _noise_act)
            b, c, hh, ww = t.shape
            t3 = np.ascontiguousarray(t).reshape(b, c, hh * ww)
            g3 = np.ascontiguousarray(g).reshape(b, c, hh * ww)
            hid = np.empty((b, w1.shape[1], hh * ww))
            na.hidden(t3, w1, False, hid)
            dh = np.empty_like(hid)
            na.hidden_grad(g3, w2, hid, dh)
            out = np.empty_like(t3)
            na.backward_dt(g3, t3, dh, w1, float(alpha), _ETA_CODE[eta_kind], float(a), kcode, beta, n, omega, clip,
                           m, np1, c6, scale, out)
            dw1 = np.empty(w1.shape)
            dw2 = np.empty(w2.shape)
            na.weight_grads(t3, g3, hid, dh, dw1, dw2)
            if est_arr is not None:
                out += g3 * np.ascontiguousarray(est_arr).reshape(g3.shape)
            return out.reshape(t.shape), dw1.astype(t.dtype), dw2.astype(t.dtype)
        rows, c_dim, hw, act = _rows(t, layout)
        grows, _, _, _ = _rows(g, layout)
        h = rows @ w1
        dh = grows @ w2.T
        ew.relu_mask_mul_range(dh.reshape(-1), h.reshape(-1), 0, h.size)
        d_rows = np.ascontiguousarray(dh @ w1.T).reshape(-1)
        dw1 = rows.T @ dh
        ew.relu_inplace_range(h.reshape(-1), 0, h.size)
        dw2 = h.T @ grows
        gf, tf = _flat(g), _flat(t)
        out = np.empty_like(tf)
        cd, pl, planes = _planes(t.shape, act, c_dim, hw)
        _run_planes(ew.qbwd_range, ew.qbwd_par, tf.size, planes, gf, tf, d_rows, out, float(alpha),
                    _ETA_CODE[eta_kind], float(a), kcode, beta, n, omega, clip, m, np1, c6, scale, cd, pl, True)
        if est_arr is not None:
            out += gf * _flat(est_arr)
        return out.reshape(t.shape), dw1, dw2

    def noise_backward(self, g: np.ndarray, t: np.ndarray, w1: np.ndarray, w2: np.ndarray, *, layout: str,
                       eta_kind: str = "sin", a: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        _check_module(t, w1, w2, layout, eta_kind, a)
        check_float_array(g, "g")
        if g.shape != t.shape:
            raise ValueError(f"g: expected the shape of t {t.shape}, got {g.shape}")
        return self._module_backward(g, t, w1, w2, layout, eta_kind, a, 1.0, -2, {}, None)

    def quantize_forward(self, t: np.ndarray, w1: Optional[np.ndarray], w2: Optional[np.ndarray], *, alpha: float,
                         zero: float = -1.0, layout: str = "weight", eta_kind: str = "sin", a: float = 0.1,
                         training: bool = True) -> np.ndarray:
        check_float_array(t, "t")
        check_real(alpha, "alpha")
        if not training or alpha == 0 or w1 is None:
            return self.sign(t, zero)
        zero = check_zero(zero)
        _check_module(t, w1, w2, layout, eta_kind, a)
        return self._module_forward(t, w1, w2, layout, eta_kind, a, zero, float(alpha))

    def quantize_backward(self, g: np.ndarray, t: np.ndarray, w1: Optional[np.ndarray], w2: Optional[np.ndarray], *,
                          alpha: float, estimator: str = "fda", params: Optional[Mapping[str, Any]] = None,
                          layout: str = "weight", eta_kind: str = "sin", a: float = 0.1
                          ) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
        check_float_array(g, "g")
        check_float_array(t, "t")
        check_real(alpha, "alpha")
        if g.shape != t.shape:
            raise ValueError(f"g: expected the shape of t {t.shape}, got {g.shape}")
        code, p = _resolve_estimator(estimator, params)
        if w1 is None or alpha == 0:
            if code == -3:
                dt = g * _est.estimator_grad(t, estimator, **p)
            else:
                gf, tf = _flat(g), _flat(t)
                out = np.empty_like(tf)
                beta, n, omega, clip, m, np1, c6, scale = _est_args(max(code, 0), p, t.dtype)
                cd, pl, planes = _planes(t.shape, False, 1, 1)
                _run_planes(ew.qbwd_range, ew.qbwd_par, tf.size, planes, gf, tf, tf, out, 0.0, 2, 0.0, code, beta,
                            n, omega, clip, m, np1, c6, scale, cd, pl, False)
                dt = out.reshape(t.shape)
            if w1 is None:
                return dt, None, None
            _check_module(t, w1, w2, layout, eta_kind, a)
            return dt, np.zeros_like(w1), np.zeros_like(w2)
        _check_module(t, w1, w2, layout, eta_kind, a)
        est_arr = _est.estimator_grad(t, estimator, **p) if code == -3 else None
        dt, dw1, dw2 = self._module_backward(g, t, w1, w2, layout, eta_kind, a, float(alpha), code, p, est_arr)
        return dt, alpha * dw1, alpha * dw2

    # -- SEMANTICS 5 ----------------------------------------------------------------------------------------------
    weight_scale = staticmethod(_scale.weight_scale)

    def conv2d_forward(self, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], *, stride: Pair = (1, 1),
                       padding: Pair = (0, 0), dilation: Pair = (1, 1), pad_value: float = 0.0) -> np.ndarray:
        (sh, sw), (ph, pw), (dh, dw), pv, (ho, wo) = check_conv_args(x, w, b, stride, padding, dilation,
                                                                   pad_value)
        x = np.ascontiguousarray(x)
        n_b, c_in, _, _ = x.shape
        c_out, _, kh, kw = w.shape
        k, p_n = c_in * kh * kw, ho * wo
        wm = np.ascontiguousarray(w).reshape(c_out, k)
        out = np.empty((n_b, c_out, p_n), dtype=x.dtype)

        def chunk(n0: int, n1: int) -> None:
            cols = np.empty((k, (n1 - n0) * p_n), dtype=x.dtype)
            ly.im2col(x[n0:n1], kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, x.dtype.type(pv), cols)
            ly.cn_to_nc(wm @ cols, n1 - n0, out[n0:n1])

        _map_chunks(chunk, _conv_chunks(n_b, k * p_n * x.itemsize))
        if b is not None:
            ly.add_bias_ncp(out, b)
        return out.reshape(n_b, c_out, ho, wo)

    def conv2d_backward(self, g: np.ndarray, x: np.ndarray, w: np.ndarray, *, has_bias: bool,
                        stride: Pair = (1, 1), padding: Pair = (0, 0), dilation: Pair = (1, 1),
                        pad_value: float = 0.0) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        (sh, sw), (ph, pw), (dh, dw), pv, (ho, wo) = check_conv_args(x, w, None, stride, padding, dilation,
                                                                   pad_value)
        n_b, c_in, h_n, w_n = x.shape
        c_out, _, kh, kw = w.shape
        check_grad(g, x, (n_b, c_out, ho, wo))
        x = np.ascontiguousarray(x)
        g3 = np.ascontiguousarray(g).reshape(n_b, c_out, ho * wo)
        k, p_n = c_in * kh * kw, ho * wo
        wm = np.ascontiguousarray(w).reshape(c_out, k)
        dx = np.empty_like(x)

        def chunk(n0: int, n1: int) -> np.ndarray:
            nb = n1 - n0
            cols = np.empty((k, nb * p_n), dtype=x.dtype)
            ly.im2col(x[n0:n1], kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, x.dtype.type(pv), cols)
            gm = np.empty((c_out, nb * p_n), dtype=x.dtype)
            ly.nc_to_cn(g3[n0:n1], gm)
            dw_part = cols @ gm.T  # dw^T: 1.5x faster than gm @ cols.T with OpenBLAS at these shapes
            ly.col2im(wm.T @ gm, nb, c_in, h_n, w_n, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, dx[n0:n1])
            return dw_part

        dw_t = sum(_map_chunks(chunk, _conv_chunks(n_b, k * p_n * x.itemsize)), np.zeros((k, c_out), x.dtype))
        db = g3.sum(axis=(0, 2)) if has_bias else None
        return dx, np.ascontiguousarray(dw_t.T).reshape(w.shape), db

    def linear_forward(self, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray]) -> np.ndarray:
        check_linear_args(x, w, b)
        y = x @ w.T
        if b is not None:
            y += b
        return y

    def linear_backward(self, g: np.ndarray, x: np.ndarray, w: np.ndarray, *, has_bias: bool
                        ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        check_linear_args(x, w, None)
        check_grad(g, x, (x.shape[0], w.shape[0]))
        return g @ w, g.T @ x, (g.sum(axis=0) if has_bias else None)

    # -- float layers ----------------------------------------------------------------------------------------
    def batch_norm_forward(self, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                           running_var: np.ndarray, *, training: bool, momentum: float = 0.1, eps: float = 1e-5
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        momentum, eps = check_batch_norm_args(x, gamma, beta, running_mean, running_var, training, momentum, eps)
        x3 = _ncp(x)
        c = x3.shape[1]
        dt = x.dtype
        if training:
            mean64 = np.empty(c)
            var64 = np.empty(c)
            ly.bn_stats(x3, mean64, var64)
            mean = mean64.astype(dt)
            invstd = (1.0 / np.sqrt(var64 + eps)).astype(dt)
            m = x3.shape[0] * x3.shape[2]
            unbiased = var64 * (m / (m - 1))
            new_mean = ((1 - momentum) * running_mean + momentum * mean64).astype(dt)
            new_var = ((1 - momentum) * running_var + momentum * unbiased).astype(dt)
        else:
            mean = running_mean.astype(dt, copy=False)
            invstd = (1.0 / np.sqrt(running_var.astype(np.float64) + eps)).astype(dt)
            new_mean, new_var = running_mean.copy(), running_var.copy()
        y = np.empty_like(x3)
        ly.bn_apply(x3, mean, invstd, gamma, beta, y)
        return y.reshape(x.shape), mean, invstd, new_mean, new_var

    def batch_norm_backward(self, g: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray,
                            invstd: np.ndarray, *, training: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_batch_norm_grad_args(g, x, gamma, mean, invstd)
        x3, g3 = _ncp(x), _ncp(g)
        c = x3.shape[1]
        sum_g = np.empty(c)
        sum_gx = np.empty(c)
        ly.bn_grad_sums(g3, x3, mean, invstd, sum_g, sum_gx)
        dx = np.empty_like(x3)
        ly.bn_dx(g3, x3, mean, invstd, gamma, sum_g, sum_gx, bool(training), dx)
        return dx.reshape(x.shape), sum_gx.astype(x.dtype), sum_g.astype(x.dtype)

    relu_forward = staticmethod(_act.relu_forward)
    relu_backward = staticmethod(_act.relu_backward)

    @staticmethod
    def prelu_forward(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
        _act.prelu_slope(x, slope)
        x3 = _ncp(x)
        y = np.empty_like(x3)
        ly.prelu_fwd(x3, slope, y)
        return y.reshape(x.shape)

    @staticmethod
    def prelu_backward(g: np.ndarray, x: np.ndarray, slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _act.prelu_slope(x, slope)
        check_grad(g, x)
        x3, g3 = _ncp(x), _ncp(g)
        n_b, c_n = x3.shape[:2]
        dx = np.empty_like(x3)
        part = np.empty(n_b * c_n)
        ly.prelu_bwd(g3, x3, slope, dx, part)
        part = part.reshape(n_b, c_n)
        ds = np.array([part.sum()]) if slope.shape[0] == 1 else part.sum(axis=0)
        return dx.reshape(x.shape), ds.astype(x.dtype)

    @staticmethod
    def _max_pool(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair) -> tuple[np.ndarray, np.ndarray]:
        """(y (N, C, Ho, Wo), the flat index in x's plane of each window's first maximum)."""
        (kh, kw), (sh, sw), (ph, pw), (ho, wo) = check_pool_args(x, kernel, stride, padding)
        n_b, c, h, w = x.shape
        out = np.empty((n_b * c, ho, wo), dtype=x.dtype)
        arg = np.empty((n_b * c, ho, wo), dtype=np.int64)
        ly.max_pool_fwd(np.ascontiguousarray(x).reshape(n_b * c, h, w), kh, kw, sh, sw, ph, pw, out, arg)
        return out.reshape(n_b, c, ho, wo), arg

    def max_pool2d_forward(self, x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Pair = (0, 0)) -> np.ndarray:
        return self._max_pool(x, kernel, stride, padding)[0]

    def max_pool2d_backward(self, g: np.ndarray, x: np.ndarray, *, kernel: Pair, stride: Pair,
                            padding: Pair = (0, 0)) -> np.ndarray:
        y, arg = self._max_pool(x, kernel, stride, padding)
        check_grad(g, x, y.shape)
        n_b, c, h, w = x.shape
        dx = np.empty((n_b * c, h, w), dtype=x.dtype)
        ly.max_pool_bwd(np.ascontiguousarray(g).reshape(arg.shape), arg, h, w, dx)
        return dx.reshape(x.shape)

    @staticmethod
    def avg_pool2d_forward(x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Pair = (0, 0)) -> np.ndarray:
        (kh, kw), (sh, sw), (ph, pw), (ho, wo) = check_pool_args(x, kernel, stride, padding)
        n_b, c, h, w = x.shape
        out = np.empty((n_b * c, ho, wo), dtype=x.dtype)
        ly.avg_pool_fwd(np.ascontiguousarray(x).reshape(n_b * c, h, w), kh, kw, sh, sw, ph, pw, out)
        return out.reshape(n_b, c, ho, wo)

    @staticmethod
    def avg_pool2d_backward(g: np.ndarray, x: np.ndarray, *, kernel: Pair, stride: Pair,
                            padding: Pair = (0, 0)) -> np.ndarray:
        (kh, kw), (sh, sw), (ph, pw), (ho, wo) = check_pool_args(x, kernel, stride, padding)
        n_b, c, h, w = x.shape
        check_grad(g, x, (n_b, c, ho, wo))
        dx = np.empty((n_b * c, h, w), dtype=x.dtype)
        ly.avg_pool_bwd(np.ascontiguousarray(g).reshape(n_b * c, ho, wo), kh, kw, sh, sw, ph, pw, dx)
        return dx.reshape(x.shape)

    @staticmethod
    def cross_entropy_forward(logits: np.ndarray, labels: np.ndarray, *, label_smoothing: float = 0.0
                              ) -> np.ndarray:
        """Computed in float64 (the batch is small) and rounded once to the logits' dtype."""
        s = check_cross_entropy_args(logits, labels, label_smoothing)
        z = logits.astype(np.float64)
        return np.asarray(-(smoothed_targets(z, labels, s) * log_softmax(z)).sum() / z.shape[0], dtype=logits.dtype)

    @staticmethod
    def cross_entropy_backward(g: np.ndarray, logits: np.ndarray, labels: np.ndarray, *,
                               label_smoothing: float = 0.0) -> np.ndarray:
        """g (softmax - q) / B in float64, rounded once: softmax - onehot cancels badly in float32."""
        s = check_cross_entropy_args(logits, labels, label_smoothing)
        g = check_scalar_grad(g)
        z = logits.astype(np.float64)
        return (float(g) * (np.exp(log_softmax(z)) - smoothed_targets(z, labels, s)) / z.shape[0]).astype(logits.dtype)

    # -- SEMANTICS 9 ----------------------------------------------------------------------------------------------
    @staticmethod
    def pack_signs(x: np.ndarray, *, axis: int = 1, zero: float = -1.0) -> np.ndarray:
        axis = check_pack_args(x, axis, zero)
        c = x.shape[axis]
        outer = math.prod(x.shape[:axis])       # (np.prod of a tuple costs 3 to 5 us, a tenth of a batch-1 pack)
        inner = math.prod(x.shape[axis + 1:])
        words = _words(c)
        out = np.zeros((outer, inner, words), dtype=np.uint64)
        x3 = np.ascontiguousarray(x).reshape(outer, c, inner)
        threads = numba.get_num_threads()
        if x.size < ew.PAR_MIN or outer < 2 or threads == 1:
            nans = bp.pack_axis_range(x3, zero < 0, out, 0, outer)
        else:
            nans = bp.pack_axis_par(x3, zero < 0, out, min(outer, threads))
        if nans:
            raise ValueError(f"x: NaN has no sign and cannot be packed ({nans} NaN values)")
        return out.reshape(x.shape[:axis] + x.shape[axis + 1:] + (words,))

    @staticmethod
    def _xnor_plan(h: int, w: int, wp: np.ndarray, n_b: int, channels: int, stride: Any, padding: Any,
                   dilation: Any, pad_value: Any) -> tuple:
        """:meth:`_xnor_plan_uncached`, remembered per call signature: at batch 1 the validation costs a tenth of
        the whole conv. Only plain-int tuples and int / float pad values are remembered (so that True, lists or
        numpy scalars still go through the full checks), and the thread count is part of the key."""
        geo = (stride, padding, dilation)
        if not (all(type(g) is tuple and all(type(e) is int for e in g) for g in geo)
                and type(pad_value) in (int, float)):
            return NumbaBackend._xnor_plan_uncached(h, w, wp, n_b, channels, stride, padding, dilation, pad_value)
        key = (h, w, wp.shape, n_b, channels, stride, padding, dilation, type(pad_value), pad_value,
               numba.get_num_threads())
        plan = _XNOR_PLANS.get(key)
        if plan is None:
            plan = NumbaBackend._xnor_plan_uncached(h, w, wp, n_b, channels, stride, padding, dilation, pad_value)
            if len(_XNOR_PLANS) > 1024:
                _XNOR_PLANS.clear()
            _XNOR_PLANS[key] = plan
        return plan

    @staticmethod
    def _xnor_plan_uncached(h: int, w: int, wp: np.ndarray, n_b: int, channels: int, stride: Any, padding: Any,
                            dilation: Any, pad_value: Any) -> tuple:
        """Validated geometry and schedule of an XNOR conv of (N, C, H, W) signs with the packed weights ``wp``:
        (stride, padding, dilation, pad_value, (Ho, Wo), lane, threads of the parallel driver or 0: serial)."""
        s, p, d = geometry(stride, padding, dilation)
        pv = pad_value_of(pad_value)
        c_out, kh, kw, words = wp.shape
        if min(c_out, kh, kw) < 1:
            raise ValueError(f"w_packed: expected C_out, kh, kw >= 1, got shape {wp.shape}")
        ho, wo = out_size((h, w), (kh, kw), s, p, d, "xnor_conv2d")
        return s, p, d, pv, (ho, wo), _lane(channels), _xnor_threads(n_b, c_out, ho, w, s, p, kh, kw, words)

    def xnor_conv2d(self, x_packed: np.ndarray, w_packed: np.ndarray, *, channels: int, stride: Pair = (1, 1),
                    padding: Pair = (0, 0), dilation: Pair = (1, 1), pad_value: float = 0.0) -> np.ndarray:
        """The op-table XNOR conv: the weight tables are built on every call (a deployed model prepares them once,
        :meth:`prepare_xnor_conv2d`)."""
        channels = check_int(channels, "channels", minimum=1)
        xp = np.ascontiguousarray(check_packed(x_packed, "x_packed", 4, _words(channels)))
        wp = np.ascontiguousarray(check_packed(w_packed, "w_packed", 4, _words(channels)))
        n_b, h, w, _ = xp.shape
        s, p, d, pv, (ho, wo), lane, threads = self._xnor_plan(h, w, wp, n_b, channels, stride, padding, dilation,
                                                                pad_value)
        wm, base = _xnor_tables(wp, channels, lane, h, w, s, p, d, pv, ho, wo)
        return _run_xnor_conv(xp, channels, s, p, d, pv, ho, wo, wm, base, threads)

    def sign_xnor_conv2d(self, x: np.ndarray, w_packed: np.ndarray, *, zero: float = -1.0, stride: Pair = (1, 1),
                         padding: Pair = (0, 0), dilation: Pair = (1, 1), pad_value: float = 0.0) -> np.ndarray:
        """Inference fast path (not part of the op table): exactly
        ``xnor_conv2d(pack_signs(x, axis=1, zero=zero), w_packed, channels=C, ...)`` for float x (N, C, H, W),
        with the signs packed straight into the kernel's working planes in the same compiled call. The weight
        tables are built on every call; :meth:`prepare_xnor_conv2d` builds them once."""
        check_float_array(x, "x", ndim=4)
        check_pack_args(x, 1, zero)
        n_b, channels, h, w = x.shape
        wp = np.ascontiguousarray(check_packed(w_packed, "w_packed", 4, _words(channels)))
        s, p, d, pv, (ho, wo), lane, threads = self._xnor_plan(h, w, wp, n_b, channels, stride, padding,
                                                                dilation, pad_value)
        wm, base = _xnor_tables(wp, channels, lane, h, w, s, p, d, pv, ho, wo)
        return _run_sign_xnor_conv(x, zero, channels, s, p, d, pv, ho, wo, wm, base, threads)

    @staticmethod
    def prepare_xnor_conv2d(w_packed: np.ndarray, *, channels: int, stride: Pair = (1, 1), padding: Pair = (0, 0),
                            dilation: Pair = (1, 1), pad_value: float = 0.0) -> "XnorConv2d":
        """One binary conv layer's packed weights (C_out, kh, kw, words) prepared once for repeated inference
        (what a packed model does when it loads), see :class:`XnorConv2d`."""
        return XnorConv2d(w_packed, channels=channels, stride=stride, padding=padding, dilation=dilation,
                          pad_value=pad_value)

    def xnor_linear(self, x_packed: np.ndarray, w_packed: np.ndarray, *, features: int) -> np.ndarray:
        features = check_int(features, "features", minimum=1)
        xp = np.ascontiguousarray(check_packed(x_packed, "x_packed", 2, _words(features)))
        wp = check_packed(w_packed, "w_packed", 2, _words(features))
        out = np.empty((xp.shape[0], wp.shape[0]), dtype=np.int32)
        bp.xnor_linear_kernel(xp, np.ascontiguousarray(wp.T), features, out)
        return out


# ------------------------------------------------------------------------------------------------------
# XNOR conv2d: tables, drivers and the prepared layer

def _lane(channels: int) -> np.ndarray:
    """The smallest lane dtype (as an empty array, for the kernels' typing) that holds ``channels`` bits."""
    return _LANES[next(b for b in (8, 16, 32, 64) if channels <= b or b == 64)]


def _xnor_threads(n_b: int, c_out: int, ho: int, w: int, s: Pair, p: Pair, kh: int, kw: int, words: int,
                  threads: Optional[int] = None) -> int:
    """Threads of the parallel XNOR driver, or 0 for the serial one (a parallel region costs more than small
    convs take). ``threads``: numba's thread count, asked for only when the conv is big enough to split."""
    planes = n_b * c_out
    work = planes * ho * (w + 2 * p[1]) // s[1] * kh * kw * words     # popcounts
    if work < XNOR_PAR_MIN or planes < 2:
        return 0
    threads = numba.get_num_threads() if threads is None else threads
    return 0 if threads == 1 else min(planes, threads)


def _xnor_tables(wp: np.ndarray, channels: int, lane: np.ndarray, h: int, w: int, s: Pair, p: Pair, d: Pair,
                 pv: float, ho: int, wo: int) -> tuple[np.ndarray, np.ndarray]:
    """(wm, base) of :mod:`._bitpack`'s XNOR conv for validated arguments: the weights in the lane dtype and
    the border table (K minus the zero-padding correction per output pixel) for an H x W input."""
    return bp.conv_tables(wp, channels, lane, h, w, s[0], s[1], p[0], p[1], d[0], d[1], ho, wo, pv == 0.0)


def _run_xnor_conv(xp: np.ndarray, channels: int, s: Pair, p: Pair, d: Pair, pv: float, ho: int, wo: int,
                   wm: np.ndarray, base: np.ndarray, threads: int) -> np.ndarray:
    """The XNOR conv of SEMANTICS 9 activations xp (N, H, W, words) with the tables of :func:`_xnor_tables`."""
    (sh, sw), (ph, pw), (dh, dw) = s, p, d
    if not threads:
        return bp.xnor_conv_serial(xp, channels, sh, sw, ph, pw, dh, dw, ho, wo, pv < 0, wm, base)
    return bp.xnor_conv_parallel(xp, channels, sh, sw, ph, pw, dh, dw, ho, wo, pv < 0, wm, base, threads)


def _run_sign_xnor_conv(x: np.ndarray, zero: float, channels: int, s: Pair, p: Pair, d: Pair, pv: float, ho: int,
                        wo: int, wm: np.ndarray, base: np.ndarray, threads: int) -> np.ndarray:
    """sign + pack + XNOR conv of float x (N, C, H, W) with the tables of :func:`_xnor_tables`; NaN raises."""
    x = np.ascontiguousarray(x)
    (sh, sw), (ph, pw), (dh, dw) = s, p, d
    if not threads:
        out, nans = bp.sign_conv_serial(x, channels, sh, sw, ph, pw, dh, dw, ho, wo, pv < 0, zero < 0, wm, base)
    else:
        out, nans = bp.sign_conv_parallel(x, channels, sh, sw, ph, pw, dh, dw, ho, wo, pv < 0, zero < 0, wm, base,
                                          threads)
    if nans:   # the kernel only flags it; count them for the message
        raise ValueError(f"x: NaN has no sign and cannot be packed ({int(np.isnan(x).sum())} NaN values)")
    return out


class XnorConv2d:
    """One binary conv layer's packed weights (C_out, kh, kw, words), prepared once for the numba XNOR kernels as a
    deployed packed model holds them: validated geometry, the weights in the kernel's lane dtype (the smallest
    of uint8 / 16 / 32 / 64 that holds C bits) and, per input size, the border table of the zero-padding
    correction and the thread schedule. What a call of :meth:`NumbaBackend.sign_xnor_conv2d` recomputes every
    time (about 10 us at batch 1, as much as the conv itself) is done once here.

    ``sign_conv(x, zero=z)`` equals ``sign_xnor_conv2d(x, w_packed, zero=z, ...)`` and ``conv(x_packed)`` equals
    ``xnor_conv2d(x_packed, w_packed, channels=C, ...)`` with the geometry given here, exactly. The weights are
    copied: later changes to ``w_packed`` are not seen."""

    def __init__(self, w_packed: np.ndarray, *, channels: int, stride: Pair = (1, 1), padding: Pair = (0, 0),
                 dilation: Pair = (1, 1), pad_value: float = 0.0):
        self.channels = check_int(channels, "channels", minimum=1)
        wp = check_packed(w_packed, "w_packed", 4, _words(self.channels))
        if min(wp.shape[:3]) < 1:
            raise ValueError(f"w_packed: expected C_out, kh, kw >= 1, got shape {wp.shape}")
        self.stride, self.padding, self.dilation = geometry(stride, padding, dilation)
        self.pad_value = pad_value_of(pad_value)
        self.weight_shape = wp.shape
        self.wm, self._tsum = bp.prepare_weights(np.ascontiguousarray(wp), self.channels, _lane(self.channels))
        self._plans: dict = {}      # (N, H, W) -> (Ho, Wo, base, whether the conv is big enough to split)

    def __repr__(self) -> str:
        return (f"XnorConv2d(weights {self.weight_shape}, channels={self.channels}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, pad_value={self.pad_value})")

    def _plan(self, n_b: int, h: int, w: int) -> tuple[int, int, np.ndarray, int]:
        """(Ho, Wo, base, threads of the parallel driver or 0) for an (N, ., H, W) input; only the thread count is
        looked up per call, and only for convs big enough to split (numba.get_num_threads costs 1 us)."""
        key = (n_b, h, w)
        plan = self._plans.get(key)
        if plan is None:
            c_out, kh, kw, words = self.weight_shape
            (sh, sw), (ph, pw), (dh, dw) = s, p, d = self.stride, self.padding, self.dilation
            ho, wo = out_size((h, w), (kh, kw), s, p, d, "xnor_conv2d")
            base = bp.border_table(self._tsum, self.channels, kh, kw, h, w, sh, sw, ph, pw, dh, dw, ho, wo,
                                   self.pad_value == 0.0)
            # whether to split the work; the thread count itself is read per call (numba.set_num_threads)
            plan = (ho, wo, base, _xnor_threads(n_b, c_out, ho, w, s, p, kh, kw, words, threads=2) > 0)
            if len(self._plans) > 64:
                self._plans.clear()
            self._plans[key] = plan
        ho, wo, base, split = plan
        threads = numba.get_num_threads() if split else 1
        return ho, wo, base, (min(n_b * self.weight_shape[0], threads) if threads > 1 else 0)

    def sign_conv(self, x: np.ndarray, *, zero: float = -1.0) -> np.ndarray:
        """sign(x) (sign(0) = ``zero``) packed and convolved: float x (N, C, H, W) -> (N, C_out, Ho, Wo) int32."""
        if not (type(x) is np.ndarray and x.ndim == 4 and x.dtype.type in (np.float32, np.float64)
                and type(zero) in (int, float) and zero in (-1, 1)):
            check_float_array(x, "x", ndim=4)     # the reference's messages
            check_pack_args(x, 1, zero)
        if x.shape[1] != self.channels:
            raise ValueError(f"x: expected {self.channels} channels (the prepared weights'), got shape {x.shape}")
        ho, wo, base, threads = self._plan(x.shape[0], x.shape[2], x.shape[3])
        return _run_sign_xnor_conv(x, zero, self.channels, self.stride, self.padding, self.dilation, self.pad_value,
                                   ho, wo, self.wm, base, threads)

    def conv(self, x_packed: np.ndarray) -> np.ndarray:
        """The XNOR conv of SEMANTICS 9 activations x_packed (N, H, W, words) -> (N, C_out, Ho, Wo) int32."""
        xp = np.ascontiguousarray(check_packed(x_packed, "x_packed", 4, _words(self.channels)))
        ho, wo, base, threads = self._plan(xp.shape[0], xp.shape[1], xp.shape[2])
        return _run_xnor_conv(xp, self.channels, self.stride, self.padding, self.dilation, self.pad_value, ho, wo,
                              self.wm, base, threads)


def warmup(dtypes: Sequence[str] = ("float32", "float64")) -> float:
    """Compile (or load from the cache) every kernel for ``dtypes`` on tiny inputs; returns the seconds taken.

    Call it before timing anything or before property-based tests with deadlines: the first call of each
    kernel otherwise compiles it (a few seconds each without a cache, milliseconds with one).
    """
    import time
    t0 = time.perf_counter()
    be = BACKEND
    rng = np.random.default_rng(0)
    for name in dtypes:
        dt = np.dtype(name)
        for big in (False, True):   # serial bodies and parallel drivers
            x = rng.standard_normal(ew.PAR_MIN if big else 8).astype(dt)
            be.sign(x)
            be.surrogate(x, "fda", {"n": 3})
            be.surrogate(x, "ste", {})
        t = rng.standard_normal((2, 3, 4, 4)).astype(dt)
        w1 = rng.standard_normal((3, 1)).astype(dt)
        w2 = rng.standard_normal((1, 3)).astype(dt)
        for layout, tt in (("activation", t), ("weight", t.reshape(2, 48))):
            a1 = w1 if layout == "activation" else rng.standard_normal((48, 1)).astype(dt)
            a2 = w2 if layout == "activation" else rng.standard_normal((1, 48)).astype(dt)
            be.quantize_forward(tt, a1, a2, alpha=0.1, layout=layout)
            be.quantize_backward(tt, tt, a1, a2, alpha=0.1, layout=layout)
            be.quantize_backward(tt, tt, None, None, alpha=0.1, layout=layout)
            be.noise_forward(tt, a1, a2, layout=layout)
            be.noise_backward(tt, tt, a1, a2, layout=layout)
        w = rng.standard_normal((2, 3, 3, 3)).astype(dt)
        y = be.conv2d_forward(t, w, np.zeros(2, dt), padding=(1, 1))
        be.conv2d_backward(y, t, w, has_bias=True, padding=(1, 1))
        g, b = np.ones(3, dt), np.zeros(3, dt)
        _, mean, inv, _, _ = be.batch_norm_forward(t, g, b, b, g, training=True)
        be.batch_norm_backward(t, t, g, mean, inv, training=True)
        be.max_pool2d_backward(np.ascontiguousarray(t[:, :, :2, :2]), t, kernel=(2, 2), stride=(2, 2))
        be.avg_pool2d_backward(np.ascontiguousarray(t[:, :, :2, :2]), t, kernel=(2, 2), stride=(2, 2))
        be.avg_pool2d_forward(t, kernel=(2, 2), stride=(2, 2))
        xp = be.pack_signs(t, axis=1)
        be.sign_xnor_conv2d(t, be.pack_signs(w, axis=1), padding=(1, 1))
        be.prepare_xnor_conv2d(be.pack_signs(w, axis=1), channels=3, padding=(1, 1)).sign_conv(t)  # packed models
    wp = be.pack_signs(rng.standard_normal((2, 3, 3, 3)), axis=1)
    be.xnor_conv2d(xp, wp, channels=3, padding=(1, 1))
    be.xnor_linear(be.pack_signs(rng.standard_normal((2, 70)), axis=1),
                   be.pack_signs(rng.standard_normal((3, 70)), axis=1), features=70)
    return time.perf_counter() - t0


BACKEND = NumbaBackend()
