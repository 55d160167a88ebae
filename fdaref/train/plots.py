"""PNG plots with matplotlib's Agg backend (no display needed): training curves, ablation curves, and the
estimators figure (sign, its surrogates and truncated Fourier series, the FDA gradient for several n)."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..atomic import write_bytes_atomic
from ..errors import InputError


class PlotUnavailable(InputError, ImportError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotUnavailable("plots need matplotlib (pip install 'fdaref[plot]')") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_training_curves(records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str],
                         title: str = "") -> Path:
    """Loss and train / validation / test accuracy per epoch from metrics.jsonl records."""
    plt = _pyplot()
    epochs = [r["epoch"] + 1 for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [_num(r.get("train_loss")) for r in records], "o-", label="train loss")
    if any(r.get("test_loss") is not None for r in records):
        ax1.plot(epochs, [_num(r.get("test_loss")) for r in records], "s-", label="test loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross entropy")
    ax1.legend()
    for key, style in (("train_acc", "o-"), ("val_acc", "^-"), ("test_acc", "s-")):
        vals = [r.get(key) for r in records]
        if any(v is not None for v in vals):
            ax2.plot(epochs, [100 * _num(v) for v in vals], style, label=key.replace("_", " "))
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_accuracy_curves(curves: Mapping[str, Sequence[Sequence[float]]], path: str | os.PathLike[str],
                         title: str = "") -> Path:
    """Mean test accuracy per epoch of each variant, with a band of +- one standard deviation over seeds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, runs in curves.items():
        length = min(len(r) for r in runs)
        arr = 100 * np.array([[_num(v) for v in list(r)[:length]] for r in runs], dtype=float)
        x = np.arange(1, length + 1)
        mean = np.nanmean(arr, axis=0) if np.isfinite(arr).any() else arr[0]
        ax.plot(x, mean, "o-", ms=3, label=name)
        if len(arr) > 1:
            std = np.nanstd(arr, axis=0, ddof=1)
            ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, plt, path)


def _integral_from_zero(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The function whose derivative is ``g`` and whose value at x = 0 is 0 (trapezoid rule)."""
    steps = np.concatenate([[0.0], np.cumsum((g[1:] + g[:-1]) / 2 * np.diff(x))])
    return steps - np.interp(0.0, x, steps)


def plot_estimators(path: str | os.PathLike[str], *, ns: Sequence[int] = (1, 3, 9, 18),
                    omega: float = 0.1) -> Path:
    """Three panels in the spirit of the paper's Fig. 1.

    (a) sign and the truncated Fourier series s_n (Eq. 9) for several n on one period, x in units of
        1/omega (the series approximates sign on (-pi/omega, pi/omega));
    (b) the classic surrogates' implied forward functions (the integral of each gradient from 0: STE the
        identity, clipped STE hardtanh, ApproxSign, SignSwish, tanh) against sign;
    (c) the FDA gradient (Eq. 10) for the same n at omega, whose peak (4 omega / pi)(n + 1) grows with n.
    """
    from ..estimators import estimator_grad, fourier_series
    plt = _pyplot()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.2))
    half = np.pi / omega
    x = np.linspace(-1.25 * half, 1.25 * half, 4001)
    a.plot(x, np.sign(x), "k", lw=2, label="sign")
    for n in ns:
        a.plot(x, fourier_series(x, n=n, omega=omega), lw=1, label=f"s_n, n={n}")
    a.set_title(f"(a) truncated Fourier series of sign (omega={omega})")
    a.set_xlabel("x")
    a.legend(fontsize=8)
    xs = np.linspace(-2, 2, 2001)
    b.plot(xs, np.sign(xs), "k", lw=2, label="sign")
    for name, label in (("ste", "STE (identity)"), ("clipped_ste", "clipped STE / hardtanh"),
                        ("approx_sign", "ApproxSign (Bi-Real)"), ("sign_swish", "SignSwish (BNN+)"),
                        ("tanh", "tanh (DSQ-like)")):
        b.plot(xs, _integral_from_zero(xs, estimator_grad(xs, name)), lw=1, label=label)
    b.set_ylim(-1.6, 1.6)
    b.set_title("(b) forward functions implied by the surrogates")
    b.set_xlabel("x")
    b.legend(fontsize=8)
    for n in ns:
        c.plot(x, estimator_grad(x, "fda", n=n, omega=omega), lw=1, label=f"n={n}")
    c.set_title("(c) FDA gradient (Eq. 10)")
    c.set_xlabel("x")
    c.legend(fontsize=8)
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig: Any, plt: Any, path: str | os.PathLike[str]) -> Path:
    """Render ``fig`` as PNG in memory, then write it atomically (InputError naming ``path`` if it cannot be)."""
    p = Path(path)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{p}: cannot create its directory {p.parent} ({exc.strerror or type(exc).__name__})") from exc
    return write_bytes_atomic(p, buf.getvalue())
