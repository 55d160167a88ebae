"""What a backend may decline: the one vocabulary of option values the conformance suite draws.

A backend (or a framework adapter, issue 13) may define::

    def supports(self, op: str, option: str, value: Any) -> Optional[str]:
        '''None when ``op`` implements ``value`` of ``option``, else the reason why not.'''

``option`` is one of the names in :data:`OPTIONS` below: the keyword argument of the op that carries the
choice (``zero``, ``estimator``, ``eta_kind``, ``layout``, ``mode`` (the weight scale), ``pad_value``), plus
``eval_noise``, a semantic choice without a keyword: ``False`` is SEMANTICS 4's eval (z = sign(t), the module is
not evaluated); a backend whose eval adds alpha * e(t) too (BiBench) declines ``False``.

The suite then draws, per op, only the values the backend supports, and lists every declined value with its
reason in the report (a declined value is not a pass, and not a failure). A backend without ``supports``
is asked nothing: every value is drawn (the behaviour before capabilities existed). ``refuses(op, device,
dtype)`` stays the way to decline a whole op.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional

_NOISE_OPS = ("noise_forward", "noise_backward", "quantize_forward", "quantize_backward")


@dataclass(frozen=True)
class Option:
    """One choice an op leaves open: its name (the op keyword), the ops it applies to, and the
    :class:`~.strategies.OptionSpace` attribute that holds the values the suite draws (per op if they differ)."""

    name: str
    ops: tuple[str, ...]
    space_field: str
    doc: str
    field_per_op: Mapping[str, str] = field(default_factory=dict)
    required: bool = True  # False: declining every value removes some cases, not the op

    def field_for(self, op: str) -> str:
        return self.field_per_op.get(op, self.space_field)


OPTIONS: tuple[Option, ...] = (
    Option("zero", ("sign", "quantize_forward", "pack_signs"), "zeros",
           "sign(0): -1 (paper), 0 (numpy / torch / BiBench) or +1 (larq); pack_signs takes -1 or +1 (SEMANTICS 1, 9)",
           {"pack_signs": "pack_zeros"}),
    Option("estimator", ("surrogate", "quantize_backward"), "estimators",
           "the surrogate gradient by registered name (SEMANTICS 2); every registered estimator is drawn"),
    Option("eta_kind", _NOISE_OPS, "etas", "the noise module's shortcut eta: sin, linear or none (SEMANTICS 3)"),
    Option("layout", _NOISE_OPS, "layouts", "how a tensor becomes the module's rows: weight or activation (SEMANTICS 3)"),
    Option("mode", ("weight_scale",), "scales", "the weight scale: channel, layer or none (SEMANTICS 5)"),
    Option("pad_value", ("conv2d_forward", "conv2d_backward", "xnor_conv2d"), "pad_values",
           "the padding value of the binarized input: 0, -1 or +1 (SEMANTICS 5)"),
    Option("eval_noise", ("quantize_forward",), "eval_noise",
           "eval semantics: False is SEMANTICS 4 (z = sign(t) in eval); a backend adding alpha e(t) in eval "
           "(BiBench) declines False", required=False),
)
OPTION_NAMES: tuple[str, ...] = tuple(o.name for o in OPTIONS)


@dataclass(frozen=True)
class Declined:
    """One value of one option a backend declined for one op, with its reason."""

    op: str
    option: str
    value: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "option": self.option, "value": self.value, "reason": self.reason}


def ask(backend: Any, op: str, option: str, value: Any) -> Optional[str]:
    """The backend's reason for declining ``value`` of ``option`` for ``op`` (None: supported, or no
    ``supports`` method). An exception inside ``supports`` is a bug of the backend and propagates."""
    supports = getattr(backend, "supports", None)
    if not callable(supports):
        return None
    reason = supports(op, option, value)
    return None if reason is None else str(reason)


def restrict(backend: Any, op: str, space: Any) -> tuple[Any, list[Declined]]:
    """``space`` (an OptionSpace) with, for ``op``, only the values ``backend`` supports, and the declined ones.

    An option whose every value is declined leaves an empty tuple: the caller declines the whole op.
    """
    declined: list[Declined] = []
    changes: dict[str, tuple] = {}
    for opt in OPTIONS:
        if op not in opt.ops:
            continue
        name = opt.field_for(op)
        kept = []
        for value in space.values(name):
            reason = ask(backend, op, opt.name, value)
            if reason is None:
                kept.append(value)
            else:
                declined.append(Declined(op, opt.name, value, reason))
        changes[name] = tuple(kept)
    return (replace(space, **changes) if changes else space), declined


def empty_options(op: str, space: Any) -> list[str]:
    """Options of ``op`` left without a single value in ``space`` (the op cannot be drawn at all)."""
    return [o.name for o in OPTIONS if o.required and op in o.ops and not space.values(o.field_for(op))]


def binary_options_declined(backend: Any, options: Any) -> list[Declined]:
    """What ``backend`` declines among the values a layer / end-to-end check with ``options``
    (a :class:`fdaref.presets.BinaryOptions`) would use."""
    asked = [("quantize_forward", "zero", float(options.zero)), ("sign", "zero", float(options.zero)),
             ("quantize_backward", "estimator", options.estimator), ("weight_scale", "mode", options.scale),
             ("conv2d_forward", "pad_value", float(options.pad_value)),
             ("conv2d_backward", "pad_value", float(options.pad_value))]
    if options.noise:
        for op in _NOISE_OPS:
            asked += [(op, "eta_kind", options.eta), (op, "layout", "weight"), (op, "layout", "activation")]
    out = []
    for op, option, value in asked:
        reason = ask(backend, op, option, value)
        if reason is not None:
            out.append(Declined(op, option, value, reason))
    return out
