"""What a wrapped implementation declares it implements, turned into what the suite asks and draws.

A declaration maps option names to the value (or tuple of values) an implementation implements. Two kinds:

- the suite's option vocabulary (:data:`fdaref.conformance.capabilities.OPTIONS`: ``zero``, ``estimator``,
  ``eta_kind``, ``layout``, ``mode`` (alias ``scale``), ``pad_value``, ``eval_noise``) is answered through
  ``supports(op, option, value)``, the capabilities protocol: the runner then draws only supported values
  and lists the declined ones with the reason;
- parameters outside that vocabulary (``n`` as a value or an ``(lo, hi)`` range, ``omega``, ``clip``,
  ``beta``, ``a``, ``alpha``, ``k``, ``noise``) narrow the :class:`~fdaref.conformance.strategies.OptionSpace`
  directly, and every value left out is reported as declined as well (:meth:`Declaration.narrow`).

``eval_noise=True`` declares a layer that adds alpha * e(t) in eval (BiBench); SEMANTICS 4's eval is False.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from ..capabilities import Declined
from ..strategies import OptionSpace

ALIASES = {"scale": "mode"}
_FDA_OPS = ("surrogate", "quantize_backward")
_NOISE_OPS = ("noise_forward", "noise_backward", "quantize_forward", "quantize_backward")
# parameter -> (OptionSpace field, the ops that draw it)
PARAMETERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "omega": ("omegas", _FDA_OPS), "clip": ("clips", _FDA_OPS), "beta": ("betas", _FDA_OPS),
    "a": ("a_values", _NOISE_OPS), "alpha": ("alphas", ("quantize_forward", "quantize_backward")),
    "k": ("ks", _NOISE_OPS),
}


def _values(v: Any) -> tuple[Any, ...]:
    return tuple(v) if isinstance(v, (tuple, list, set, frozenset)) else (v,)


class Declaration:
    """The options one implementation declares; every option it does not mention counts as supported."""

    def __init__(self, label: str, declared: Optional[Mapping[str, Any]] = None):
        self.label = label
        self.declared = {ALIASES.get(k, k): v for k, v in dict(declared or {}).items()}

    def supports(self, op: str, option: str, value: Any) -> Optional[str]:
        """None if ``value`` of ``option`` is implemented, else why not (the suite's capabilities protocol)."""
        option = ALIASES.get(option, option)
        if option not in self.declared:
            return None
        allowed = self.declared[option]
        if option == "n" and isinstance(allowed, tuple) and len(allowed) == 2:
            ok, shown = allowed[0] <= int(value) <= allowed[1], f"{allowed[0]}..{allowed[1]}"
        else:
            ok, shown = value in _values(allowed), " or ".join(repr(v) for v in _values(allowed))
        if ok:
            return None
        if option == "eval_noise":
            return (f"{self.label} adds alpha * e(t) in eval (declared eval_noise={allowed!r}); the reference "
                    "evaluates sign(t) only (SEMANTICS 4)" if allowed else
                    f"{self.label} evaluates sign(t) only in eval (declared eval_noise=False)")
        return f"{self.label} implements {option} = {shown} only, not {value!r}"

    def narrow(self, op: str, base: OptionSpace) -> tuple[OptionSpace, list[Declined]]:
        """``base`` narrowed to the declared parameters that ``op`` draws, and the values left out."""
        changes: dict[str, Any] = {}
        declined: list[Declined] = []
        for name, value in self.declared.items():
            if name == "n" and op in _FDA_OPS:
                lo, hi = value if isinstance(value, tuple) and len(value) == 2 else (int(value), int(value))
                new = (max(lo, base.n_range[0]), min(hi, base.n_range[1]))
                if new != tuple(base.n_range):
                    declined.append(Declined(op, "n", list(base.n_range), self.supports(op, "n", base.n_range[1]
                                             if base.n_range[1] > hi else base.n_range[0]) or ""))
                changes["n_range"] = new if new[0] <= new[1] else (lo, lo - 1)
            elif name == "noise" and op in _NOISE_OPS and not value and base.noise:
                changes["noise"] = False
                declined.append(Declined(op, "noise", True, f"{self.label} has no noise module (declared noise=False)"))
            elif name in PARAMETERS and op in PARAMETERS[name][1]:
                field = PARAMETERS[name][0]
                current = getattr(base, field)
                if current is None:      # betas: None means a few per estimator
                    changes[field] = _values(value)
                    continue
                kept = tuple(v for v in current if v in _values(value))
                declined += [Declined(op, name, v, self.supports(op, name, v) or "") for v in current if v not in kept]
                changes[field] = kept
        return dataclasses.replace(base, **changes), declined


def nothing_left(space: OptionSpace) -> list[str]:
    """The narrowed parameters with no value left (the op cannot be drawn at all)."""
    empty = [f for f, _ in PARAMETERS.values() if getattr(space, f) is not None and not getattr(space, f)]
    return empty + (["n"] if space.n_range[0] > space.n_range[1] else [])
