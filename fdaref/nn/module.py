"""The Module base: parameters, buffers and submodules found from attributes, in construction order.

An attribute that is a :class:`~fdaref.autodiff.Tensor` with ``requires_grad`` is a parameter, one
without is a buffer (e.g. batch-norm running statistics), a :class:`Module` is a submodule. Python keeps
attributes in assignment order, so ``named_parameters()`` lists them in the order the layer created them:
the same order the seeded generator drew them in, on every backend.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np

from ..autodiff import Tensor

_trace: Optional[list] = None  # set by fdaref.nn.summary while it records layer shapes


class Module:
    training: bool = True

    def __init__(self) -> None:
        self.training = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        if _trace is not None and args and isinstance(args[0], Tensor) and isinstance(out, Tensor):
            _trace.append((self, args[0].shape, out.shape))
        return out

    # -- traversal ------------------------------------------------------------------------------------
    def _members(self) -> Iterator[tuple[str, Any]]:
        for name, value in vars(self).items():
            if isinstance(value, (Tensor, Module)):
                yield name, value

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """This module (name ``prefix``) and every submodule, depth first, in construction order."""
        yield prefix, self
        for name, value in self._members():
            if isinstance(value, Module):
                yield from value.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        return (m for _, m in self.named_modules())

    def _named_tensors(self, want_params: bool, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for name, value in self._members():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(value, Module):
                yield from value._named_tensors(want_params, full)
            elif value.requires_grad == want_params:
                yield full, value

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        return self._named_tensors(True)

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        return self._named_tensors(False)

    def _named_state(self) -> "OrderedDict[str, Tensor]":
        """Parameters and buffers together, in construction order."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        for name, value in self._members():
            if isinstance(value, Module):
                out.update((f"{name}.{k}", v) for k, v in value._named_state().items())
            else:
                out[name] = value
        return out

    # -- modes ----------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (batch statistics, Eq. 14 with the noise module) or eval (pure sign)."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        for m in self.modules():
            fn(m)
        return self

    # -- state and backends ---------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Host numpy copies of every parameter and buffer, keyed by dotted name."""
        return OrderedDict((k, np.array(t.numpy(), copy=True)) for k, t in self._named_state().items())

    def load_state_dict(self, state: Mapping[str, np.ndarray], strict: bool = True) -> None:
        """Copy ``state`` into the parameters and buffers (cast to each one's dtype, on its backend).

        Raises KeyError naming missing / unexpected keys (unexpected ones only when ``strict``) and
        ValueError naming every shape mismatch; nothing is changed when anything is wrong.
        """
        own = self._named_state()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or (strict and unexpected):
            raise KeyError(f"load_state_dict for {type(self).__name__}: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        wrong = [f"{k}: checkpoint {tuple(np.shape(state[k]))} vs model {t.shape}"
                 for k, t in own.items() if tuple(np.shape(state[k])) != t.shape]
        if wrong:
            raise ValueError(f"load_state_dict for {type(self).__name__}: shape mismatch in " + "; ".join(wrong))
        for k, t in own.items():
            host = np.asarray(state[k]).astype(t.numpy().dtype, copy=True)
            t.data = t.ops.from_numpy(host, t.device)
            t.grad = None

    def to(self, ops: Any, device: str = "cpu", dtype: Any = None) -> "Module":
        """Move every parameter and buffer to the op table ``ops`` on ``device`` (optionally casting
        floating-point ones to ``dtype``). Tensors are updated in place, so references stay valid;
        build the optimizer after moving (its state lives on the backend it was created on)."""
        for t in self._named_state().values():
            host = t.numpy()
            if dtype is not None and host.dtype.kind == "f":
                host = host.astype(dtype)
            t.data, t.ops, t.device, t.grad = ops.from_numpy(np.ascontiguousarray(host), device), ops, device, None
        return self

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = [(n, m) for n, m in self._members() if isinstance(m, Module)]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in children]
        return head + "\n" + "\n".join(lines) + "\n)"
