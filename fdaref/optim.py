"""Optimizers (SGD with momentum / Nesterov / weight decay, Adam) and a cosine LR schedule.

Updates use only Python array operators on ``param.data`` / ``param.grad`` (out of place: ``p.data =
p.data - lr * d``), so they run unchanged on every backend. Gradients are never modified in place (the
engine may share one gradient array between several tensors).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

import numpy as np

from .autodiff import Tensor
from .schedules import cosine_lr


class Optimizer:
    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        bad = [i for i, p in enumerate(self.params) if not (isinstance(p, Tensor) and p.requires_grad)]
        if bad:
            raise TypeError(f"{type(self).__name__}: parameters at positions {bad} are not Tensors that "
                            "require grad")
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {lr}")
        self.lr = float(lr)
        self.steps = 0
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self.steps += 1
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                p.data = self._update(p.data, p.grad, state)

    def _update(self, w: Any, g: Any, state: dict[str, Any]) -> Any:
        raise NotImplementedError

    # -- resume ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """lr, step count and per-parameter state (host numpy arrays), in parameter order."""
        return {"lr": self.lr, "steps": self.steps,
                "state": [{k: p.ops.to_numpy(v).copy() for k, v in s.items()}
                          for p, s in zip(self.params, self.state)]}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if len(sd["state"]) != len(self.params):
            raise ValueError(f"{type(self).__name__}.load_state_dict: checkpoint has state for "
                             f"{len(sd['state'])} parameters, this optimizer has {len(self.params)}")
        for i, (p, s) in enumerate(zip(self.params, sd["state"])):
            for k, v in s.items():
                if tuple(np.shape(v)) != p.shape:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: state {k!r} of parameter {i} "
                                     f"has shape {np.shape(v)}, the parameter {p.shape}")
        self.lr, self.steps = float(sd["lr"]), int(sd["steps"])
        self.state = [{k: p.ops.from_numpy(np.asarray(v, dtype=p.numpy().dtype), p.device) for k, v in s.items()}
                      for p, s in zip(self.params, sd["state"])]


class SGD(Optimizer):
    """PyTorch-convention SGD: d = g + wd w; b = mu b + d (b = d at the first step);
    d = d + mu b (Nesterov) or b; w = w - lr d."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    def _update(self, w, g, state):
        d = g + self.weight_decay * w if self.weight_decay else g
        if self.momentum:
            buf = state.get("momentum")
            buf = d if buf is None else self.momentum * buf + d
            state["momentum"] = buf
            d = d + self.momentum * buf if self.nesterov else buf
        return w - self.lr * d


class Adam(Optimizer):
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient:
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w = w - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = (float(betas[0]), float(betas[1])), float(eps), float(weight_decay)

    def _update(self, w, g, state):
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * w
        m = (1 - b1) * g if "m" not in state else b1 * state["m"] + (1 - b1) * g
        v = (1 - b2) * (g * g) if "v" not in state else b2 * state["v"] + (1 - b2) * (g * g)
        state["m"], state["v"] = m, v
        m_hat = m / (1 - b1 ** self.steps)
        v_hat = v / (1 - b2 ** self.steps)
        return w - self.lr * m_hat / (v_hat ** 0.5 + self.eps)


class CosineLR:
    """Sets ``optimizer.lr`` to cosine_lr(step, total_steps, base_lr, min_lr) (fdaref.schedules).

    Call ``step()`` after each optimizer step (per iteration or per epoch: ``total_steps`` counts the same)."""

    def __init__(self, optimizer: Optimizer, total_steps: int, min_lr: float = 0.0,
                 base_lr: Optional[float] = None):
        self.optimizer, self.total_steps, self.min_lr = optimizer, int(total_steps), float(min_lr)
        self.base_lr = float(optimizer.lr if base_lr is None else base_lr)
        self.last_step = 0
        optimizer.lr = cosine_lr(0, self.total_steps, self.base_lr, self.min_lr)

    def step(self) -> float:
        self.last_step += 1
        self.optimizer.lr = cosine_lr(self.last_step, self.total_steps, self.base_lr, self.min_lr)
        return self.optimizer.lr

    def state_dict(self) -> dict[str, Any]:
        return {"total_steps": self.total_steps, "min_lr": self.min_lr, "base_lr": self.base_lr,
                "last_step": self.last_step}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.total_steps, self.min_lr = int(sd["total_steps"]), float(sd["min_lr"])
        self.base_lr, self.last_step = float(sd["base_lr"]), int(sd["last_step"])
        self.optimizer.lr = cosine_lr(self.last_step, self.total_steps, self.base_lr, self.min_lr)


__all__ = ["Optimizer", "SGD", "Adam", "CosineLR"]
