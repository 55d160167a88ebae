"""Compare one output of a backend with the reference under a tolerance; say precisely how it differs."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from .tolerances import Tol, finite_magnitude


@dataclass
class OutputDiff:
    """How one output compares. ``ok`` is the verdict; the rest is for the report."""

    output: str
    ok: bool
    problem: str = ""                       # structural problem (shape, dtype, None), or "" if values compared
    shape: Optional[tuple[int, ...]] = None
    n_bad: int = 0
    n_total: int = 0
    worst_abs: float = 0.0
    worst_abs_index: Optional[tuple[int, ...]] = None
    worst_rel: float = 0.0
    worst_rel_index: Optional[tuple[int, ...]] = None
    worst_index: Optional[tuple[int, ...]] = None   # where the tolerance is exceeded the most
    got_at_worst: Optional[float] = None
    ref_at_worst: Optional[float] = None
    allowed_at_worst: Optional[float] = None
    tolerance: dict[str, Any] = field(default_factory=dict)
    sign_flips: int = 0
    sign_band: Optional[float] = None
    margin: Optional[float] = None   # max |got - ref| / allowed over the elements (0 when exact and equal)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.problem:
            return f"{self.output}: {self.problem}"
        head = (f"{self.output}: {self.n_bad}/{self.n_total} elements ({100.0 * self.n_bad / max(1, self.n_total):.1f}%) "
                f"outside tolerance" if not self.ok else f"{self.output}: ok")
        lines = [head]
        if self.n_total:
            lines.append(f"  greatest absolute difference {self.worst_abs:.6g} at index {self.worst_abs_index}; "
                         f"greatest relative difference {self.worst_rel:.6g} at index {self.worst_rel_index}")
        if not self.ok and self.worst_index is not None:
            lines.append(f"  worst element {self.worst_index}: got {self.got_at_worst!r}, reference "
                         f"{self.ref_at_worst!r}, allowed difference {self.allowed_at_worst:.6g} "
                         f"(tolerance {self.tolerance})")
        if self.sign_band is not None:
            lines.append(f"  sign flips within the band |ref| <= {self.sign_band:.3g}: {self.sign_flips} (tolerated)")
        return "\n".join(lines)


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def expected_dtype_ok(got: np.ndarray, expected: str) -> bool:
    return np.dtype(got.dtype) == np.dtype(expected)


def tolerance_floor(dtype: Any, magnitude: np.ndarray) -> float:
    """SEMANTICS 9's floor: the dtype's smallest normal times the op's magnitude (its largest over the output, at
    least 1). A correct result may underflow there: e.g. a float32 product of subnormal inputs is 0."""
    finite = magnitude[np.isfinite(magnitude)] if magnitude.size else magnitude
    scale = max(1.0, float(np.max(finite))) if finite.size else 1.0
    return float(np.finfo(dtype).tiny) * scale


def compare_output(name: str, got: Any, ref: Any, tol: Tol, magnitude: Any, expected_dtype: Optional[str]
                   ) -> OutputDiff:
    """Compare ``got`` (a host numpy array or None) with ``ref`` (float64 / integer reference)."""
    tol_d = tol.to_dict()
    if ref is None or got is None:
        if ref is None and got is None:
            return OutputDiff(name, True, tolerance=tol_d)
        what = "None" if got is None else f"an array of shape {np.shape(got)}"
        return OutputDiff(name, False, problem=f"expected {'None' if ref is None else 'an array'}, got {what}",
                          tolerance=tol_d)
    got = np.asarray(got)
    ref = np.asarray(ref)
    if got.shape != ref.shape:
        return OutputDiff(name, False, problem=f"shape {got.shape}, expected {ref.shape}", shape=ref.shape,
                          tolerance=tol_d)
    if expected_dtype is not None and not expected_dtype_ok(got, expected_dtype):
        return OutputDiff(name, False, problem=f"dtype {got.dtype}, expected {expected_dtype}", shape=ref.shape,
                          tolerance=tol_d)
    if got.size == 0:
        return OutputDiff(name, True, shape=ref.shape, tolerance=tol_d)
    if ref.dtype.kind in "iub" or got.dtype.kind in "iub":
        g64, r64 = got.astype(np.float64), ref.astype(np.float64)
        if ref.dtype.kind == "u" or got.dtype.kind == "u":  # packed words: compare bits exactly
            bad = got.astype(np.uint64) != ref.astype(np.uint64)
            diff = np.where(bad, np.abs(g64 - r64), 0.0)
        else:
            diff = np.abs(g64 - r64)
            bad = diff != 0
        allowed = np.zeros_like(diff)
    else:
        g64, r64 = got.astype(np.float64), ref.astype(np.float64)
        nan_g, nan_r = np.isnan(g64), np.isnan(r64)
        same_inf = np.isinf(r64) & (g64 == r64)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(g64 - r64)
        diff = np.where(nan_g & nan_r, 0.0, diff)
        diff = np.where(nan_g ^ nan_r, np.inf, diff)
        diff = np.where(same_inf, 0.0, diff)
        if tol.exact:
            allowed = np.zeros_like(diff)
        else:
            mag = np.broadcast_to(finite_magnitude(magnitude, r64), diff.shape)   # a NaN would allow anything
            with np.errstate(invalid="ignore", over="ignore"):
                allowed = tol.atol * mag + tol.rtol * np.where(np.isfinite(r64), np.abs(r64), 0.0)
                if tol.floor:
                    allowed = np.maximum(allowed, tolerance_floor(got.dtype, mag))
        bad = diff > allowed
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):   # diff / a subnormal reference
        rel = np.where(np.abs(r64) > 0, diff / np.abs(r64), np.where(diff > 0, np.inf, 0.0))
    ia, ir = int(np.argmax(diff)), int(np.argmax(rel))
    out = OutputDiff(name, not bool(bad.any()), shape=ref.shape, n_bad=int(bad.sum()), n_total=int(bad.size),
                     worst_abs=float(diff.flat[ia]), worst_abs_index=_index(ia, ref.shape),
                     worst_rel=float(rel.flat[ir]), worst_rel_index=_index(ir, ref.shape), tolerance=tol_d)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ratio = np.where(diff == 0, 0.0, diff / np.maximum(allowed, 1e-300))
    out.margin = float(np.max(ratio)) if ratio.size else 0.0
    if bad.any():
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            excess = np.where(bad, diff / np.maximum(allowed, 1e-300), -1.0)
        iw = int(np.argmax(excess))
        out.worst_index = _index(iw, ref.shape)
        out.got_at_worst = _scalar(got.flat[iw])
        out.ref_at_worst = _scalar(ref.flat[iw])
        out.allowed_at_worst = float(allowed.flat[iw])
    return out


def compare_signs(name: str, got: np.ndarray, ref_sign: np.ndarray, ref_value: np.ndarray, band: float
                  ) -> OutputDiff:
    """Signs of a *computed* value: a mismatch counts only where |ref_value| > band; the others are flips."""
    got, ref_sign, ref_value = np.asarray(got), np.asarray(ref_sign), np.asarray(ref_value, np.float64)
    if got.shape != ref_sign.shape:
        return OutputDiff(name, False, problem=f"shape {got.shape}, expected {ref_sign.shape}")
    differ = got.astype(np.float64) != ref_sign.astype(np.float64)
    near = np.abs(ref_value) <= band
    bad = differ & ~near
    out = OutputDiff(name, not bool(bad.any()), shape=got.shape, n_bad=int(bad.sum()), n_total=int(got.size),
                     worst_abs=float(np.max(np.abs(got - ref_sign))) if got.size else 0.0,
                     tolerance={"rule": "sign", "band": band}, sign_flips=int((differ & near).sum()),
                     sign_band=band)
    if bad.any():
        iw = int(np.argmax(np.where(bad, np.abs(ref_value), -1.0)))
        out.worst_index = _index(iw, got.shape)
        out.got_at_worst, out.ref_at_worst = _scalar(got.flat[iw]), _scalar(ref_sign.flat[iw])
        out.allowed_at_worst = 0.0
    return out


def _scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
