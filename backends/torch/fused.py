"""Fused FDA surrogate (SPEC 2, Eq. 10 in closed form) and the fused quantizer backward, in torch.

Eq. 10 sums n+1 cosines; the identity sum_{i=0}^{n} cos((2i+1) t) = sin(M t) / (2 sin t), M = 2(n+1),
makes the cost independent of n. Like the reference (:func:`fdaref.estimators.fda`), t is range-reduced to
t = k pi + r, |r| <= pi/2, and the value is (-1)^k sin(M r) / (2 sin r): evaluating numerator and denominator
on the same small r keeps them consistent near t = k pi, where both vanish.

Two eager kernels, both written with in-place operations on at most three work buffers (on the CPU a fresh
40 MB buffer costs as much as a transcendental pass, so temporaries are what a naive sum of n+1 cosine
tensors pays for):

- float64 mirrors the reference formula step by step: t = omega x, k = rint(t / pi), r = t - k pi, and the
  Taylor value (n+1)(1 - (M^2 - 1) r^2 / 6) where |M r| < 1e-3.
- float32 works in units of pi, u = x omega / pi, and splits the product exactly (Dekker): x = x_hi + x_lo
  with 12 significant bits in x_hi and c = omega / pi = c_hi + c_lo with 12 in c_hi, so x_hi c_hi is exact,
  k = rint(x_hi c_hi), and v = (x_hi c_hi - k) + (x_hi c_lo + x_lo c) is u - k to float32 accuracy however
  large x is. Then r = pi v; sin(M r) / (2 sin r) is accurate wherever sin r != 0 (both sines are accurate
  relative to their arguments), and r == 0 gives the limit n + 1.

:func:`fda_grad_compiled` is the same closed form as one expression for ``torch.compile`` (one generated loop:
C++ on the CPU, Triton on CUDA); it reduces in float64 and evaluates the sines in the input dtype.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Optional

import torch

Tensor = torch.Tensor

_C_SCALE = 4.0 / math.pi


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
    k.remainder_(2.0).mul_(-2.0).add_(1.0)   # (-1)^k; NaN for non-finite x, as the series
    return num.mul_(k)


def _fda_ratio_f32(x: Tensor, n: int, omega: float) -> Tensor:
    """(-1)^k sin(M r) / (2 sin r) in float32 with an exact reduction of x omega / pi (module docstring)."""
    m = 2.0 * (n + 1)
    c = omega / math.pi
    c_hi, c_lo = _split12(c)
    # x_hi: x with its 12 low mantissa bits cleared (inf/NaN stay non-finite; they give NaN below)
    a = x.view(torch.int32).bitwise_and(-4096).view(torch.float32)
    b = torch.sub(x, a).mul_(c)                 # x_lo c
    b.add_(a, alpha=c_lo)                       # + x_hi c_lo: the small correction
    a.mul_(c_hi)                                # x_hi c_hi, exact
    k = torch.round(a)
    a.sub_(k).add_(b)                           # v = u - k, |v| <= 1/2 (+ tiny) while |u| < 2^30
    k.remainder_(2.0)                           # parity of k (exact, also beyond 2^24)
    torch.round(a, out=b)                       # re-reduce: huge |x| leave |v| > 1/2
    a.sub_(b)
    k.add_(b).remainder_(2.0)
    a.mul_(math.pi)                             # r
    torch.sin(a, out=b)                         # sin r
    a.mul_(m).sin_()                            # sin(M r)
    a.div_(b).mul_(0.5)
    a.masked_fill_(b == 0, float(n + 1))        # the limit at r == 0 (v == 0 exactly)
    k.mul_(-2.0).add_(1.0)                      # (-1)^k
    return a.mul_(k)


def fda_grad(x: Tensor, n: int, omega: float, clip: Optional[float] = None,
             g: Optional[Tensor] = None) -> Tensor:
    """Eq. 10 in closed form, (4 omega / pi) sum_{i=0}^{n} cos((2i+1) omega x), times ``g`` if given.

    ``clip`` zeroes the result where |x| > clip (|x| == clip keeps it). ``x`` (and ``g``) are float32 or
    float64 on any device; the result has the dtype of ``x`` and is a new tensor (inputs are never written).
    """
    if x.dtype == torch.float64:
        out = _fda_ratio_f64(x, n, omega)
    elif x.dtype == torch.float32:
        out = _fda_ratio_f32(x.contiguous(), n, omega)
    else:
        raise TypeError(f"fda: expected a float32 or float64 tensor, got {x.dtype}")
    out.mul_(_C_SCALE * omega)
    if g is not None:
        out.mul_(g)
    if clip is not None:
        out.masked_fill_(x.abs() > clip, 0.0)
    return out


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
    sgn = (1.0 - 2.0 * torch.remainder(k, 2.0)).to(x.dtype)
    return ratio * sgn * (_C_SCALE * omega) * g


_COMPILED: dict[str, Callable] = {}


def compile_available() -> bool:
    """True unless ``FDAREF_TORCH_COMPILE=0`` or this torch has no torch.compile."""
    return os.environ.get("FDAREF_TORCH_COMPILE", "1") != "0" and hasattr(torch, "compile")


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
