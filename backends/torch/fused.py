"""Fused FDA surrogate (SEMANTICS 2, Eq. 10 in closed form) and the fused quantizer backward, in torch.

Eq. 10 sums n+1 cosines; the identity sum_{i=0}^{n} cos((2i+1) t) = sin(M t) / (2 sin t), M = 2(n+1),
makes the cost independent of n. Like the reference (:func:`fdaref.estimators.fda`), t is range-reduced to
t = k pi + r, |r| <= pi/2, and the value is (-1)^k sin(M r) / (2 sin r): evaluating numerator and denominator
on the same small r keeps them consistent near t = k pi, where both vanish.

Two eager kernels, both written with in-place operations on at most three work buffers (on the CPU a fresh
40 MB buffer costs as much as a transcendental pass, so temporaries are what a naive sum of n+1 cosine
tensors pays for):

- the general kernel mirrors the reference formula step by step in float64 (for float32 inputs too, then
  rounded once): t = omega x, k = rint(t / pi), r = t - k pi, and the Taylor value (n+1)(1 - (M^2 - 1) r^2 / 6)
  where |M r| < 1e-3. So it is as accurate as the reference's own reduction at any |x|.
- the lean float32 kernel (below) covers |x omega / pi| <= LEAN_LIMIT, every activation in practice.

:func:`fda_grad_compiled` is the same closed form as one expression for ``torch.compile`` (one generated loop:
C++ on the CPU, Triton on CUDA); it reduces in float64 and evaluates the sines in the input dtype.

On the CPU a tensor with a gradient ``g`` goes to the numba loop of :mod:`.cpu_loops` where numba is
installed and the tensor is covered (one pass at ~0.5 ns an element against ~4 ns for the lean kernel's
passes: bench_torch.py, fda_backward, one thread); the kernels here serve the rest (no numba, NaN / inf, very large |x|, float64, no ``g``).
"""
from __future__ import annotations

import functools
import math
import os
from typing import Callable, Optional

import torch

from . import cpu_loops

Tensor = torch.Tensor

_C_SCALE = 4.0 / math.pi


@functools.lru_cache(maxsize=64)  # called once per CPU block: the tensor round trip is not free
def _split12(c: float) -> tuple[float, float]:
    """c = hi + lo with ``hi`` a float32 of 12 significant bits (so hi times a 12-bit float32 is exact)."""
    hi = torch.tensor(c, dtype=torch.float32).view(torch.int32).bitwise_and(-4096).view(torch.float32).item()
    lo = float(torch.tensor(c - hi, dtype=torch.float32).item())
    return hi, lo


def _fda_ratio_f64(x: Tensor, n: int, omega: float) -> Tensor:
    """(-1)^k sin(M r) / (2 sin r) in float64, the reference's steps with in-place updates."""
    m = 2.0 * (n + 1)
    t = x.to(torch.float64, copy=True).mul_(omega)
    k = torch.mul(t, 1.0 / math.pi).round_()
    t.sub_(k.mul_(math.pi))                   # r = t - k pi, rounded as the reference rounds it
    k.div_(math.pi).round_()                  # k back (exact: k pi is within half an ulp)
    num = torch.mul(t, m)                     # M r
    near = num.abs() < 1e-3
    num.sin_()
    num.div_(torch.sin(t).mul_(2.0))
    if bool(near.any()):
        r = t[near]
        num[near] = (n + 1) * (1.0 - (m * m - 1.0) / 6.0 * r * r)
    return num.mul_(_parity_sign_(k))        # (-1)^k; NaN for non-finite x, as the series


def _parity_sign_(k: Tensor) -> Tensor:
    """In place: (-1)^k = 1 - 4 |frac(k / 2)| for integer-valued k (exact; NaN for non-finite k). Cheaper
    than remainder, which torch does not vectorize."""
    return k.mul_(0.5).frac_().abs_().mul_(-4.0).add_(1.0)


def fda_grad(x: Tensor, n: int, omega: float, clip: Optional[float] = None,
             g: Optional[Tensor] = None) -> Tensor:
    """Eq. 10 in closed form, (4 omega / pi) sum_{i=0}^{n} cos((2i+1) omega x), times ``g`` if given.

    ``clip`` zeroes the result where |x| > clip (|x| == clip keeps it). ``x`` (and ``g``) are float32 or
    float64 on any device; the result has the dtype of ``x`` and is a new tensor (inputs are never written).
    """
    if x.dtype == torch.float32 and x.device.type == "cpu" and (g is None or g.shape == x.shape):
        out = _fda_blocked(x, n, omega, g)
    else:
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"fda: expected a float32 or float64 tensor, got {x.dtype}")
        out = _fda_ratio_f64(x, n, omega).mul_(_C_SCALE * omega)
        if g is not None:
            out.mul_(g)
        out = out.to(x.dtype)
    if clip is not None:
        out.masked_fill_(x.abs() > clip, 0.0)
    return out


# ---------------------------------------------------------------------------------------------------
# The lean float32 kernel and cache blocking (CPU).
#
# On the CPU every eager op is a pass over memory; for activation-sized tensors (8 MB) the passes of a float32
# kernel stream through DRAM. Two things cut that cost:
# - for |u| = |x omega / pi| <= LEAN_LIMIT (every activation in practice; checked per block, else the general
#   kernel runs) the reduction splits the product (Dekker): x = x_hi + x_lo with 12 significant bits in x_hi
#   and c = omega / pi = c_hi + c_lo with 12 in c_hi, so x_hi c_hi is exact, b = x_lo c_hi + x c_lo is tiny
#   (|b| <= |u| 2^-11, so its rounding is below 2^-27; c_lo's own rounding costs |u| 2^-36), k = rint(x_hi
#   c_hi + b), and v = (x_hi c_hi - k) + b with an exact subtraction; (-1)^k is 1 - 4 |frac(k / 2)|, exact
#   for |k| <= 2^8. r = pi v; sin(M r) / (2 sin r) is accurate wherever sin r != 0, and r == 0 gives n + 1.
# - the passes run block by block (CPU_BLOCK elements, a few hundred KB per buffer), so the work buffers and
#   the block of x stay in L2 between passes.

LEAN_LIMIT = 256.0
CPU_BLOCK = 1 << 17


def lean_applies(x: Tensor, omega: float) -> bool:
    """Whether the lean kernel covers every element of ``x`` (float32, all |x omega / pi| <= LEAN_LIMIT;
    False where x holds NaN or inf)."""
    if x.dtype != torch.float32 or x.numel() == 0:
        return False
    lo, hi = torch.aminmax(x)
    bound = LEAN_LIMIT * math.pi / omega
    return bool(lo.item() >= -bound) and bool(hi.item() <= bound)  # NaN compares False


def fda_lean_into_(out: Tensor, x: Tensor, g: Optional[Tensor], n: int, omega: float,
                   work: tuple[Tensor, Tensor, Tensor], cos_coef: float = 0.0) -> Tensor:
    """out = (fda'(x) + cos_coef cos(x)) (times ``g``) for float32 ``x`` with :func:`lean_applies`; ``out``,
    ``x``, ``g`` of one shape and contiguous; ``work``: three float32 buffers of ``x``'s shape (overwritten).
    ``out`` may not alias ``x`` or ``g``. The cos term is the quantizer's eta = a sin backward (SEMANTICS 4),
    folded in here so that it costs two passes instead of a tensor and three."""
    m = 2.0 * (n + 1)
    c_hi, c_lo = _split12(omega / math.pi)
    half_scale = 0.5 * _C_SCALE * omega             # (4 omega / pi) / 2: the 2 of 2 sin r folded in
    a, b, k = work
    torch.bitwise_and(x.view(torch.int32), -4096, out=a.view(torch.int32))   # x_hi, 12 significant bits
    torch.sub(x, a, out=b)                          # x_lo, exact
    b.mul_(c_hi).add_(x, alpha=c_lo)                # x_lo c_hi (exact) + x c_lo (tiny)
    a.mul_(c_hi)                                    # x_hi c_hi, exact
    torch.add(a, b, out=k).round_()                 # k = rint(u)
    a.sub_(k).add_(b)                               # v = u - k, |v| <= 1/2 (+ an ulp)
    _parity_sign_(k)                                # (-1)^k, exact: four cheap passes instead of a cosine
    a.mul_(math.pi)                                 # r = pi v, rounded once: both sines below take this r, so
    torch.sin(a, out=b)                             # sin r   numerator and denominator stay consistent even
    a.mul_(m).sin_()                                # sin(M r) where r is subnormal (fl(M pi v) / fl(pi v) is not)
    a.div_(b).nan_to_num_(nan=m)                    # 0/0 only at r == 0: the limit M (x 1/2 in the scale)
    a.mul_(k)
    if cos_coef != 0:
        a.add_(torch.cos(x, out=b), alpha=cos_coef / half_scale)
    if g is None:
        return torch.mul(a, half_scale, out=out)
    return torch.addcmul(_zero(a), a, g, value=half_scale, out=out)


def _zero(like: Tensor) -> Tensor:
    return torch.zeros((), dtype=like.dtype, device=like.device)


def _blocking() -> int:
    """Elements per CPU block: CPU_BLOCK with one intra-op thread. With several, every op is a fork/join,
    blocks multiply their number, and on a shared machine the joins cost more than the DRAM traffic saved
    (a resnet20 step on 2 threads of a loaded 2-core box: 4.7 s blocked, 4.0 s whole tensors)."""
    return CPU_BLOCK if torch.get_num_threads() == 1 else 1 << 62


def _fda_blocked(x: Tensor, n: int, omega: float, g: Optional[Tensor]) -> Tensor:
    """:func:`fda_grad` without clip on a CPU float32 tensor, block by block (lean kernel where it applies)."""
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    xf, of = x.reshape(-1), out.view(-1)
    gf = None if g is None else g.reshape(-1)
    if gf is not None and cpu_loops.covers(xf, omega):   # one fused pass over the whole tensor
        cpu_loops.fda_cos_into(of, xf, gf, n, omega)
        return out
    block = _blocking()
    size = min(block, xf.numel())
    work = (torch.empty(size, dtype=x.dtype), torch.empty(size, dtype=x.dtype), torch.empty(size, dtype=x.dtype))
    for i in range(0, xf.numel(), block):
        xs, os_ = xf[i:i + block], of[i:i + block]
        gs = None if gf is None else gf[i:i + block]
        fda_into_(os_, xs, gs, n, omega, work)
    return out


def fda_into_(out: Tensor, x: Tensor, g: Optional[Tensor], n: int, omega: float,
              work: tuple[Tensor, Tensor, Tensor], cos_coef: float = 0.0) -> Tensor:
    """out = g (fda'(x) + cos_coef cos x) (no clip) for one CPU block, all flat: the lean kernel where it
    applies, else the general one. ``work``: flat buffers at least as long as ``x``. (Callers check once per
    tensor whether the numba loop of :mod:`.cpu_loops` covers it, and then call that instead.)"""
    if lean_applies(x, omega):
        l = x.numel()
        return fda_lean_into_(out, x, g, n, omega, (work[0][:l], work[1][:l], work[2][:l]), cos_coef)
    ratio = _fda_ratio_f64(x, n, omega).mul_(_C_SCALE * omega)   # float64 whatever x's dtype (module docstring)
    if cos_coef != 0:
        ratio.add_(torch.cos(x), alpha=cos_coef)
    return out.copy_(ratio.mul_(g) if g is not None else ratio)


def fda_series_naive(x: Tensor, n: int, omega: float, g: Optional[Tensor] = None) -> Tensor:
    """Eq. 10 literally: n+1 cosine tensors summed (the naive baseline the benchmarks compare against)."""
    t = x * omega
    terms = [torch.cos((2 * i + 1) * t) for i in range(n + 1)]
    out = torch.stack(terms).sum(0) * (_C_SCALE * omega)
    return out if g is None else out * g


def _fda_expr(x: Tensor, g: Tensor, n: int, omega: float) -> Tensor:
    """The closed form as one pure expression (for torch.compile): float64 reduction, sines in x.dtype."""
    m = 2.0 * (n + 1)
    t = x.to(torch.float64) * omega
    k = torch.round(t * (1.0 / math.pi))
    r64 = t - k * math.pi
    r = r64.to(x.dtype)
    mr = r * m
    ratio = torch.sin(mr) / (2.0 * torch.sin(r))
    taylor = (n + 1) * (1.0 - (m * m - 1.0) / 6.0 * r * r)
    ratio = torch.where(mr.abs() < 1e-3, taylor, ratio)
    half = 0.5 * k                      # (-1)^k = 1 - 4 frac(k / 2): floor vectorises, remainder (5x dearer) not
    sgn = (1.0 - 4.0 * (half - torch.floor(half))).to(x.dtype)
    return ratio * sgn * (_C_SCALE * omega) * g


_COMPILED: dict[str, Callable] = {}
_COMPILE_FAILED: set[str] = set()


def use_compiled(device_type: str) -> bool:
    """Whether :func:`fda_grad_auto` takes the torch.compile kernel on ``device_type``.

    ``FDAREF_TORCH_COMPILE``: ``auto`` (default) compiles on CUDA only (on the CPU the one-off compile,
    ~15-20 s per process, outweighs the gain for short runs and tests), ``1`` everywhere, ``0`` never. A
    device where compiling failed once (no compiler, no Triton) stays on the eager kernel.
    """
    mode = os.environ.get("FDAREF_TORCH_COMPILE", "auto").lower()
    if mode in ("0", "false", "no", "off") or not hasattr(torch, "compile") or device_type in _COMPILE_FAILED:
        return False
    return mode in ("1", "true", "yes", "on") or device_type == "cuda"


def fda_grad_compiled(x: Tensor, n: int, omega: float, clip: Optional[float] = None,
                      g: Optional[Tensor] = None) -> Tensor:
    """:func:`fda_grad` through ``torch.compile`` (one fused loop). The first call per device compiles
    (about 20 s on a small CPU); use it where the same shapes run many times."""
    key = x.device.type
    fn = _COMPILED.get(key)
    if fn is None:
        fn = _COMPILED[key] = torch.compile(_fda_expr, dynamic=True)
    out = fn(x, torch.ones((), dtype=x.dtype, device=x.device) if g is None else g, n, float(omega))
    if clip is not None:
        out = out.masked_fill_(x.abs() > clip, 0.0)
    return out


def fda_grad_auto(x: Tensor, n: int, omega: float, clip: Optional[float] = None,
                  g: Optional[Tensor] = None) -> Tensor:
    """:func:`fda_grad_compiled` where :func:`use_compiled` says so, else :func:`fda_grad`; a failing compile
    warns once and falls back to the eager kernel (same values within the float tolerance)."""
    device_type = x.device.type
    if use_compiled(device_type):
        try:
            return fda_grad_compiled(x, n, omega, clip, g)
        except Exception as exc:  # compiler or Triton missing, or an unsupported setup
            import warnings
            _COMPILE_FAILED.add(device_type)
            warnings.warn(f"fdaref torch backend: torch.compile of the FDA kernel failed on {device_type} "
                          f"({type(exc).__name__}: {exc}); using the eager closed form", RuntimeWarning)
    return fda_grad(x, n, omega, clip, g)
