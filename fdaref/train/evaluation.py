"""Evaluation: loss, accuracy and confusion matrix of a model on a data set, and loading a trained model
back from a checkpoint."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..autodiff import Tensor, no_grad

from ..functions import cross_entropy
from ..data import BatchLoader, DatasetInfo, load_splits
from ..data.dataset import Splits
from ..nn import Module
from .checkpoint import check_model_state, check_normalisation, load_run_checkpoint
from .config import TrainConfig
from .factory import build_backend, build_model
from .metrics import accuracy_of, confusion_matrix


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    confusion: np.ndarray  # rows: true class, columns: predicted
    count: int


def evaluate(model: Module, loader: BatchLoader, ops: Any, device: str = "cpu") -> EvalResult:
    """Eval-mode pass over ``loader`` (pure sign, running BN statistics, no graph)."""
    was_training = model.training
    model.eval()
    n_classes = loader.data.info.num_classes
    labels_all, preds_all = [], []
    loss_sum = 0.0
    try:
        with no_grad():
            for x, y in loader.epoch(0):
                logits = model(Tensor.from_numpy(x, ops, device))
                loss = cross_entropy(logits, ops.from_numpy(y, device))
                loss_sum += float(loss.numpy()) * len(y)
                preds_all.append(np.argmax(logits.numpy(), axis=1))
                labels_all.append(y)
    finally:
        model.train(was_training)
    cm = confusion_matrix(np.concatenate(labels_all), np.concatenate(preds_all), n_classes)
    count = int(cm.sum())
    return EvalResult(loss_sum / count, accuracy_of(cm), cm, count)


@dataclass
class LoadedRun:
    """A trained model rebuilt from a checkpoint, with the config and normalisation it was trained with."""
    config: TrainConfig
    model: Module
    ops: Any
    info: DatasetInfo
    mean: np.ndarray
    std: np.ndarray
    checkpoint: dict[str, Any]


def load_trained(path: str | os.PathLike[str], *, backend: str | None = None, device: str | None = None
                 ) -> LoadedRun:
    """Rebuild the model stored in checkpoint ``path`` on ``backend``/``device`` (default: as trained)."""
    ck = load_run_checkpoint(path)
    cfg = TrainConfig.from_dict(ck["config"])
    if backend is not None:
        cfg.backend = backend
    if device is not None:
        cfg.device = device
    cfg = cfg.resolved()
    from ..data import dataset_info
    info = dataset_info(cfg.dataset)
    mean, std = check_normalisation(ck["data"]["mean"], ck["data"]["std"], f"{path}: data", channels=info.channels)
    model = build_model(cfg, info)
    check_model_state(model.state_dict(), ck["model"], f"{path}: model")   # before the backend starts
    ops = build_backend(cfg)
    model = model.to(ops, cfg.device)
    model.load_state_dict(ck["model"])
    model.eval()
    return LoadedRun(cfg, model, ops, info, mean, std, ck)


def test_loader(run: LoadedRun, *, data_dir: str | None = None, batch_size: int = 256,
                test_subset: int | None = None) -> BatchLoader:
    """The test set of the run's data set, normalised with the statistics it was trained with."""
    cfg = run.config
    splits: Splits = load_splits(cfg.dataset, data_dir if data_dir is not None else cfg.data_dir, seed=cfg.seed,
                                 subset=1, val_fraction=0.0, test_subset=test_subset)
    return BatchLoader(splits.test, batch_size, run.mean, run.std, dtype=np.dtype(cfg.dtype).type)


def describe_position(checkpoint: dict[str, Any], epochs: int) -> str:
    """Where the run of ``checkpoint`` stood when it was saved: "after epoch 2/4", or "during epoch 2/4
    (after batch 5/9)" for a checkpoint written by an interrupted run."""
    pos = checkpoint.get("position", {})
    epoch, batch = int(pos.get("epoch", 0)), int(pos.get("batch", 0))
    if batch == 0:
        return f"after epoch {epoch}/{epochs}" if epoch else "before any training"
    per = pos.get("steps_per_epoch")
    return f"during epoch {epoch + 1}/{epochs} (after batch {batch}{f'/{per}' if per else ''})"
