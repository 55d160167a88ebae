"""Batch normalisation over axis 1 of (B, C) or (B, C, H, W), fast (the ``numpy`` backend): channel sums along
the contiguous axis first, the centred input reused as y in place."""
from __future__ import annotations

import numpy as np

from fdaref.functional.norm import check_batch_norm_args, check_batch_norm_grad_args


def _per_channel(x: np.ndarray) -> np.ndarray:
    """The (B, C, P) view of x (B, C) or (B, C, H, W): channel statistics reduce over axes 0 and 2."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel_sum(x3: np.ndarray) -> np.ndarray:
    """(C,) sums of x3 (B, C, P): the contiguous axis first (SIMD), then the batch."""
    return x3.sum(axis=2).sum(axis=0)


def _channel_dot(a3: np.ndarray, b3: np.ndarray) -> np.ndarray:
    """(C,) sums of a3 * b3 over axes 0 and 2, without the product as a temporary."""
    return np.einsum("ncp,ncp->c", a3, b3)


def _col(v: np.ndarray) -> np.ndarray:
    """A (C,) vector as (1, C, 1), to broadcast along the channel axis of a (B, C, P) view."""
    return v.reshape(1, -1, 1)


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
    dt = x.dtype.type
    x3 = _per_channel(x)
    if training:
        count = x3.shape[0] * x3.shape[2]
        mean = _channel_sum(x3) / dt(count)
        xc = x3 - _col(mean)
        var = _channel_dot(xc, xc) / dt(count)  # biased: normalises y
        new_mean = dt(1 - momentum) * running_mean + dt(momentum) * mean
        new_var = dt(1 - momentum) * running_var + dt(momentum) * (var * dt(count / (count - 1)))
    else:
        mean, var = running_mean.copy(), running_var
        xc = x3 - _col(mean)
        new_mean, new_var = running_mean.copy(), running_var.copy()
    invstd = dt(1) / np.sqrt(var + dt(eps))
    xc *= _col(invstd * gamma)  # xc becomes y in place
    xc += _col(beta)
    return xc.reshape(x.shape), mean, invstd, new_mean, new_var


def batch_norm_backward(g: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray, invstd: np.ndarray,
                        *, training: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dgamma, dbeta) of :func:`batch_norm_forward`, given its returned ``mean`` and ``invstd``.

    With xhat = (x - mean) invstd, M values per channel: dbeta = sum g, dgamma = sum g xhat;
    training (mean and invstd depend on x): dx = gamma invstd (g - dbeta / M - xhat dgamma / M);
    eval (they are constants): dx = gamma invstd g. Shapes of x, (C,), (C,).
    """
    check_batch_norm_grad_args(g, x, gamma, mean, invstd)
    x3, g3 = _per_channel(x), _per_channel(g)
    xhat = x3 - _col(mean)
    xhat *= _col(invstd)
    dbeta = _channel_sum(g3)
    dgamma = _channel_dot(g3, xhat)
    scale = gamma * invstd
    dx = g3 * _col(scale)
    if training:
        m = x.dtype.type(x3.shape[0] * x3.shape[2])
        # gamma invstd (g - dbeta / M - xhat dgamma / M), as scale g + (xhat (-scale dgamma / M) - scale dbeta / M)
        xhat *= _col(-scale * dgamma / m)
        xhat -= _col(scale * dbeta / m)
        dx += xhat
    return dx.reshape(x.shape), dgamma, dbeta
