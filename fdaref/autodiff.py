"""A minimal reverse-mode autodiff engine that runs on any op table (:mod:`fdaref.optable`).

A :class:`Tensor` wraps one backend array together with the op table it lives on. Every differentiable
operation is a :class:`Function` whose static ``forward(ctx, ...)`` / ``backward(ctx, g)`` call only
op-table ops and Python array operators, so the same engine trains on numpy, torch, cupy or numba.

Rules kept in one place each:
- broadcasting: the backward loop sums every gradient down to its input's shape (``ops.sum_to_shape``);
- accumulation: a tensor used twice gets ``g1 + g2`` (a new array; gradients are never mutated in place,
  so the first contribution is stored without a copy);
- graph traversal: iterative topological sort, so depth is limited by memory, not by Python's recursion.

The layers of the engine (conv2d, batch_norm, quantize, cross_entropy, ...) are in :mod:`fdaref.functions`.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np

Array = Any

_grad_enabled = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block no graph is recorded (evaluation, optimizer steps)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


_default_ops: Any = None


def default_ops() -> Any:
    """The op table a tensor lives on unless it is given one: the fast ``numpy`` backend, found through the
    ``fdaref.backends`` entry-point group like every backend (the literal reference, 2-5x slower, is
    :data:`fdaref.reference.REFERENCE`; move a model there with ``.to(REFERENCE)``)."""
    global _default_ops
    if _default_ops is None:
        from .backend_loader import load_backend
        _default_ops = load_backend("numpy")
    return _default_ops


class Tensor:
    """A backend array ``data`` on the op table ``ops``; ``grad`` is a backend array of the same shape."""

    __array_ufunc__ = None  # numpy scalars on the left defer to our operators instead of broadcasting us

    def __init__(self, data: Array, ops: Any = None, requires_grad: bool = False, device: str = "cpu"):
        if isinstance(data, Tensor):
            raise TypeError("Tensor(data): data is already a Tensor; use .detach() for a graph-free copy")
        self.ops = ops if ops is not None else default_ops()
        self.data = data
        self.requires_grad = bool(requires_grad)
        self.device = device
        self.grad: Optional[Array] = None
        self._ctx: Optional[Context] = None  # set on outputs of a Function while recording
        self._leaf = True  # False for a recorded Function output (its _ctx is freed by backward)

    @classmethod
    def from_numpy(cls, a: np.ndarray, ops: Any = None, device: str = "cpu",
                   requires_grad: bool = False) -> "Tensor":
        """A tensor with the values and dtype of the numpy array ``a`` on ``ops`` / ``device``."""
        ops = ops if ops is not None else default_ops()
        return cls(ops.from_numpy(np.asarray(a), device), ops, requires_grad, device)

    shape = property(lambda self: tuple(self.data.shape))
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: len(self.data.shape))

    def numpy(self) -> np.ndarray:
        """A host numpy copy of the values."""
        return self.ops.to_numpy(self.data)

    def detach(self) -> "Tensor":
        """The same array, cut from the graph."""
        return Tensor(self.data, self.ops, False, self.device)

    def __repr__(self) -> str:
        return (f"Tensor(shape={self.shape}, dtype={self.dtype}, ops={self.ops.name}, "
                f"requires_grad={self.requires_grad})")

    # -- operators (scalars and arrays are constants; Tensors are differentiated) ----------------------
    def __add__(self, other): return Add.apply(self, other)
    def __radd__(self, other): return Add.apply(other, self)
    def __sub__(self, other): return Sub.apply(self, other)
    def __rsub__(self, other): return Sub.apply(other, self)
    def __mul__(self, other): return Mul.apply(self, other)
    def __rmul__(self, other): return Mul.apply(other, self)
    def __truediv__(self, other): return Div.apply(self, other)
    def __rtruediv__(self, other): return Div.apply(other, self)
    def __neg__(self): return Neg.apply(self)
    def __getitem__(self, index): return GetItem.apply(self, index=index)

    def reshape(self, *shape: int) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return Reshape.apply(self, shape=shape)

    def flatten(self, start_dim: int = 1) -> "Tensor":
        """Keep the first ``start_dim`` axes, merge the rest: (B, C, H, W) -> (B, C*H*W)."""
        return self.reshape(*self.shape[:start_dim], -1)

    def sum(self) -> "Tensor":
        return Sum.apply(self)

    def mean(self) -> "Tensor":
        return Sum.apply(self) / float(np.prod(self.shape))

    # -- reverse mode ----------------------------------------------------------------------------------
    def backward(self, grad: Optional[Array] = None) -> None:
        """Accumulate d self / d leaf into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` (shape of self) defaults to 1 for a single-element output. The graph is freed afterwards.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad (no input required grad, "
                               "or it was computed under no_grad())")
        if grad is None:
            if int(np.prod(self.shape)) != 1:
                raise RuntimeError(f"backward() without a gradient needs a single-element output; got shape "
                                   f"{self.shape} (pass grad= of that shape)")
            grad = self.ops.zeros(self.shape, like=self.data)
            grad[...] = 1.0  # slice assignment keeps a 0-d backend array (numpy's 0-d + 1.0 is a scalar)
        elif tuple(grad.shape) != self.shape:
            raise ValueError(f"backward(grad): expected shape {self.shape}, got {tuple(grad.shape)}")

        grads: dict[int, Array] = {id(self): grad}
        for node in _topological_order(self):
            g = grads.pop(id(node), None)
            if g is None:
                continue  # no path from the output reaches this node with a gradient
            if node._leaf:
                node.grad = g if node.grad is None else node.grad + g
                continue
            if node._ctx is None:
                raise RuntimeError("backward(): part of this graph was already freed by an earlier backward() "
                                   "call; recompute the forward pass for a second backward")
            ctx, node._ctx = node._ctx, None  # free the graph as we go
            in_grads = ctx.fn.backward(ctx, g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for parent, pg in zip(ctx.parents, in_grads):
                if parent is None or pg is None or not parent.requires_grad:
                    continue
                if tuple(pg.shape) != parent.shape:  # the ONE place broadcasting is undone
                    pg = node.ops.sum_to_shape(pg, parent.shape)
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg


def _topological_order(root: Tensor) -> list[Tensor]:
    """Nodes reachable from ``root``, each before all of its inputs; iterative depth-first post-order.

    A node is marked when it is expanded (not when pushed), so it is appended only after every input
    (and everything behind them) has been appended; a DAG has no node that is "in progress" twice.
    """
    order, visited = [], set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue  # pushed by two consumers; the first expansion wins
        visited.add(id(node))
        stack.append((node, True))
        for parent in (node._ctx.parents if node._ctx is not None else ()):
            if parent is not None and parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    return order[::-1]


class Context:
    """What a Function's forward leaves for its backward; ``ops`` is the op table of the inputs."""

    def __init__(self, fn: type, ops: Any, parents: tuple[Optional[Tensor], ...]):
        self.fn, self.ops, self.parents = fn, ops, parents
        # per positional argument: does it want a gradient? (lets backward skip work for constants)
        self.needs_grad = tuple(p is not None and p.requires_grad for p in parents)
        self.saved: tuple = ()

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved = arrays


class Function:
    """Subclasses define static ``forward(ctx, *arrays, **kw) -> array`` and ``backward(ctx, g) -> grads``.

    ``forward`` receives the backend arrays of Tensor arguments (other positional arguments as they are,
    keyword arguments unchanged); ``backward`` returns one gradient (or None) per positional argument.
    """

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Array:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, g: Array) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        tensors = [a for a in args if isinstance(a, Tensor)]
        if not tensors:
            raise TypeError(f"{cls.__name__}: needs at least one Tensor argument")
        ops, device = tensors[0].ops, tensors[0].device
        for t in tensors[1:]:
            if t.ops is not ops or t.device != device:
                raise ValueError(f"{cls.__name__}: operands live on different backends/devices "
                                 f"({ops.name}/{device} and {t.ops.name}/{t.device}); move them with .to()")
        parents = tuple(a if isinstance(a, Tensor) else None for a in args)
        ctx = Context(cls, ops, parents)
        out = cls.forward(ctx, *[a.data if isinstance(a, Tensor) else a for a in args], **kwargs)
        requires_grad = _grad_enabled and any(t.requires_grad for t in tensors)
        result = Tensor(out, ops, requires_grad, device)
        if requires_grad:
            result._ctx, result._leaf = ctx, False
        return result


# ---------------------------------------------------------------------------------------------------
# Elementwise arithmetic. Non-Tensor operands (Python numbers, backend arrays) are constants; their
# gradient slot is None. Broadcast shapes are reduced by the backward loop, not here.

class Add(Function):
    @staticmethod
    def forward(ctx, a, b): return a + b

    @staticmethod
    def backward(ctx, g): return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b): return a - b

    @staticmethod
    def backward(ctx, g): return g, -g


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return g * b if ctx.needs_grad[0] else None, g * a if ctx.needs_grad[1] else None


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        da = g / b
        return da, -da * a / b if ctx.needs_grad[1] else None


class Neg(Function):
    @staticmethod
    def forward(ctx, a): return -a

    @staticmethod
    def backward(ctx, g): return -g


class Sum(Function):
    """Sum of all elements -> 0-d array (via ops.sum_to_shape, so no backend-specific reduction)."""

    @staticmethod
    def forward(ctx, a):
        ctx.shape = tuple(a.shape)
        return ctx.ops.sum_to_shape(a, ())

    @staticmethod
    def backward(ctx, g): return ctx.ops.zeros(ctx.shape, like=g) + g


# ---------------------------------------------------------------------------------------------------
# Shape plumbing.

class Reshape(Function):
    @staticmethod
    def forward(ctx, a, *, shape):
        ctx.shape = tuple(a.shape)
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, g): return g.reshape(ctx.shape)


def _check_basic_index(index: Any) -> tuple:
    """Only basic indexing (ints, slices, ..., None): its backward is a plain slice assignment."""
    index = index if isinstance(index, tuple) else (index,)
    for item in index:
        if not (item is None or item is Ellipsis or isinstance(item, (int, slice, np.integer))) \
                or isinstance(item, bool):
            raise TypeError(f"Tensor[...]: only basic indexing (ints, slices, ..., None) is supported, got "
                            f"{type(item).__name__}; advanced indexing has no slice-assignment backward")
    return index


class GetItem(Function):
    @staticmethod
    def forward(ctx, a, *, index):
        ctx.index, ctx.shape = _check_basic_index(index), tuple(a.shape)
        return a[ctx.index]

    @staticmethod
    def backward(ctx, g):
        dx = ctx.ops.zeros(ctx.shape, like=g)
        dx[ctx.index] = g
        return dx


__all__ = ["Tensor", "Function", "Context", "no_grad"]
