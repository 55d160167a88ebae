"""Values that probe where implementations break, built on purpose (SEMANTICS 9), for the surrogate, the
quantizer and the layer checks.

- FDA over its whole domain: |omega x| up to :func:`fda_argument_limit`, and points at many distances from
  every k pi (the closed form's 0/0), from 1 ulp of x up to ~0.5 in omega x, for small and large k. A
  float32 closed form without range reduction (t = omega x and M t rounded to float32) is off there by
  ~ulp(t) / |sin t| of the peak; so is a Taylor guard of the wrong width.
- float32 / float64 subnormals and the smallest normal (flush-to-zero, underflow), signed zeros.
- values straddling a clip (and |x| = 1 of the STEs): the boundary and 1, 2, 3 ulps either side.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

# Distances from k pi in omega x (beyond the ulp ladder): decades from 1e-7 to 0.5, so every branch of a
# guarded closed form (Taylor near 0, the division elsewhere) and its switch-over point is crossed.
KPI_DISTANCES = (1e-7, 1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.25, 0.5)
ULP_STEPS = (1, 2, 3, 8, 64, 1024)


def fda_argument_limit(dtype: str, n: int) -> float:
    """The largest |omega x| drawn: where the dtype still resolves the argument of the fastest cosine and
    a float64 evaluation of t = omega x still meets the tolerance.

    - resolution: adjacent float values of t differ by at most 1/16 rad in cos((2n+1) t):
      M ulp(t) <= 1/16 with M = 2(n + 1), i.e. t <= 1 / (16 M eps);
    - precision (float64): rounding t to float64 moves Eq. 10 by (n + 1) eps |t| of its peak, which must stay
      below 1/8 of the float64 tolerance 1e-11 of the peak.
    The result is the largest power of two below both (float32, n = 9: 2^14; float64, n = 9: 2^9).
    """
    eps = float(np.finfo(dtype).eps)
    m = 2.0 * (n + 1)
    limit = 1.0 / (16.0 * m * eps)
    if np.dtype(dtype) == np.float64:
        limit = min(limit, 1e-11 / 8.0 / ((n + 1) * eps))
    return float(2.0 ** math.floor(math.log2(limit)))


def ulp_neighbours(v: float, dtype: str, steps: tuple[int, ...] = ULP_STEPS) -> list[float]:
    """v rounded to ``dtype`` and ``steps`` ulps (of v's binade) either side of it."""
    t = np.dtype(dtype).type
    x = t(v)
    with np.errstate(over="ignore", invalid="ignore"):
        up, down = np.nextafter(x, t(np.inf)) - x, x - np.nextafter(x, t(-np.inf))  # differ at a power of 2
        return [float(x)] + [float(t(x + t(s) * up)) for s in steps] + [float(t(x - t(s) * down)) for s in steps]


def kpi_points(k: int, omega: float, dtype: str) -> list[float]:
    """x near omega x = k pi: the ulp ladder of x, and every distance of KPI_DISTANCES either side."""
    centre = k * math.pi / omega
    pts = ulp_neighbours(centre, dtype)
    for d in KPI_DISTANCES:
        pts += [(k * math.pi + d) / omega, (k * math.pi - d) / omega]
    return pts


def kpi_ks(dtype: str, n: int, count: int, rng: np.random.Generator) -> list[int]:
    """Small k (0, +-1, +-2, +-3) and ``count`` log-uniform k up to the argument limit, random signs."""
    k_max = max(4, int(fda_argument_limit(dtype, n) / math.pi) - 1)
    ks = [0, 1, -1, 2, -3]
    for _ in range(count):
        k = int(round(math.exp(rng.uniform(math.log(4), math.log(k_max)))))
        ks.append(k if rng.random() < 0.5 else -k)
    ks.append(k_max)
    ks.append(-k_max)
    return ks


def tiny_values(dtype: str) -> list[float]:
    """Signed zeros, subnormals (the smallest, a middle one) and the smallest normal, both signs."""
    fi = np.finfo(dtype)
    mids = [float(fi.smallest_subnormal), float(fi.tiny) / 2.0 ** 10, float(fi.tiny) / 2.0,
            float(np.nextafter(fi.dtype.type(fi.tiny), fi.dtype.type(0))), float(fi.tiny)]
    return [0.0, -0.0] + mids + [-v for v in mids]


# A NaN with its sign bit set: x86's default NaN (what inf - inf and 0 * inf give there) is negative, so a
# kernel whose negative test is `signbit(x)` turns it into -1 or takes x < 0's branch; the positive NaN
# alone never shows that.
NEGATIVE_NAN = math.copysign(math.nan, -1.0)

# SEMANTICS 10 for every surrogate: fda and sign_swish give NaN at +-inf and NaN (where a port's clip mask or
# cosh guard often returns 0 instead), the clipped ones 0 at +-inf; the straight-through masks 1 (ste) or 0
# (clipped_ste, approx_sign) at NaN.
NON_FINITE = (math.inf, -math.inf, math.nan, NEGATIVE_NAN)
NANS = (math.nan, NEGATIVE_NAN)

# |beta x| where the beta estimators' tails are probed: sign_swish and tanh decay like e^(-|beta x|) and
# e^(-2 |beta x|), so a port that returns 0 past a cutoff (|beta x| > 10 or 20, where float32 would
# saturate) is off by ~1e-3 .. 1e-10 of the peak just past it; fixed x (3, 40) miss the cutoff for most
# betas. Up to 30: a sign_swish cut below ~26 still exceeds float64's 1e-11 of the peak there.
BETA_TAIL = (8.0, 11.0, 12.0, 16.0, 22.0, 26.0, 30.0)


def boundary_values(bound: float, dtype: str) -> list[float]:
    """The boundary +-``bound`` and 1, 2, 3 ulps either side (a clip, |x| = 1 of the STEs)."""
    return ulp_neighbours(bound, dtype, (1, 2, 3)) + ulp_neighbours(-bound, dtype, (1, 2, 3))


def surrogate_probes(estimator: str, params: dict, dtype: str, rng: np.random.Generator,
                     far_ks: int = 3) -> list[float]:
    """Probe values for one estimator: tiny values, its boundaries, and for fda the k pi ladder."""
    out = tiny_values(dtype)
    fda_like = estimator in ("fda", "fda_series")
    bound: Optional[float] = params.get("clip") if fda_like else (1.0 if estimator in ("clipped_ste", "approx_sign")
                                                                   else None)
    if bound is not None:
        out += boundary_values(float(bound), dtype)
    if fda_like:
        for k in kpi_ks(dtype, int(params["n"]), far_ks, rng):
            out += kpi_points(k, float(params["omega"]), dtype)
    else:
        out += [0.5, -0.5, 3.0, -3.0, 40.0, -40.0, 1e4, -1e4]
    if "beta" in params:   # the tails sit at fixed beta |x|, not at fixed x
        beta = float(params["beta"])
        out += [s * v / beta for v in BETA_TAIL for s in (1.0, -1.0)]
    finite_max = float(np.finfo(dtype).max)
    return [v for v in out if abs(v) <= finite_max]


def fda_scale_choices(params: dict, dtype: str) -> tuple[float, ...]:
    """Half-widths of the uniform part of an fda input: near the origin, and the whole domain."""
    omega = float(params["omega"])
    near = 3.0 * math.pi / omega if params.get("clip") is None else 1.5 * float(params["clip"])
    return (near, fda_argument_limit(dtype, int(params["n"])) / omega)
