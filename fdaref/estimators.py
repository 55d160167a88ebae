"""Surrogate gradients ("estimators") of sign, registered by name (SEMANTICS 2).

Each estimator is d sign / dx as used in the backward pass. ``estimator_grad(x, name, **params)`` is the
one entry point; third parties add their own with :func:`register_estimator`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np

from ._validate import check_float_array, check_int, check_positive
from .precision import as_dtype_of, f64

GradFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Estimator:
    """A named surrogate: ``grad(x, **params)`` with the parameter defaults and a checker for them.

    For the conformance suite (SEMANTICS 9) a surrogate also declares ``peak(params)``, its largest |value| (the
    scale of its tolerance), and ``antiderivative(x, **params)``, a float64 function whose derivative it is
    (checked by finite differences); ``antiderivative=None`` opts out of that check (the report says so).
    ``peak=None`` leaves the estimator unchecked by the suite (reported: a tolerance needs a scale).
    """
    name: str
    grad: GradFn
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict], dict] = staticmethod(lambda params: params)
    doc: str = ""
    peak: Optional[Callable[[dict], float]] = None
    antiderivative: Optional[GradFn] = None

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict:
        """Defaults overlaid with ``params``; unknown names and invalid values raise."""
        params = dict(params or {})
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"estimator {self.name!r}: unknown parameter(s) {sorted(unknown)}; "
                            f"it takes {sorted(self.defaults) or 'none'}")
        return self.check({**self.defaults, **params})


_REGISTRY: dict[str, Estimator] = {}


def register_estimator(name: str, grad: GradFn, defaults: Mapping[str, Any] | None = None,
                       check: Callable[[dict], dict] | None = None, doc: str = "",
                       replace: bool = False, *, peak: float | Callable[[dict], float] | None = None,
                       antiderivative: GradFn | None = None) -> Estimator:
    """Add a surrogate gradient under ``name``; ``grad(x, **params)`` maps an array to d sign/dx.

    ``peak`` (a number or ``peak(params) -> float``) is its largest |value|; ``antiderivative(x, **params)``
    a float64 function whose derivative ``grad`` is. With both, ``fdaref conform`` draws and checks it like
    the built-in ones (without ``antiderivative``, the finite-difference check is skipped and reported).
    """
    if not isinstance(name, str) or not name:
        raise ValueError("estimator name must be a non-empty string")
    if name in _REGISTRY and not replace:
        raise ValueError(f"estimator {name!r} is already registered (pass replace=True to override)")
    peak_fn = peak if (peak is None or callable(peak)) else (lambda params, _v=float(peak): _v)
    est = Estimator(name, grad, dict(defaults or {}), check or (lambda p: p), doc, peak_fn, antiderivative)
    _REGISTRY[name] = est
    return est


def get_estimator(name: str) -> Estimator:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown estimator {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def estimator_names() -> list[str]:
    return sorted(_REGISTRY)


def estimator_grad(x: np.ndarray, name: str, **params: Any) -> np.ndarray:
    """d sign / dx at ``x`` under the estimator ``name`` (SEMANTICS 2). Same shape and dtype as ``x``."""
    check_float_array(x, "x")
    est = get_estimator(name)
    return est.grad(x, **est.resolve(params))


# ---------------------------------------------------------------------------------------------------
# The surrogates of SEMANTICS 2, literally, in float64; each returns the dtype it was given.

def ste(x: np.ndarray) -> np.ndarray:
    """Straight-through estimator: 1 everywhere."""
    return np.ones_like(x)


def clipped_ste(x: np.ndarray) -> np.ndarray:
    """BNN / hardtanh STE: 1 where |x| <= 1 (boundary included), else 0."""
    return as_dtype_of(np.where(np.abs(f64(x)) <= 1, 1.0, 0.0), x)


def approx_sign(x: np.ndarray) -> np.ndarray:
    """Bi-Real ApproxSign: 2 - 2|x| where |x| <= 1, else 0."""
    ax = np.abs(f64(x))
    return as_dtype_of(np.where(ax <= 1, 2 - 2 * ax, 0.0), x)


def sign_swish(x: np.ndarray, beta: float = 5.0) -> np.ndarray:
    """BNN+ SignSwish: beta (2 - beta x tanh(beta x / 2)) / (1 + cosh(beta x))."""
    bx = beta * f64(x)
    # cosh overflows to inf far from 0, where the gradient is 0; at +-inf the ratio is inf / inf = NaN
    # (SEMANTICS 10), computed without a warning
    with np.errstate(over="ignore", invalid="ignore"):
        return as_dtype_of(beta * (2 - bx * np.tanh(bx / 2)) / (1 + np.cosh(bx)), x)


def tanh(x: np.ndarray, beta: float = 2.0) -> np.ndarray:
    """DSQ / IR-Net style: beta (1 - tanh(beta x)^2)."""
    return as_dtype_of(beta * (1 - np.tanh(beta * f64(x)) ** 2), x)


def _check_beta(params: dict) -> dict:
    check_positive(params["beta"], "beta")
    return params


# ---------------------------------------------------------------------------------------------------
# FDA (Eqs. 9-10): the truncated Fourier series of sign and its derivative.

def _check_fda(params: dict) -> dict:
    check_int(params["n"], "n", minimum=0)
    check_positive(params["omega"], "omega")
    if params["clip"] is not None:
        check_positive(params["clip"], "clip")
    return params


def _clip_mask(x: np.ndarray, grad: np.ndarray, clip: float | None) -> np.ndarray:
    """Zero the gradient where |x| > clip; |x| == clip keeps it (SEMANTICS 2). ``x`` is the input in its own
    dtype and the clip is rounded to that dtype first, so a float32 x equal to float32(clip) keeps it."""
    if clip is None:
        return grad
    return np.where(np.abs(x) > x.dtype.type(clip), 0.0, grad)


def fourier_series(x: np.ndarray, n: int = 9, omega: float = 0.1) -> np.ndarray:
    """Eq. 9: s_n(x) = (4/pi) sum_{i=0}^{n} sin((2i+1) omega x) / (2i+1), the smooth stand-in for sign."""
    check_float_array(x, "x")
    _check_fda({"n": n, "omega": omega, "clip": None})
    t = omega * f64(x)
    total = sum(np.sin((2 * i + 1) * t) / (2 * i + 1) for i in range(n + 1))
    return as_dtype_of((4 / np.pi) * total, x)


def fda_series(x: np.ndarray, n: int = 9, omega: float = 0.1, clip: float | None = None) -> np.ndarray:
    """Eq. 10, term by term: (4 omega / pi) sum_{i=0}^{n} cos((2i+1) omega x); n+1 cosine terms (inclusive)."""
    xf = f64(x)
    with np.errstate(invalid="ignore"):  # cos(inf) is NaN, as it should be
        total = sum(np.cos((2 * i + 1) * omega * xf) for i in range(n + 1))
    return as_dtype_of(_clip_mask(x, (4 * omega / np.pi) * total, clip), x)


# Below this |2(n+1) r| the closed form is a 0/0 in floating point; its Taylor expansion is used instead.
FDA_GUARD = 1e-3


def fda(x: np.ndarray, n: int = 9, omega: float = 0.1, clip: float | None = None) -> np.ndarray:
    """Eq. 10 in closed form (SEMANTICS 2): (4 omega / pi) sin(M t) / (2 sin t), t = omega x, M = 2(n+1).

    sum_{i=0}^{n} cos((2i+1) t) = sin(M t) / (2 sin t). Written as t = k pi + r with |r| <= pi/2, the value
    is (-1)^k sin(M r) / (2 sin r) (M is even): numerator and denominator then come from the same r, so
    they vanish together at t = k pi. Where |M r| < FDA_GUARD that 0/0 is replaced by its limit
    (n+1)(-1)^k and the next Taylor term, (n+1)(-1)^k (1 - (M^2 - 1) r^2 / 6); the term after that is below
    (n+1) (M r)^4 / 120 < 1e-14 (n+1). Float64 throughout.
    """
    xf = f64(x)
    m = 2 * (n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN and inf inputs give NaN, as the series does
        t = omega * xf
        k = np.rint(t / np.pi)
        r = t - k * np.pi
        parity = np.where(np.mod(k, 2) == 1, -1.0, 1.0)  # (-1)^k
        closed = (4 * omega / np.pi) * np.sin(m * r) / (2 * np.sin(r))
        limit = fda_peak(n, omega) * (1 - (m * m - 1) / 6 * r ** 2)
        value = parity * np.where(np.abs(m * r) < FDA_GUARD, limit, closed)
    return as_dtype_of(_clip_mask(x, value, clip), x)


def fda_peak(n: int, omega: float) -> float:
    """The largest value of |Eq. 10|, (4 omega / pi)(n+1) (its value at x = 0), used to scale tolerances (SEMANTICS 9)."""
    return 4.0 * omega / np.pi * (n + 1)


_FDA_DEFAULTS = {"n": 9, "omega": 0.1, "clip": None}


# Antiderivatives (float64) and peaks of the built-in surrogates, for the conformance suite (SEMANTICS 9).

def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _approx_sign_antiderivative(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) <= 1, 2 * x - x * np.abs(x), np.sign(x))


def _sign_swish_antiderivative(x: np.ndarray, beta: float = 5.0) -> np.ndarray:
    s = _sigmoid(beta * x)
    return 2 * s * (1 + beta * x * (1 - s)) - 1


def _fda_antiderivative(x: np.ndarray, n: int = 9, omega: float = 0.1, clip: float | None = None) -> np.ndarray:
    """s_n of Eq. 9, constant beyond the clip (its derivative is Eq. 10 times the clip mask)."""
    return fourier_series(x if clip is None else np.clip(x, -clip, clip), n=n, omega=omega)


def _beta_peak(params: dict) -> float:
    return float(params["beta"])


def _fda_registry_peak(params: dict) -> float:
    return fda_peak(int(params["n"]), float(params["omega"]))


register_estimator("ste", ste, doc="straight-through: 1", peak=1.0, antiderivative=lambda x: x.copy())
register_estimator("clipped_ste", clipped_ste, doc="1 where |x| <= 1", peak=1.0,
                   antiderivative=lambda x: np.clip(x, -1.0, 1.0))
register_estimator("approx_sign", approx_sign, doc="Bi-Real: 2 - 2|x| where |x| <= 1", peak=2.0,
                   antiderivative=_approx_sign_antiderivative)
register_estimator("sign_swish", sign_swish, {"beta": 5.0}, _check_beta, doc="BNN+ SignSwish", peak=_beta_peak,
                   antiderivative=_sign_swish_antiderivative)
register_estimator("tanh", tanh, {"beta": 2.0}, _check_beta, doc="DSQ / IR-Net: beta (1 - tanh^2)",
                   peak=_beta_peak, antiderivative=lambda x, beta=2.0: np.tanh(beta * x))
register_estimator("fda", fda, _FDA_DEFAULTS, _check_fda, doc="FDA Eq. 10, closed form", peak=_fda_registry_peak,
                   antiderivative=_fda_antiderivative)
register_estimator("fda_series", fda_series, _FDA_DEFAULTS, _check_fda, doc="FDA Eq. 10, literal series",
                   peak=_fda_registry_peak, antiderivative=_fda_antiderivative)
