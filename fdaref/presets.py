"""Named, complete sets of binarization options (SEMANTICS 7) and their per-epoch schedules (SEMANTICS 6)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ._validate import check_choice, check_int, check_positive, check_real
from .estimators import get_estimator
from .noise import ETAS
from .scale import SCALE_MODES
from .schedules import alpha_cosine, n_bibench, n_linear
from .binarize import ZERO_CONVENTIONS

N_SCHEDULES = ("linear", "bibench", "fixed")
PAD_VALUES = (0.0, -1.0, 1.0)


@dataclass(frozen=True)
class BinaryOptions:
    """Every choice SEMANTICS 1-7 leaves open, in one place. ``n`` only matters for the fda estimators."""
    zero: float = -1.0               # sign(0), SEMANTICS 1
    estimator: str = "fda"           # SEMANTICS 2 registry name
    omega: float = 0.1
    clip: float | None = None
    n_schedule: str = "linear"       # SEMANTICS 6: linear 9 -> 18 inclusive; bibench 9 + floor(9e/E); fixed n_start
    n_start: int = 9
    n_end: int = 18
    noise: bool = True               # noise adaptation module on weights and activations (SEMANTICS 3)
    k: int = 64
    eta: str = "sin"
    a: float = 0.1
    alpha0: float = 0.1              # alpha cosine alpha0 -> 0 (SEMANTICS 6)
    scale: str = "channel"           # SEMANTICS 5
    pad_value: float = 0.0           # padding value of the binarized input (SEMANTICS 5)
    estimator_params: tuple[tuple[str, Any], ...] = ()  # e.g. (("beta", 5.0),) for sign_swish / tanh

    def __post_init__(self) -> None:
        check_choice(self.zero, "zero", ZERO_CONVENTIONS)
        get_estimator(self.estimator)
        check_positive(self.omega, "omega")
        if self.clip is not None:
            check_positive(self.clip, "clip")
        check_choice(self.n_schedule, "n_schedule", N_SCHEDULES)
        check_int(self.n_start, "n_start", minimum=0)
        check_int(self.n_end, "n_end", minimum=0)
        check_int(self.k, "k", minimum=1)
        check_choice(self.eta, "eta", ETAS)
        check_real(self.a, "a")
        check_real(self.alpha0, "alpha0")
        check_choice(self.scale, "scale", SCALE_MODES)
        check_choice(self.pad_value, "pad_value", PAD_VALUES)
        self.params_at(0, 1)  # validates estimator_params against the estimator

    @property
    def uses_n(self) -> bool:
        return self.estimator in ("fda", "fda_series")

    def n_at(self, epoch: int, epochs: int) -> int:
        if self.n_schedule == "linear":
            return n_linear(epoch, epochs, self.n_start, self.n_end)
        if self.n_schedule == "bibench":
            return n_bibench(epoch, epochs, self.n_start, self.n_end - self.n_start)
        return self.n_start

    def alpha_at(self, epoch: int, epochs: int) -> float:
        return alpha_cosine(epoch, epochs, self.alpha0) if self.noise else 0.0

    def params_at(self, epoch: int, epochs: int) -> dict[str, Any]:
        """The estimator's parameters at ``epoch`` (n from the schedule for fda)."""
        params = dict(self.estimator_params)
        if self.uses_n:
            params.update(n=self.n_at(epoch, epochs), omega=self.omega, clip=self.clip)
        return get_estimator(self.estimator).resolve(params)

    def with_(self, **changes: Any) -> "BinaryOptions":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, BinaryOptions] = {
    "paper": BinaryOptions(),
    "bibench": BinaryOptions(zero=0.0, clip=1.0, n_schedule="bibench", n_start=9, n_end=18),
    "release": BinaryOptions(zero=0.0, estimator="ste", noise=False, scale="layer"),
}


def get_preset(name: str) -> BinaryOptions:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
