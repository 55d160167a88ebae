"""Build the pieces of a run from its config: backend, model and optimizer."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend_loader import BackendUnavailable, load_backend
from ..data import DatasetInfo
from ..nn import Module, resnet20, tiny, vgg_small
from ..optim import SGD, Adam, Optimizer
from .config import TrainConfig

_MODELS = {"resnet20": resnet20, "vgg_small": vgg_small, "tiny": tiny}


def build_backend(cfg: TrainConfig) -> Any:
    """The op table named by ``cfg.backend``, checked to run on ``cfg.device`` in ``cfg.dtype``."""
    ops = load_backend(cfg.backend)
    devices = tuple(getattr(ops, "devices", ("cpu",)))
    if cfg.device not in devices:
        raise BackendUnavailable(f"backend {cfg.backend!r} runs on {', '.join(devices)}, not on {cfg.device!r} "
                         "(pick another --device or --backend)")
    dtypes = tuple(getattr(ops, "dtypes", (cfg.dtype,)))
    if cfg.dtype not in dtypes:
        raise BackendUnavailable(f"backend {cfg.backend!r} computes in {', '.join(dtypes)}, not {cfg.dtype} (use --dtype)")
    return ops


def build_model(cfg: TrainConfig, info: DatasetInfo) -> Module:
    """The model of ``cfg`` for images of ``info`` (on the numpy reference; move it with ``.to``)."""
    try:
        factory = _MODELS[cfg.model]
    except KeyError:
        raise ValueError(f"model: expected one of {', '.join(_MODELS)}, got {cfg.model!r}") from None
    return factory(info.channels, info.num_classes, options=cfg.options(), seed=cfg.seed,
                   dtype=np.dtype(cfg.dtype).type)


def build_optimizer(cfg: TrainConfig, model: Module) -> Optimizer:
    """SGD (momentum, weight decay) or Adam over every parameter, noise modules included (SPEC 3)."""
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer: expected 'sgd' or 'adam', got {cfg.optimizer!r}")
