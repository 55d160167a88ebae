"""Gradient checking: an analytic vector-Jacobian product against central finite differences (SEMANTICS 9).

For a function f of several arrays, a random upstream gradient g (shape of f's output) and a random
direction v = (v_1, ..., v_k) (one array per checked input), the chain rule says

    < g, (f(x + eps v) - f(x - eps v)) / (2 eps) >  ==  sum_i < vjp(g)_i, v_i >   (up to O(eps^2)).

Comparing two scalars per direction checks every input's gradient at once, at the cost of two forward
calls, instead of two calls per element. Everything is float64: the finite difference loses about half
the digits, so float32 could not tell a bug from rounding.

Example::

    err = check_vjp(lambda x, w: x @ w.T, lambda g, x, w: (g @ w, g.T @ x),
                    {"x": x, "w": w}, rng)
    assert_vjp(...)  # the same, raising AssertionError above ``rtol``
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np

Grads = Union[Mapping[str, Optional[np.ndarray]], Sequence[Optional[np.ndarray]], np.ndarray]

__all__ = ["check_vjp", "assert_vjp"]


def _as_dict(grads: Grads, names: Sequence[str]) -> dict[str, Optional[np.ndarray]]:
    """The vjp's result keyed by input name (a mapping, a tuple in input order, or one array)."""
    if isinstance(grads, np.ndarray):
        grads = (grads,)
    if isinstance(grads, Mapping):
        return dict(grads)
    grads = tuple(grads)
    if len(grads) < len(names):
        raise ValueError(f"check_vjp: the vjp returned {len(grads)} gradients for the {len(names)} inputs "
                         f"{list(names)}")
    return dict(zip(names, grads))


def check_vjp(forward: Callable[..., np.ndarray], vjp: Callable[..., Grads],
              inputs: Mapping[str, np.ndarray], rng: np.random.Generator, *, eps: float = 1e-6,
              wrt: Optional[Sequence[str]] = None, n_dirs: int = 3) -> float:
    """The worst relative error of the analytic VJP against central differences over ``n_dirs`` directions.

    ``forward(**inputs)`` returns one array (or scalar); ``vjp(g, **inputs)`` returns the gradients of
    <g, forward(**inputs)> w.r.t. the inputs: a mapping by name, or a sequence in the order of ``inputs``
    (extra trailing entries, e.g. a bias gradient the caller does not check, are ignored). ``wrt`` names
    the inputs to perturb (default: every float input); the others (labels, running statistics, ...) are
    held fixed. Perturbed inputs must be float64. Error per direction: |fd - an| / max(|fd|, |an|, 1e-12).
    """
    names = list(inputs)
    wrt = [n for n in names if np.asarray(inputs[n]).dtype.kind == "f"] if wrt is None else list(wrt)
    for n in wrt:
        if n not in inputs:
            raise KeyError(f"check_vjp: wrt names {n!r}, which is not among the inputs {names}")
        if np.asarray(inputs[n]).dtype != np.float64:
            raise TypeError(f"check_vjp: input {n!r} must be float64 for finite differences, "
                            f"got {np.asarray(inputs[n]).dtype}")
    base = {n: np.array(v, copy=True) for n, v in inputs.items()}
    y = np.asarray(forward(**base), dtype=np.float64)
    worst = 0.0
    for _ in range(n_dirs):
        g = rng.standard_normal(y.shape)
        grads = _as_dict(vjp(g if y.ndim else np.asarray(g), **{k: v.copy() for k, v in base.items()}), names)
        dirs = {n: rng.standard_normal(base[n].shape) for n in wrt}
        analytic = 0.0
        for n in wrt:
            gn = grads.get(n)
            if gn is None:
                raise ValueError(f"check_vjp: the vjp returned no gradient for input {n!r}")
            if np.shape(gn) != base[n].shape:
                raise ValueError(f"check_vjp: gradient of {n!r} has shape {np.shape(gn)}, "
                                 f"expected {base[n].shape}")
            analytic += float(np.sum(np.asarray(gn, dtype=np.float64) * dirs[n]))
        plus = {**base, **{n: base[n] + eps * dirs[n] for n in wrt}}
        minus = {**base, **{n: base[n] - eps * dirs[n] for n in wrt}}
        diff = (np.asarray(forward(**plus), np.float64) - np.asarray(forward(**minus), np.float64)) / (2 * eps)
        numeric = float(np.sum(g * diff))
        err = abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-12)
        worst = max(worst, err)
    return worst


def assert_vjp(forward: Callable[..., np.ndarray], vjp: Callable[..., Grads],
               inputs: Mapping[str, np.ndarray], rng: np.random.Generator, *, eps: float = 1e-6,
               wrt: Optional[Sequence[str]] = None, n_dirs: int = 3, rtol: float = 1e-6) -> float:
    """:func:`check_vjp`, raising AssertionError when the relative error exceeds ``rtol``; returns it."""
    err = check_vjp(forward, vjp, inputs, rng, eps=eps, wrt=wrt, n_dirs=n_dirs)
    if not err <= rtol:
        raise AssertionError(f"vjp does not match central finite differences: relative error {err:.3e} "
                             f"> rtol {rtol:.1e} (eps {eps}, inputs {list(inputs)})")
    return err
