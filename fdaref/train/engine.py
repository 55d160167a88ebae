"""Step engines: how the one Trainer (:mod:`.loop`) computes a training step.

The Trainer owns the run (data order, learning rate per step, schedules, checkpoints, metrics); an engine
owns the model, the optimizer and the arithmetic. Two kinds:

- :class:`FdarefEngine` (``--engine fdaref``): fdaref's autodiff engine over any backend's op table, the
  reference semantics (SEMANTICS 1-8) on every backend.
- a backend's own engine, offered through an optional ``training_engine`` attribute of its op table (found
  with getattr: fdaref never imports a backend), e.g. torch autograd through fdaref's torch modules.

Every engine keeps the step statistics (loss sum, correct, count) where it computes, so that a step needs
no host round trip; :meth:`StepEngine.read_stats` is the one synchronisation, done once per epoch or every
``sync_every`` steps. State goes in and out in the reference format (fdaref parameter names, host numpy
arrays; the optimizer state of :mod:`fdaref.optim`), so checkpoints of every engine load into the
reference models, ``fdaref evaluate`` and ``fdaref export``.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Protocol

import numpy as np

from ..autodiff import Tensor
from ..data import BatchLoader
from ..functions import cross_entropy
from ..nn import Module, set_schedule
from ..optim import Optimizer
from .evaluation import EvalResult, evaluate


class StepEngine(Protocol):
    """What the Trainer asks of an engine. Batches come from :meth:`batches` (the engine's own form: host
    arrays, device tensors) and go only into :meth:`train_step`."""

    name: str
    sync_every: int        # steps between stat reads that cost nothing extra (1 on the host)

    def batches(self, loader: BatchLoader, epoch: int, start_batch: int) -> Iterator[tuple[Any, Any]]:
        """Epoch ``epoch`` of ``loader`` from ``start_batch`` on, exactly the images and order of
        ``loader.epoch(epoch, start_batch)`` (the seeded order and augmentation of fdaref.data.loader)."""

    def set_schedule(self, epoch: int, epochs: int) -> dict[str, Any]:
        """SEMANTICS 6 n_e and alpha_e in every binary layer; returns {"n": ..., "alpha": ...} for logging."""

    def reset_stats(self, loss_sum: float, correct: int, seen: int) -> None:
        """Start the accumulators at these values (a resumed epoch continues its sums in the same order)."""

    def train_step(self, x: Any, y: Any, lr: float) -> None:
        """One optimizer step at learning rate ``lr``; adds loss * batch, correct, batch to the accumulators."""

    def read_stats(self) -> tuple[float, int, int]:
        """(loss sum, correct, seen) of the accumulators, on the host (one synchronisation)."""

    @property
    def last_lr(self) -> float:
        """The learning rate the last step actually used."""

    def all_finite(self) -> bool:
        """Whether every parameter, buffer and the accumulated loss is finite (one synchronisation)."""

    def evaluate(self, loader: BatchLoader) -> EvalResult:
        """Eval-mode loss, accuracy and confusion matrix over ``loader``; the engine is back in training mode."""

    def model_state(self) -> dict[str, np.ndarray]:
        """The model's parameters and buffers as host arrays under the reference model's names."""

    def load_model_state(self, state: dict[str, np.ndarray]) -> None:
        ...

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's state in the format of :meth:`fdaref.optim.Optimizer.state_dict`."""

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        ...

    def reference_model(self) -> Module:
        """A reference (fdaref.nn) model holding the engine's current weights."""


class FdarefEngine:
    """fdaref's autodiff engine over the op table ``ops`` on ``device``: the reference computation.

    The accumulators are host numbers here (the engine reads the loss every step anyway); a non-finite loss
    skips the update and poisons the loss sum, which the Trainer's next read sees.
    """

    name = "fdaref"
    sync_every = 1

    def __init__(self, model: Module, optimizer: Optimizer, ops: Any, device: str, label_smoothing: float) -> None:
        self.model, self.optimizer, self.ops, self.device = model, optimizer, ops, device
        self.label_smoothing = label_smoothing
        self.reset_stats(0.0, 0, 0)

    def batches(self, loader: BatchLoader, epoch: int, start_batch: int) -> Iterator[tuple[Any, Any]]:
        return loader.epoch(epoch, start_batch=start_batch)

    def set_schedule(self, epoch: int, epochs: int) -> dict[str, Any]:
        return set_schedule(self.model, epoch, epochs)

    def reset_stats(self, loss_sum: float, correct: int, seen: int) -> None:
        self._loss_sum, self._correct, self._seen = float(loss_sum), int(correct), int(seen)

    def train_step(self, x: np.ndarray, y: np.ndarray, lr: float) -> None:
        ops, dev = self.ops, self.device
        self.optimizer.zero_grad()
        logits = self.model(Tensor.from_numpy(x, ops, dev))
        loss = cross_entropy(logits, ops.from_numpy(y, dev), label_smoothing=self.label_smoothing)
        loss_value = float(loss.numpy())
        self._loss_sum += loss_value * len(y)
        self._seen += len(y)
        if not math.isfinite(loss_value):
            return
        loss.backward()
        self.optimizer.lr = lr
        self.optimizer.step()
        self._correct += int((np.argmax(logits.numpy(), axis=1) == y).sum())

    def read_stats(self) -> tuple[float, int, int]:
        return self._loss_sum, self._correct, self._seen

    @property
    def last_lr(self) -> float:
        return self.optimizer.lr

    def all_finite(self) -> bool:
        if not math.isfinite(self._loss_sum):
            return False
        return all(bool(np.isfinite(t.numpy()).all()) for t in self.model._named_state().values())

    def evaluate(self, loader: BatchLoader) -> EvalResult:
        result = evaluate(self.model, loader, self.ops, self.device)
        self.model.train()
        return result

    def model_state(self) -> dict[str, np.ndarray]:
        return self.model.state_dict()

    def load_model_state(self, state: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict(state)

    def optimizer_state(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)

    def reference_model(self) -> Module:
        return self.model
