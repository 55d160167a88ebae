"""Batch normalisation over axis 1 of (B, C) or (B, C, H, W) (SEMANTICS 8: every block's BN), literally,
float64 inside, results in the dtype of ``x``."""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_float_array, check_grad, check_real
from ..precision import as_dtype_of, f64


def _axes(x: np.ndarray) -> tuple[int, ...]:
    """Every axis but the channel axis 1: the statistics of a channel are over these."""
    return (0,) + tuple(range(2, x.ndim))


def _col(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A (C,) vector shaped to broadcast along axis 1 of x."""
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def _check_vec(v: np.ndarray, name: str, x: np.ndarray) -> None:
    check_float_array(v, name, ndim=1)
    if v.dtype != x.dtype:
        raise TypeError(f"{name}: expected the dtype of x ({x.dtype}), got {v.dtype}")
    if v.shape != (x.shape[1],):
        raise ValueError(f"{name}: expected shape ({x.shape[1]},) (the channels of x {x.shape}), got {v.shape}")


def check_batch_norm_args(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                          running_var: np.ndarray, training: bool, momentum: Any, eps: Any) -> tuple[float, float]:
    """Validate the inputs of :func:`batch_norm_forward`; return (momentum, eps)."""
    check_float_array(x, "x", ndim=(2, 4))
    for v, name in ((gamma, "gamma"), (beta, "beta"), (running_mean, "running_mean"), (running_var, "running_var")):
        _check_vec(v, name, x)
    momentum = check_real(momentum, "momentum")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum: expected a number in [0, 1], got {momentum}")
    eps = check_real(eps, "eps")
    if eps <= 0:
        raise ValueError(f"eps: expected a number > 0, got {eps}")
    if training and x.size // x.shape[1] < 2:
        raise ValueError(f"x: batch norm in training needs more than 1 value per channel, got shape {x.shape}")
    return momentum, eps


def check_batch_norm_grad_args(g: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray,
                               invstd: np.ndarray) -> None:
    """Validate the inputs of :func:`batch_norm_backward`."""
    check_float_array(x, "x", ndim=(2, 4))
    check_grad(g, x)
    for v, name in ((gamma, "gamma"), (mean, "mean"), (invstd, "invstd")):
        _check_vec(v, name, x)


def batch_norm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                       running_var: np.ndarray, *, training: bool, momentum: float, eps: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """y = (x - mean) * invstd * gamma + beta, invstd = 1 / sqrt(var + eps), per channel of axis 1.

    x: (B, C) or (B, C, H, W); gamma, beta, running_mean, running_var: (C,); one float dtype.
    Training: mean and the BIASED variance of the batch (over B, H, W); the running statistics update
    as new = (1 - momentum) old + momentum batch with the UNBIASED batch variance (needs > 1 value per
    channel). Eval: mean = running_mean, var = running_var; the running statistics come back unchanged.
    Returns (y, mean (C,), invstd (C,), new_running_mean (C,), new_running_var (C,)); inputs not mutated.
    """
    momentum, eps = check_batch_norm_args(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    xf, axes = f64(x), _axes(x)
    if training:
        count = x.size // x.shape[1]
        mean, var = xf.mean(axis=axes), xf.var(axis=axes)
        new_mean = (1 - momentum) * f64(running_mean) + momentum * mean
        new_var = (1 - momentum) * f64(running_var) + momentum * var * count / (count - 1)
    else:
        mean, var = f64(running_mean), f64(running_var)
        new_mean, new_var = mean, var
    invstd = 1 / np.sqrt(var + eps)
    y = (xf - _col(mean, x)) * _col(invstd, x) * _col(f64(gamma), x) + _col(f64(beta), x)
    return tuple(as_dtype_of(v, x).copy() for v in (y, mean, invstd, new_mean, new_var))  # type: ignore[return-value]


def batch_norm_backward(g: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray, invstd: np.ndarray,
                        *, training: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dgamma, dbeta) of :func:`batch_norm_forward`, given its returned ``mean`` and ``invstd``.

    With xhat = (x - mean) invstd, M values per channel: dbeta = sum g, dgamma = sum g xhat;
    training (mean and invstd depend on x): dx = gamma invstd (g - dbeta / M - xhat dgamma / M);
    eval (they are constants): dx = gamma invstd g. Shapes of x, (C,), (C,).
    """
    check_batch_norm_grad_args(g, x, gamma, mean, invstd)
    gf, axes, m = f64(g), _axes(x), x.size // x.shape[1]
    xhat = (f64(x) - _col(f64(mean), x)) * _col(f64(invstd), x)
    dbeta, dgamma = gf.sum(axis=axes), (gf * xhat).sum(axis=axes)
    scale = _col(f64(gamma) * f64(invstd), x)
    dx = scale * (gf - _col(dbeta, x) / m - xhat * _col(dgamma, x) / m) if training else scale * gf
    return as_dtype_of(dx, x), as_dtype_of(dgamma, x), as_dtype_of(dbeta, x)
