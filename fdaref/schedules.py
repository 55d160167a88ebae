"""Per-epoch schedules (SEMANTICS 6) and the cosine learning rate."""
from __future__ import annotations

import math

from ._validate import check_int, check_positive, check_real


def _check_epoch(epoch: int, epochs: int) -> None:
    check_int(epochs, "epochs", minimum=1)
    check_int(epoch, "epoch", minimum=0)
    if epoch >= epochs:
        raise ValueError(f"epoch: expected 0 <= epoch < epochs={epochs}, got {epoch}")


def n_linear(epoch: int, epochs: int, n_start: int = 9, n_end: int = 18) -> int:
    """SEMANTICS 6 (Setting 3): n_e = n_s + floor((n_p - n_s) e / (E - 1)); reaches n_p at the last epoch."""
    _check_epoch(epoch, epochs)
    check_int(n_start, "n_start", minimum=0)
    check_int(n_end, "n_end", minimum=0)
    if epochs == 1:
        return n_end
    return n_start + ((n_end - n_start) * epoch) // (epochs - 1)


def n_bibench(epoch: int, epochs: int, n_start: int = 9, n_span: int = 9) -> int:
    """BiBench's n_e = 9 + floor(9 e / E): 9 .. 17, never 18 (preset ``bibench``)."""
    _check_epoch(epoch, epochs)
    return n_start + (n_span * epoch) // epochs


def alpha_cosine(epoch: int, epochs: int, alpha0: float = 0.1) -> float:
    """SEMANTICS 6: alpha_e = (alpha_0 / 2)(1 + cos(pi (e + 1) / E)); exactly 0 at the last epoch."""
    _check_epoch(epoch, epochs)
    check_real(alpha0, "alpha0")
    if epoch == epochs - 1:
        return 0.0  # cos(pi) is -1 only up to rounding; SEMANTICS 6 says 0
    return alpha0 / 2 * (1 + math.cos(math.pi * (epoch + 1) / epochs))


def cosine_lr(step: int, total_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    """Cosine annealing from ``base_lr`` at step 0 to ``min_lr`` at ``total_steps``."""
    check_int(total_steps, "total_steps", minimum=1)
    check_int(step, "step", minimum=0)
    check_positive(base_lr, "base_lr")
    progress = min(step, total_steps) / total_steps
    return min_lr + (base_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
