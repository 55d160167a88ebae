"""The CuPy backend's CUDA kernel source, checked without a GPU.

The device functions in ``backends/cupy/kernels_src.py`` are ``__host__ __device__``: compiled here by the
host C++ compiler (through the source's own HOST_SHIM entry points, loaded with ctypes) they must give
fdaref's reference values. Where a CUDA toolkit is installed, ``nvcc -ptx`` also compiles the device side
(float and double instantiations, the raw XNOR kernels) for a recent architecture. What neither can check
is CUDA's own libm on the device, NVRTC (what CuPy uses at run time) and the launches: tests/test_cupy_gpu.py.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fdaref import estimators, quantizer
from fdaref.backends.cupy import kernels_src as ks
from fdaref.backends.cupy.ops import ArrayBackend, PortableKernels, estimator_args

CXX = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
NVCC = shutil.which("nvcc")
RNG = np.random.default_rng(7)
BE = ArrayBackend(np, PortableKernels(np))

F32P = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
F64P = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
U64P = np.ctypeslib.ndpointer(np.uint64, flags="C_CONTIGUOUS")
I32P = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")
LL, I, D = ctypes.c_longlong, ctypes.c_int, ctypes.c_double


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if CXX is None:
        pytest.skip("no C++ compiler on this machine")
    d = tmp_path_factory.mktemp("cupy_host")
    src = d / "fdaref_kernels_host.cpp"
    src.write_text(ks.DEVICE_FUNCTIONS + ks.HOST_SHIM)
    so = d / "fdaref_kernels_host.so"
    # -ffp-contract=off: no fused multiply-add on the host either, so results are those of the written code
    proc = subprocess.run([CXX, "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(so), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"host compile of the kernel source failed:\n{proc.stderr}"
    L = ctypes.CDLL(str(so))
    for suffix, P in (("f32", F32P), ("f64", F64P)):
        getattr(L, f"fdaref_host_sign_{suffix}").argtypes = [P, P, LL, D]
        getattr(L, f"fdaref_host_surrogate_{suffix}").argtypes = [P, P, LL, I, I, D, I, D]
        getattr(L, f"fdaref_host_quant_fwd_{suffix}").argtypes = [P, P, P, LL, D, D, I, D]
        getattr(L, f"fdaref_host_quant_bwd_{suffix}").argtypes = [P, P, P, P, LL, I, I, D, I, D, D, I, D]
    L.fdaref_host_xnor_conv2d.argtypes = [U64P, U64P, I32P] + [I] * 17
    L.fdaref_host_xnor_linear.argtypes = [U64P, U64P, I32P, I, I, I, I]
    return L


def _sfx(dtype) -> str:
    return "f32" if np.dtype(dtype) == np.float32 else "f64"


def host_surrogate(lib, x, name, params):
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    getattr(lib, f"fdaref_host_surrogate_{_sfx(x.dtype)}")(x, y, x.size, *estimator_args(name, params))
    return y


DTYPES = [np.float32, np.float64]


def _probe(dtype, omega):
    k = np.arange(-8, 9)
    special = np.concatenate([k * np.pi / omega, k * np.pi / omega + 2e-4, k * np.pi / omega - 5e-6,
                              [0.0, -0.0, 1.0, -1.0, 1e-30, 2.5, -2.5, 1e5, -7.7e6]])
    return np.concatenate([RNG.normal(0, 25, 20000), special]).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,omega,clip", [(0, 0.1, None), (9, 0.1, None), (18, 0.1, None), (18, 0.1, 1.0),
                                          (40, 0.25, 2.5)])
def test_fda_kernel_source_matches_reference(lib, dtype, n, omega, clip):
    x = _probe(dtype, omega)
    got = host_surrogate(lib, x, "fda", {"n": n, "omega": omega, "clip": clip})
    want = estimators.fda(x, n, omega, clip)
    peak = estimators.fda_peak(n, omega)
    tol = (4e-6 if dtype == np.float32 else 1e-12) * peak
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    # and against the literal series (Eq. 10), which the closed form must equal
    series = estimators.fda_series(x.astype(np.float64), n, omega, clip)
    finite = np.abs(x) < 1e4  # the series loses accuracy itself for large arguments
    np.testing.assert_allclose(got[finite], series[finite], rtol=0, atol=tol + 1e-11 * peak)


def test_fda_kernel_source_nan_inf_and_clip_boundary(lib):
    x = np.array([np.nan, np.inf, -np.inf, 1.0, -1.0, np.nextafter(1.0, 2.0)])
    got = host_surrogate(lib, x, "fda", {"n": 9, "clip": 1.0})
    want = estimators.fda(x, 9, 0.1, 1.0)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[1:], want[1:], atol=1e-14)
    x32 = np.array([0.1, -0.1, 0.10000001], dtype=np.float32)  # |x| == clip in float32 keeps the gradient
    np.testing.assert_allclose(host_surrogate(lib, x32, "fda", {"n": 9, "clip": 0.1}),
                               estimators.fda(x32, 9, 0.1, 0.1), atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", [("fda_series", {"n": 7}), ("fda_series", {"n": 3, "clip": 1.0}),
                                         ("ste", {}), ("clipped_ste", {}), ("approx_sign", {}),
                                         ("sign_swish", {}), ("sign_swish", {"beta": 1.5}), ("tanh", {}),
                                         ("tanh", {"beta": 0.5})])
def test_other_surrogates_kernel_source(lib, dtype, name, params):
    x = np.concatenate([RNG.normal(0, 2, 3000), [0.0, 1.0, -1.0, 40.0, -300.0, np.nan]]).astype(dtype)
    got = host_surrogate(lib, x, name, params)
    want = estimators.estimator_grad(x, name, **params)
    rtol = 3e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_unknown_estimator_id_is_nan_not_zero(lib):
    x = np.ones(3)
    y = np.empty_like(x)
    lib.fdaref_host_surrogate_f64(x, y, 3, 99, 0, 0.0, 0, 0.0)
    assert np.isnan(y).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero", [-1.0, 0.0, 1.0])
def test_sign_kernel_source(lib, dtype, zero):
    from fdaref.binarize import sign
    x = np.array([-3.0, -0.0, 0.0, 2.0, np.nan, np.inf, -np.inf, 1e-45], dtype=dtype)
    y = np.empty_like(x)
    getattr(lib, f"fdaref_host_sign_{_sfx(dtype)}")(x, y, x.size, zero)
    np.testing.assert_array_equal(y, sign(x, zero))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eta", ["sin", "linear", "none"])
@pytest.mark.parametrize("estimator,params", [("fda", {"n": 15}), ("sign_swish", {}), ("approx_sign", {})])
def test_quantizer_epilogues_kernel_source(lib, dtype, eta, estimator, params):
    """The fused epilogues, fed the module's FC part from the portable path, equal fdaref's quantizer."""
    shape, layout = (3, 8, 4, 5), "activation"
    t = RNG.normal(size=shape).astype(dtype)
    t.flat[3] = 0.0
    g = RNG.normal(size=shape).astype(dtype)
    from fdaref.noise import init_noise_params
    w1, w2 = init_noise_params(8, 4, np.random.default_rng(3), dtype)
    alpha, a = 0.1, 0.1
    kw = dict(layout=layout, eta_kind=eta, a=a)
    fc = np.ascontiguousarray(BE._fc(t, w1, w2, layout))
    dfc = np.ascontiguousarray(BE._fc_backward(g, t, w1, w2, layout)[0])
    eta_id = ks.ETA_IDS[eta]
    sfx = _sfx(dtype)
    z = np.empty_like(t)
    getattr(lib, f"fdaref_host_quant_fwd_{sfx}")(t, fc, z, t.size, -1.0, alpha, eta_id, a)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(z, quantizer.quantize_forward(t, w1, w2, alpha=alpha, zero=-1.0, **kw),
                               rtol=tol, atol=tol)
    dt = np.empty_like(t)
    getattr(lib, f"fdaref_host_quant_bwd_{sfx}")(g, t, dfc, dt, t.size, *estimator_args(estimator, params),
                                                 alpha, eta_id, a)
    want = quantizer.quantize_backward(g, t, w1, w2, alpha=alpha, estimator=estimator, params=params, **kw)[0]
    np.testing.assert_allclose(dt, want, rtol=tol, atol=tol * 20)


def _stray(words: np.ndarray, count: int) -> np.ndarray:
    """``words`` with every bit beyond ``count`` in the last word set (SEMANTICS 11: they never count)."""
    out = words.copy()
    if count % 64:
        out[..., -1] |= ~np.uint64((1 << (count % 64)) - 1)
    return np.ascontiguousarray(out)


@pytest.mark.parametrize("c", [3, 64, 100])
@pytest.mark.parametrize("pad", [0, -1, 1])
@pytest.mark.parametrize("stride,padding,dilation", [((1, 1), (1, 1), (1, 1)), ((2, 2), (2, 1), (2, 1))])
@pytest.mark.parametrize("stray", [False, True])
def test_xnor_kernel_source(lib, c, pad, stride, padding, dilation, stray):
    xs = np.where(RNG.normal(size=(2, c, 7, 6)) > 0, 1.0, -1.0)
    ws = np.where(RNG.normal(size=(4, c, 3, 3)) > 0, 1.0, -1.0)
    xp_ = np.ascontiguousarray(BE.pack_signs(xs, axis=1))
    wp_ = np.ascontiguousarray(BE.pack_signs(ws, axis=1))
    if stray:
        xp_, wp_ = _stray(xp_, c), _stray(wp_, c)
    want = BE.xnor_conv2d(xp_, wp_, channels=c, stride=stride, padding=padding, dilation=dilation, pad_value=pad)
    got = np.zeros_like(want)
    n, co, ho, wo = want.shape
    lib.fdaref_host_xnor_conv2d(xp_, wp_, got, n, co, ho, wo, 7, 6, xp_.shape[-1], c, 3, 3,
                                stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], pad)
    np.testing.assert_array_equal(got, want)
    # independent of the portable path: the float conv of the signs
    want_f = BE.conv2d_forward(xs, ws, None, stride=stride, padding=padding, dilation=dilation,
                               pad_value=float(pad))
    np.testing.assert_array_equal(got, want_f.astype(np.int32))

    xl = np.ascontiguousarray(BE.pack_signs(xs[:, :, 0, 0], axis=1))
    wl = np.ascontiguousarray(BE.pack_signs(ws[:, :, 0, 0], axis=1))
    if stray:
        xl, wl = _stray(xl, c), _stray(wl, c)
    out = np.zeros((2, 4), dtype=np.int32)
    lib.fdaref_host_xnor_linear(xl, wl, out, 2, 4, xl.shape[1], c)
    np.testing.assert_array_equal(out, (xs[:, :, 0, 0] @ ws[:, :, 0, 0].T).astype(np.int32))


@pytest.mark.skipif(NVCC is None, reason="no CUDA toolkit (nvcc) on this machine")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_device_source_compiles_with_nvcc(tmp_path, arch):
    src = tmp_path / "fdaref_kernels.cu"
    src.write_text(ks.elementwise_source_for_check())
    ptx = tmp_path / "fdaref_kernels.ptx"
    proc = subprocess.run([NVCC, "-ptx", f"-arch={arch}", "-std=c++14", "-o", str(ptx), str(src)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "Unsupported gpu architecture" in proc.stderr:
        pytest.skip(f"this nvcc does not know {arch}")
    assert proc.returncode == 0, proc.stderr
    text = ptx.read_text()
    for name in ks.RAW_KERNEL_NAMES + ("check_surrogate_f32", "check_surrogate_f64", "check_quant_f32"):
        assert f".entry {name}" in text
    assert "popc.b64" in text  # __popcll on the device path, not the host builtin


def test_elementwise_table_is_consistent():
    for name, (inp, out, body) in ks.ELEMENTWISE.items():
        params = [p.split()[-1] for p in inp.split(",")] + [out.split()[-1]]
        assert len(set(params)) == len(params), name
        for p in params:
            assert p in body, f"{name}: parameter {p} unused in the body"
    assert sorted(ks.ESTIMATOR_IDS.values()) == list(range(len(ks.ESTIMATOR_IDS)))
    assert set(ks.ESTIMATOR_IDS) <= set(estimators.estimator_names())
