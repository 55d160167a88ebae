"""Build the pieces of a run from its config: backend, model, optimizer and the step engine."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend_loader import BackendUnavailable, load_backend
from ..data import DatasetInfo
from ..errors import InputError
from ..nn import Module, resnet20, tiny, vgg_small
from ..optim import SGD, Adam, Optimizer
from .config import TrainConfig

if TYPE_CHECKING:
    from .engine import StepEngine

_MODELS = {"resnet20": resnet20, "vgg_small": vgg_small, "tiny": tiny}
FDAREF_ENGINE = "fdaref"


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
    kwargs: dict[str, Any] = {"image_size": info.height} if cfg.model == "vgg_small" else {}
    return factory(info.channels, info.num_classes, options=cfg.options(), seed=cfg.seed,
                   dtype=np.dtype(cfg.dtype).type, **kwargs)


def build_optimizer(cfg: TrainConfig, model: Module) -> Optimizer:
    """SGD (momentum, weight decay) or Adam over every parameter, noise modules included (SEMANTICS 3)."""
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer: expected 'sgd' or 'adam', got {cfg.optimizer!r}")


def engine_names(ops: Any) -> tuple[str, ...]:
    """The engines a run on ``ops`` can use: the backend's own (its op table's optional ``training_engines``
    mapping), then the fdaref engine, which every backend has."""
    own = tuple(getattr(ops, "training_engines", {}) or {})
    return own + (FDAREF_ENGINE,)


def default_engine(ops: Any, total_steps: int | None = None) -> str:
    """The fastest engine for a run of ``total_steps`` optimizer steps: the backend's choice (its op table's
    optional ``default_engine(total_steps)``, e.g. a compiled engine only where the run is long enough to
    repay the compile), else its first own engine, else the fdaref engine."""
    choose = getattr(ops, "default_engine", None)
    return choose(total_steps) if callable(choose) else engine_names(ops)[0]


def build_engine(cfg: TrainConfig, info: DatasetInfo, ops: Any, total_steps: int | None = None) -> "StepEngine":
    """The step engine of ``cfg.engine`` (None: :func:`default_engine`) with the model of ``cfg`` initialised
    from the reference model's seeded weights, so every engine starts from the same parameters."""
    from .engine import FdarefEngine  # here: the engine evaluates through .evaluation, which imports us
    names = engine_names(ops)
    name = default_engine(ops, total_steps) if cfg.engine is None else cfg.engine
    if name not in names:
        raise InputError(f"engine: backend {cfg.backend!r} offers {', '.join(names)}, not {name!r}")
    model = build_model(cfg, info)
    if name == FDAREF_ENGINE:
        model.to(ops, cfg.device)
        model.train()
        return FdarefEngine(model, build_optimizer(cfg, model), ops, cfg.device, cfg.label_smoothing)
    return ops.training_engines[name](cfg, model, info)
