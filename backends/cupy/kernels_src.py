"""CUDA C++ source of the CuPy backend's fused kernels, as plain strings (no CuPy import here).

Every piece of arithmetic lives in ``__host__ __device__`` functions (:data:`DEVICE_FUNCTIONS`). The GPU
kernels are thin wrappers around them:

- element-wise kernels (``cupy.ElementwiseKernel``): the body is one call, see :data:`ELEMENTWISE`;
- raw kernels (``cupy.RawModule``) for the XNOR-popcount ops, see :data:`RAW_KERNELS`: one thread per
  output element, which calls the per-point device function.

Because the functions are also valid host C++ (the ``__host__`` / ``__device__`` qualifiers are defined
away outside a CUDA compiler), the very same source is compiled on the CPU by the tests with a plain C++
compiler, through :data:`HOST_SHIM`, and checked against the NumPy reference. What only a GPU can check is
the device code generation (NVRTC, CUDA's own ``sin``/``cos``) and the launches; see ``GPU_TODO.md``.

Estimators are selected by an integer id (:data:`ESTIMATOR_IDS`); the switch is uniform over a launch.
"""
from __future__ import annotations

# Integer ids of the surrogates that have a device implementation (SEMANTICS 2). Other registered estimators
# go through the host fallback of the backend (documented in ops.py).
ESTIMATOR_IDS: dict[str, int] = {
    "fda": 0,
    "fda_series": 1,
    "ste": 2,
    "clipped_ste": 3,
    "approx_sign": 4,
    "sign_swish": 5,
    "tanh": 6,
}

# Integer ids of the shortcut eta of Eq. 13.
ETA_IDS: dict[str, int] = {"sin": 0, "linear": 1, "none": 2}

# Below this |M r| the closed form's 0/0 is replaced by its Taylor expansion (same threshold as the reference).
FDA_TAYLOR_THRESHOLD = 1e-3

DEVICE_FUNCTIONS = r"""
// ---- fdaref CuPy backend: device functions (host-compilable) ------------------------------------
#if !defined(__CUDACC__)
#define __host__
#define __device__
#include <math.h>
#endif
#if !defined(__CUDACC_RTC__) && defined(__CUDACC__)
#include <math.h>
#endif

#define FDAREF_PI 3.141592653589793238462643383279502884
#define FDAREF_INV_PI 0.318309886183790671537767526745028724

typedef unsigned long long fdaref_u64;

// Explicit float / double overloads so that a float never silently runs in double (or the reverse)
// on either the device or the host compiler.
__host__ __device__ inline float fdaref_sin(float v) { return sinf(v); }
__host__ __device__ inline double fdaref_sin(double v) { return sin(v); }
__host__ __device__ inline float fdaref_cos(float v) { return cosf(v); }
__host__ __device__ inline double fdaref_cos(double v) { return cos(v); }
__host__ __device__ inline float fdaref_tanh(float v) { return tanhf(v); }
__host__ __device__ inline double fdaref_tanh(double v) { return tanh(v); }
__host__ __device__ inline float fdaref_cosh(float v) { return coshf(v); }
__host__ __device__ inline double fdaref_cosh(double v) { return cosh(v); }
__host__ __device__ inline float fdaref_abs(float v) { return fabsf(v); }
__host__ __device__ inline double fdaref_abs(double v) { return fabs(v); }

__host__ __device__ inline int fdaref_popcount(fdaref_u64 v) {
#if defined(__CUDA_ARCH__)
    return __popcll(v);
#else
    return __builtin_popcountll(v);
#endif
}

// SEMANTICS 1 / Eq. 1: +1, -1, `zero` at 0; NaN stays NaN.
template <typename T>
__host__ __device__ inline T fdaref_sign(T x, double zero) {
    if (x > (T)0) return (T)1;
    if (x < (T)0) return (T)-1;
    if (x == (T)0) return (T)zero;
    return x;  // NaN
}

// SEMANTICS 2, fda (Eq. 10) in closed form:
//   (4 omega / pi) sum_{i=0}^{n} cos((2i+1) t) = (4 omega / pi) sin(M t) / (2 sin t),  M = 2(n+1), t = omega x.
// Range reduction as in the reference: t = k pi + r, |r| <= pi/2, value (-1)^k sin(M r) / (2 sin r).
// t, k and r are always computed in double (three flops); the two sines run in T. For T = float this
// keeps numerator and denominator consistent (both see the same rounded r), so the error stays at a few
// float ulps of the peak (4 omega / pi)(n+1) (see ops.py for the analysis). |M r| < 1e-3: Taylor,
// (n+1)(1 - (M^2 - 1) r^2 / 6). Clip: 0 where |x| > clip (kept at |x| == clip); NaN stays NaN.
template <typename T>
__host__ __device__ inline T fdaref_fda(T x, int n, double omega, int clip_on, double clip) {
    if (clip_on && fdaref_abs(x) > (T)clip) return (T)0;
    const double t = (double)x * omega;
    const double k = rint(t * FDAREF_INV_PI);
    const double r64 = t - k * FDAREF_PI;
    const bool odd = fmod(k, 2.0) != 0.0;  // exact for every finite double; NaN for inf/NaN (result NaN anyway)
    const T r = (T)r64;
    const T m = (T)(2.0 * (n + 1));
    const T mr = m * r;
    T ratio;
    if (fdaref_abs(mr) < (T)1e-3) {
        ratio = (T)(n + 1) * ((T)1 - (m * m - (T)1) / (T)6 * r * r);
    } else {
        ratio = fdaref_sin(mr) / ((T)2 * fdaref_sin(r));
    }
    if (odd) ratio = -ratio;
    return ratio * (T)(4.0 * omega / FDAREF_PI);
}

// SEMANTICS 2, fda_series: Eq. 10 literally, n+1 cosines, in T (as the reference does in the input dtype).
template <typename T>
__host__ __device__ inline T fdaref_fda_series(T x, int n, double omega, int clip_on, double clip) {
    const T t = (T)omega * x;
    T total = (T)0;
    for (int i = 0; i <= n; ++i) total += fdaref_cos((T)(2 * i + 1) * t);
    T out = (T)(4.0 * omega / FDAREF_PI) * total;
    if (clip_on && fdaref_abs(x) > (T)clip) out = (T)0;
    return out;
}

// Every surrogate with a device implementation, by id (ESTIMATOR_IDS). `p` is omega (fda, fda_series)
// or beta (sign_swish, tanh).
template <typename T>
__host__ __device__ inline T fdaref_surrogate(T x, int est, int n, double p, int clip_on, double clip) {
    switch (est) {
        case 0: return fdaref_fda(x, n, p, clip_on, clip);
        case 1: return fdaref_fda_series(x, n, p, clip_on, clip);
        case 2: return (T)1;
        case 3: return fdaref_abs(x) <= (T)1 ? (T)1 : (T)0;
        case 4: { T ax = fdaref_abs(x); return ax <= (T)1 ? (T)2 - (T)2 * ax : (T)0; }
        case 5: {
            const T beta = (T)p;
            const T bx = beta * x;
            return beta * ((T)2 - bx * fdaref_tanh(bx / (T)2)) / ((T)1 + fdaref_cosh(bx));
        }
        case 6: {
            const T beta = (T)p;
            const T th = fdaref_tanh(beta * x);
            return beta * ((T)1 - th * th);
        }
    }
    const T zero_ = (T)0;
    return zero_ / zero_;  // unknown id: NaN, never silently 0 (the host validates ids first)
}

// eta of Eq. 13 and its derivative, by id (ETA_IDS).
template <typename T>
__host__ __device__ inline T fdaref_eta(T t, int kind, double a) {
    if (kind == 0) return (T)a * fdaref_sin(t);
    if (kind == 1) return (T)a * t;
    return (T)0;
}

template <typename T>
__host__ __device__ inline T fdaref_eta_grad(T t, int kind, double a) {
    if (kind == 0) return (T)a * fdaref_cos(t);
    if (kind == 1) return (T)a;
    return (T)0;
}

// Eq. 14 forward epilogue: z = sign(t) + alpha * (fc + eta(t)), fc = relu(t W1) W2 in t's layout.
template <typename T>
__host__ __device__ inline T fdaref_quant_fwd(T t, T fc, double zero, double alpha, int eta, double a) {
    return fdaref_sign(t, zero) + (T)alpha * (fc + fdaref_eta(t, eta, a));
}

// SEMANTICS 4 backward epilogue: dt = g est'(t) + alpha (dfc + g eta'(t)); dfc = the module's FC part of dt.
template <typename T>
__host__ __device__ inline T fdaref_quant_bwd(T g, T t, T dfc, int est, int n, double p, int clip_on,
                                              double clip, double alpha, int eta, double a) {
    const T s = g * fdaref_surrogate(t, est, n, p, clip_on, clip);
    return s + (T)alpha * (dfc + g * fdaref_eta_grad(t, eta, a));
}

// The bits of word `w` that hold channels (of `channels`): all but in a partly used last word, whose stray
// bits never change a result (SEMANTICS 11), whatever the packer left there.
__host__ __device__ inline fdaref_u64 fdaref_used_bits(int w, int words, int channels) {
    const int used = channels & 63;
    return (w == words - 1 && used) ? (((fdaref_u64)1 << used) - 1) : ~(fdaref_u64)0;
}

// XNOR-popcount dot product of two packed +-1 vectors of `words` words: sum_c a_c b_c = C - 2 popcount(a ^ b).
__host__ __device__ inline int fdaref_xnor_dot(const fdaref_u64* a, const fdaref_u64* b, int words, int channels) {
    int diff = 0;
    for (int w = 0; w < words; ++w) diff += fdaref_popcount((a[w] ^ b[w]) & fdaref_used_bits(w, words, channels));
    return channels - 2 * diff;
}

// One output element of xnor_conv2d: x (N, H, W, words), w (C_out, kh, kw, words), both C-contiguous.
// Positions in the padding hold the constant pad (0, -1 or +1): their contribution is pad * sum_c w_c.
__host__ __device__ inline int fdaref_xnor_conv_point(
        const fdaref_u64* x, const fdaref_u64* w, long long n, long long co, long long oy, long long ox,
        int H, int W, int words, int channels, int kh, int kw, int sh, int sw, int ph, int pw,
        int dh, int dw, int pad) {
    int acc = 0;
    for (int i = 0; i < kh; ++i) {
        const long long iy = oy * sh - ph + (long long)i * dh;
        for (int j = 0; j < kw; ++j) {
            const long long ix = ox * sw - pw + (long long)j * dw;
            const fdaref_u64* wp = w + ((co * kh + i) * kw + j) * words;
            if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
                const fdaref_u64* xp = x + ((n * H + iy) * W + ix) * words;
                acc += fdaref_xnor_dot(xp, wp, words, channels);
            } else if (pad != 0) {
                int neg = 0;
                for (int q = 0; q < words; ++q) neg += fdaref_popcount(wp[q] & fdaref_used_bits(q, words, channels));
                acc += pad * (channels - 2 * neg);
            }
        }
    }
    return acc;
}
"""

# Element-wise kernels: name -> (in_params, out_params, body). ``T`` is float32 or float64.
ELEMENTWISE: dict[str, tuple[str, str, str]] = {
    "sign": ("T x, float64 zero", "T y", "y = fdaref_sign(x, zero);"),
    "surrogate": ("T x, int32 est, int32 n, float64 p, int32 clip_on, float64 clip", "T y",
                  "y = fdaref_surrogate(x, est, n, p, clip_on, clip);"),
    "surrogate_mul": ("T g, T x, int32 est, int32 n, float64 p, int32 clip_on, float64 clip", "T y",
                      "y = g * fdaref_surrogate(x, est, n, p, clip_on, clip);"),
    "quant_fwd": ("T t, T fc, float64 zero, float64 alpha, int32 eta, float64 a", "T z",
                  "z = fdaref_quant_fwd(t, fc, zero, alpha, eta, a);"),
    "quant_bwd": ("T g, T t, T dfc, int32 est, int32 n, float64 p, int32 clip_on, float64 clip, "
                  "float64 alpha, int32 eta, float64 a", "T dt",
                  "dt = fdaref_quant_bwd(g, t, dfc, est, n, p, clip_on, clip, alpha, eta, a);"),
}

# Raw kernels for the bit-packed ops (one thread per output element, grid-stride loop).
RAW_KERNELS = r"""
extern "C" __global__ void fdaref_xnor_conv2d(
        const fdaref_u64* __restrict__ x, const fdaref_u64* __restrict__ w, int* __restrict__ out,
        long long total, int C_out, int Ho, int Wo, int H, int W, int words, int channels,
        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int pad) {
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        long long rest = idx;
        const long long ox = rest % Wo; rest /= Wo;
        const long long oy = rest % Ho; rest /= Ho;
        const long long co = rest % C_out; rest /= C_out;
        const long long n = rest;
        out[idx] = fdaref_xnor_conv_point(x, w, n, co, oy, ox, H, W, words, channels, kh, kw,
                                          sh, sw, ph, pw, dh, dw, pad);
    }
}

extern "C" __global__ void fdaref_xnor_linear(
        const fdaref_u64* __restrict__ x, const fdaref_u64* __restrict__ w, int* __restrict__ out,
        long long total, int out_features, int words, int features) {
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const long long b = idx / out_features;
        const long long o = idx % out_features;
        out[idx] = fdaref_xnor_dot(x + b * words, w + o * words, words, features);
    }
}
"""

RAW_KERNEL_NAMES: tuple[str, ...] = ("fdaref_xnor_conv2d", "fdaref_xnor_linear")

# Host entry points over the same device functions, for the CPU tests (compiled with a C++ compiler and
# loaded with ctypes). Each loops over a flat C-contiguous array; the loop is the only host-only code.
HOST_SHIM = r"""
extern "C" {
#define FDAREF_HOST_ELEMENTWISE(SUFFIX, T)                                                               \
void fdaref_host_sign_##SUFFIX(const T* x, T* y, long long size, double zero) {                         \
    for (long long i = 0; i < size; ++i) y[i] = fdaref_sign(x[i], zero);                                \
}                                                                                                        \
void fdaref_host_surrogate_##SUFFIX(const T* x, T* y, long long size, int est, int n, double p,         \
                                    int clip_on, double clip) {                                         \
    for (long long i = 0; i < size; ++i) y[i] = fdaref_surrogate(x[i], est, n, p, clip_on, clip);       \
}                                                                                                        \
void fdaref_host_quant_fwd_##SUFFIX(const T* t, const T* fc, T* z, long long size, double zero,        \
                                    double alpha, int eta, double a) {                                  \
    for (long long i = 0; i < size; ++i) z[i] = fdaref_quant_fwd(t[i], fc[i], zero, alpha, eta, a);     \
}                                                                                                        \
void fdaref_host_quant_bwd_##SUFFIX(const T* g, const T* t, const T* dfc, T* dt, long long size,       \
                                    int est, int n, double p, int clip_on, double clip, double alpha,   \
                                    int eta, double a) {                                                \
    for (long long i = 0; i < size; ++i)                                                                \
        dt[i] = fdaref_quant_bwd(g[i], t[i], dfc[i], est, n, p, clip_on, clip, alpha, eta, a);          \
}
FDAREF_HOST_ELEMENTWISE(f32, float)
FDAREF_HOST_ELEMENTWISE(f64, double)

void fdaref_host_xnor_conv2d(const fdaref_u64* x, const fdaref_u64* w, int* out, int N, int C_out,
                             int Ho, int Wo, int H, int W, int words, int channels, int kh, int kw,
                             int sh, int sw, int ph, int pw, int dh, int dw, int pad) {
    long long idx = 0;
    for (long long n = 0; n < N; ++n)
        for (long long co = 0; co < C_out; ++co)
            for (long long oy = 0; oy < Ho; ++oy)
                for (long long ox = 0; ox < Wo; ++ox)
                    out[idx++] = fdaref_xnor_conv_point(x, w, n, co, oy, ox, H, W, words, channels,
                                                        kh, kw, sh, sw, ph, pw, dh, dw, pad);
}

void fdaref_host_xnor_linear(const fdaref_u64* x, const fdaref_u64* w, int* out, int B, int out_features,
                             int words, int features) {
    for (long long b = 0; b < B; ++b)
        for (long long o = 0; o < out_features; ++o)
            out[b * out_features + o] = fdaref_xnor_dot(x + b * words, w + o * words, words, features);
}
}
"""


def elementwise_source_for_check() -> str:
    """The device functions plus hand-written ``__global__`` stand-ins for the element-wise bodies.

    CuPy generates the real element-wise wrappers at run time; this source only lets ``nvcc -ptx`` (where
    a CUDA toolkit exists, even without a GPU) check that every body and device function compiles for
    both float and double.
    """
    parts = [DEVICE_FUNCTIONS, RAW_KERNELS]
    for ctype, suffix in (("float", "f32"), ("double", "f64")):
        parts.append(f"""
extern "C" __global__ void check_surrogate_{suffix}(const {ctype}* x, {ctype}* y, long long size, int est,
                                                 int n, double p, int clip_on, double clip) {{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < size) y[i] = fdaref_surrogate(x[i], est, n, p, clip_on, clip);
}}
extern "C" __global__ void check_sign_{suffix}(const {ctype}* x, {ctype}* y, long long size, double zero) {{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < size) y[i] = fdaref_sign(x[i], zero);
}}
extern "C" __global__ void check_quant_{suffix}(const {ctype}* g, const {ctype}* t, const {ctype}* f,
                                             {ctype}* z, {ctype}* dt, long long size) {{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < size) {{
        z[i] = fdaref_quant_fwd(t[i], f[i], -1.0, 0.1, 0, 0.1);
        dt[i] = fdaref_quant_bwd(g[i], t[i], f[i], 0, 9, 0.1, 0, 0.0, 0.1, 0, 0.1);
    }}
}}
""")
    return "\n".join(parts)
