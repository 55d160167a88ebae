"""What a wrapped implementation declares it implements, turned into the suite's two inputs.

A declaration is a mapping from option names (the op keyword names of :mod:`fdaref.optable`: ``zero``,
``estimator``, ``eta_kind``, ``layout``, ``pad_value``, ``scale``, ``alpha``, ``a``, ``k``, ``training``, and
the surrogate parameters ``n``, ``omega``, ``clip``, ``beta``; plus ``eval_noise`` for a layer that adds
alpha * e(t) in eval, as BiBench does) to the value or the tuple of values it implements. ``n`` may be an
``(lo, hi)`` range. From it come

- ``supports(op, option, value)``, the capabilities protocol of the conformance suite: None when
  supported, else the reason, and
- the :class:`~fdaref.conformance.strategies.OptionSpace` the strategies draw from, so only declared values
  are drawn.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from ..strategies import ALL_OPTIONS, OptionSpace

# declaration name -> OptionSpace field
_FIELDS = {"zero": "zeros", "estimator": "estimators", "omega": "omegas", "clip": "clips", "beta": "betas",
           "eta_kind": "etas", "a": "a_values", "alpha": "alphas", "k": "ks", "scale": "scales",
           "pad_value": "pad_values"}


def _values(v: Any) -> tuple[Any, ...]:
    return tuple(v) if isinstance(v, (tuple, list, set, frozenset)) else (v,)


class Declaration:
    """The options one implementation declares; every option it does not mention counts as supported."""

    def __init__(self, label: str, declared: Optional[Mapping[str, Any]] = None):
        self.label, self.declared = label, dict(declared or {})

    def supports(self, op: str, option: str, value: Any) -> Optional[str]:
        """None if ``value`` of ``option`` is implemented, else why not (the suite's capabilities protocol)."""
        if option not in self.declared:
            return None
        allowed = self.declared[option]
        if option == "n" and isinstance(allowed, tuple) and len(allowed) == 2:
            ok = allowed[0] <= int(value) <= allowed[1]
            shown = f"{allowed[0]}..{allowed[1]}"
        else:
            ok, shown = value in _values(allowed), " or ".join(repr(v) for v in _values(allowed))
        if ok:
            return None
        if option == "eval_noise":
            return (f"{self.label} adds alpha * e(t) in eval (declared eval_noise={allowed!r}); the reference "
                    "evaluates sign(t) only (SPEC 9)" if allowed else
                    f"{self.label} evaluates sign(t) only in eval (declared eval_noise=False)")
        return f"{self.label} implements {option} = {shown} only, not {value!r}"

    def option_space(self, base: OptionSpace = ALL_OPTIONS) -> OptionSpace:
        """``base`` narrowed to the declared values (values ``base`` does not draw are still drawn)."""
        changes: dict[str, Any] = {}
        for name, value in self.declared.items():
            if name == "n":
                lo_hi = value if isinstance(value, tuple) and len(value) == 2 else (int(value), int(value))
                changes["n_range"] = (int(lo_hi[0]), int(lo_hi[1]))
            elif name == "noise":
                changes["noise"] = bool(value)
            elif name in _FIELDS:
                changes[_FIELDS[name]] = _values(value)
        return dataclasses.replace(base, **changes)
