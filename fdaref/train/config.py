"""The complete description of a training run, its defaults per data set, and validation of every field."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..data import dataset_info
from ..errors import InputError
from ..presets import BinaryOptions, get_preset

MODELS = ("resnet20", "vgg_small", "tiny")
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")

# SEMANTICS 8 recipe on CIFAR-10: SGD lr 0.1, momentum 0.9, wd 1e-4, batch 128, 400 epochs, cosine LR, crop + flip.
# Scaled to the other data sets: the (Fashion-)MNIST images are smaller, simpler and 20% more numerous,
# so fewer epochs reach the plateau; scikit-learn's digits has only 1,437 training images, so a smaller
# batch keeps the number of steps per epoch sensible. Adam follows the paper's ImageNet recipe (lr 1e-3, wd 0).
EPOCHS = {"cifar10": 400, "fashion-mnist": 100, "mnist": 50, "digits": 100}
BATCH_SIZE = {"cifar10": 128, "fashion-mnist": 128, "mnist": 128, "digits": 32}
LR = {"sgd": 0.1, "adam": 1e-3}
WEIGHT_DECAY = {"sgd": 1e-4, "adam": 0.0}


class ConfigError(InputError):
    """A training setting is invalid; the message names the field and what it expects."""


@dataclass
class TrainConfig:
    """Every choice of a run; stored in each checkpoint so that a run can be resumed or evaluated."""
    model: str = "resnet20"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    backend: str = "numpy"
    device: str = "cpu"
    dtype: str = "float32"
    engine: str | None = None           # step engine (fdaref.train.engine); None: the backend's fastest
    preset: str = "paper"
    estimator: str | None = None        # overrides the preset's estimator
    noise: bool | None = None           # overrides the preset's noise module switch
    eta: str | None = None              # overrides the preset's eta (none / linear / sin)
    scale: str | None = None            # overrides the preset's weight scale (channel / layer / none)
    epochs: int | None = None           # None: the data set's default
    batch_size: int | None = None       # None: the data set's default
    lr: float | None = None             # None: the optimizer's default
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float | None = None   # None: the optimizer's default
    label_smoothing: float = 0.0
    seed: int = 0
    subset: int | None = None
    test_subset: int | None = None
    val_fraction: float = 0.1
    augment: bool = True
    eval_every: int = 1                 # validation / test evaluation every k epochs (and always at the end)
    out: str = "runs/default"
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> "TrainConfig":
        """A copy with every None default filled in from the data set and the optimizer; validated."""
        c = TrainConfig(**{f.name: getattr(self, f.name) for f in fields(self)})
        if c.model not in MODELS:
            raise ConfigError(f"model: expected one of {', '.join(MODELS)}, got {c.model!r}")
        try:
            dataset_info(c.dataset)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"dataset: {exc.args[0] if exc.args else exc}") from exc
        if c.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {c.optimizer!r}")
        if c.dtype not in DTYPES:
            raise ConfigError(f"dtype: expected one of {', '.join(DTYPES)}, got {c.dtype!r}")
        if c.device not in ("cpu", "cuda"):
            raise ConfigError(f"device: expected 'cpu' or 'cuda', got {c.device!r}")
        c.epochs = EPOCHS[c.dataset] if c.epochs is None else c.epochs
        c.batch_size = BATCH_SIZE[c.dataset] if c.batch_size is None else c.batch_size
        c.lr = LR[c.optimizer] if c.lr is None else c.lr
        if c.weight_decay is None:
            c.weight_decay = WEIGHT_DECAY[c.optimizer]
        _int(c.epochs, "epochs", 1)
        _int(c.batch_size, "batch_size", 1)
        _int(c.seed, "seed", 0)
        _int(c.eval_every, "eval_every", 1)
        if c.subset is not None:
            _int(c.subset, "subset", 1)
        if c.test_subset is not None:
            _int(c.test_subset, "test_subset", 1)
        _number(c.lr, "lr", positive=True)
        _number(c.momentum, "momentum")
        _number(c.weight_decay, "weight_decay")
        _number(c.label_smoothing, "label_smoothing")
        if not 0 <= c.momentum < 1:
            raise ConfigError(f"momentum: expected a number in [0, 1), got {c.momentum}")
        if c.weight_decay < 0:
            raise ConfigError(f"weight_decay: expected a number >= 0, got {c.weight_decay}")
        if not 0 <= c.label_smoothing < 1:
            raise ConfigError(f"label_smoothing: expected a number in [0, 1), got {c.label_smoothing}")
        if not 0 <= c.val_fraction < 1:
            raise ConfigError(f"val_fraction: expected a number in [0, 1), got {c.val_fraction}")
        try:
            c.options()  # validates the preset and the overrides
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"binarization options: {exc.args[0] if exc.args else exc}") from exc
        return c

    def options(self) -> BinaryOptions:
        """The preset with this run's overrides (estimator, noise, eta, scale)."""
        opts = get_preset(self.preset)
        changes: dict[str, Any] = {}
        if self.estimator is not None:
            changes["estimator"] = self.estimator
        if self.noise is not None:
            changes["noise"] = self.noise
        if self.eta is not None:
            changes["eta"] = self.eta
        if self.scale is not None:
            changes["scale"] = self.scale
        return opts.with_(**changes) if changes else opts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"config: unknown fields {unknown} (expected some of {sorted(known)})")
        return cls(**d)


def _int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def _number(value: Any, name: str, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"{name}: expected a number > 0, got {value!r}")
