"""The FDA quantizer of Eq. 14 for the torch modules: sign forward, SEMANTICS 4 backward, in two forms.

z = sign(t) + alpha e(t) while training with the noise module (e(t) = relu(t W1) W2 + eta(t), Eq. 13),
else sign(t). Backward: dt = g fda'(t) + alpha (de/dt)^T g, dW1 and dW2 times alpha (SEMANTICS 4).

``alpha`` and ``n`` (the estimator's n) are 0-d tensors: the quantizer module keeps them as buffers, so they
are in the state dict, follow the module to its device, and a schedule change is a new value, not a new
graph under ``torch.compile``. Everything else (zero, estimator, layout, eta, a, training) is fixed per
module.

- The CPU path: two custom ops, ``fdaref::quantize_forward`` and ``fdaref::quantize_backward`` (autograd
  registered), around the op table's kernels (the fused numba pass of :mod:`.cpu_loops` for float32
  activations, on torch's own OpenMP threads: :mod:`.omp_team`). Eager calls them; on one torch thread
  ``torch.compile`` keeps them as calls in its one graph for the activations (no graph break) and, as they
  take any layout (``flexible_layout``), hands them the channels-last tensors its convolutions use, with no
  layout copies. Reading alpha and n to the host costs
  nothing on the CPU.
- :class:`QuantizeMath`: pure tensor math with no host read, no in-place write into an input, no data-
  dependent Python branch: what eager runs on a GPU (no device synchronisation) and what ``torch.compile``
  traces there and, on the CPU, for the weights and on more than one thread (Inductor fuses the
  elementwise work and runs it on every thread).

:func:`quantize` picks one: by the tensor's device, and under ``torch.compile`` on the CPU by layout and
thread count (its comment says why). Both compute the same values (float tolerance; tests pin them
against each other and against the reference).
"""
from __future__ import annotations

import json
import math
from typing import Any, Optional

import torch

from . import cpu_loops, fused
from .ops import surrogate_grad
from .ops import backend as _ops

Tensor = torch.Tensor
USES_N = ("fda", "fda_series")   # the estimators whose n follows the schedule (BinaryOptions.uses_n)


# ---------------------------------------------------------------------------------------------------
# the CPU path: custom ops around the op table

_ANY_LAYOUT = (torch.Tag.flexible_layout,)


def _hidden_like(t: Tensor, w1: Optional[Tensor], layout: str, training: bool) -> Tensor:
    """An empty tensor laid out as the forward's h = relu(t W1): (B, m, H W) for 4-D activations (pixel-major
    where t is channels-last, as :func:`.cpu_loops.quantize_forward` writes it), (rows, m) otherwise, and
    (0,) where the module is not evaluated. The fake and the real op both use it: their strides agree."""
    if not training or w1 is None:
        return t.new_empty(0)
    m = w1.shape[1]
    if _nchw(t, layout):
        b, p = t.shape[0], t.shape[2] * t.shape[3]
        if cpu_loops.channels_last(t):
            return t.new_empty((b, p, m)).transpose(1, 2)
        return t.new_empty((b, m, p))
    return t.new_empty((t.numel() // w1.shape[0], m))


def _into(value: Optional[Tensor], like: Tensor, device: torch.device) -> Tensor:
    """``value`` in the strides of ``like`` (a meta tensor: what the fake promises, at no memory), itself
    where they agree, else a copy on ``device`` (zeros for None): the real op's outputs keep the fake's
    strides, and no buffer is allocated only to be thrown away."""
    if value is not None and value.stride() == like.stride():
        return value
    out = torch.empty_strided(like.shape, like.stride(), dtype=like.dtype, device=device)
    return out.zero_() if value is None else out.copy_(value)


@torch.library.custom_op("fdaref::quantize_forward", mutates_args=(), tags=_ANY_LAYOUT)
def _forward_op(t: Tensor, w1: Optional[Tensor], w2: Optional[Tensor], alpha: Tensor, n: Tensor, zero: float,
                estimator: str, params: str, layout: str, eta: str, a: float, training: bool
                ) -> tuple[Tensor, Tensor]:
    """(z, h): Eq. 14 and the module's hidden activation for backward (zeros where alpha = 0)."""
    z, h = _ops.quantize_forward_saving(t, w1, w2, alpha=float(alpha.item()), zero=zero, layout=layout,
                                        eta_kind=eta, a=a, training=training)
    meta = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")   # t's strides exactly
    return _into(z, torch.empty_like(meta), t.device), _into(h, _hidden_like(meta, w1, layout, training), t.device)


@_forward_op.register_fake
def _(t, w1, w2, alpha, n, zero, estimator, params, layout, eta, a, training):
    return torch.empty_like(t), _hidden_like(t, w1, layout, training)


@torch.library.custom_op("fdaref::quantize_backward", mutates_args=(), tags=_ANY_LAYOUT)
def _backward_op(g: Tensor, t: Tensor, h: Tensor, w1: Optional[Tensor], w2: Optional[Tensor], alpha: Tensor,
                 n: Tensor, estimator: str, params: str, layout: str, eta: str, a: float
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """(dt, dW1, dW2) of SEMANTICS 4; ``params``: the estimator's parameters but n, as JSON; dW empty (0,)
    without a module."""
    full = json.loads(params)
    if estimator in USES_N:
        full["n"] = int(n.item())
    dt, dw1, dw2 = _ops.quantize_backward_saved(g, t, h if h.numel() else None, w1, w2, alpha=float(alpha.item()),
                                                estimator=estimator, params=full, layout=layout, eta_kind=eta, a=a)
    dt = _into(dt, torch.empty_like(t, device="meta"), t.device)
    if w1 is None:
        return dt, t.new_empty(0), t.new_empty(0)
    return (dt, _into(dw1, torch.empty_like(w1, device="meta"), w1.device),
            _into(dw2, torch.empty_like(w2, device="meta"), w2.device))


@_backward_op.register_fake
def _(g, t, h, w1, w2, alpha, n, estimator, params, layout, eta, a):
    if w1 is None:
        return torch.empty_like(t), t.new_empty(0), t.new_empty(0)
    return torch.empty_like(t), torch.empty_like(w1), torch.empty_like(w2)


def _setup(ctx: Any, inputs: tuple, output: tuple) -> None:
    t, w1, w2, alpha, n, zero, estimator, params, layout, eta, a, training = inputs
    # in eval z = sign(t): the module is not evaluated, so its backward is that of alpha == 0 (SEMANTICS 4)
    ctx.save_for_backward(t, w1, w2, output[1], alpha if training else torch.zeros_like(alpha), n)
    ctx.static = (estimator, params, layout, eta, a)
    ctx.has_module = w1 is not None and training


def _backward(ctx: Any, gz: Tensor, gh: Optional[Tensor]) -> tuple[Optional[Tensor], ...]:
    t, w1, w2, h, alpha, n = ctx.saved_tensors
    dt, dw1, dw2 = _backward_op(gz, t, h, w1, w2, alpha, n, *ctx.static)
    if not ctx.has_module:
        dw1 = dw2 = None
    return (dt, dw1, dw2) + (None,) * 9


_forward_op.register_autograd(_backward, setup_context=_setup)


def params_json(params: tuple) -> str:
    """The custom ops' form of an estimator's static parameters ((name, value) pairs)."""
    return json.dumps(dict(params), sort_keys=True)


# ---------------------------------------------------------------------------------------------------
# pure tensor math

def _sign(t: Tensor, zero: float) -> Tensor:
    """SEMANTICS 1: +-1, ``zero`` at 0, NaN kept (torch.sign keeps NaN)."""
    return torch.where(t == 0, torch.full_like(t, zero), torch.sign(t))


def _eta(t: Tensor, eta: str, a: float) -> Optional[Tensor]:
    if eta == "sin":
        return a * torch.sin(t)
    if eta == "linear":
        return a * t
    return None


# Rows of the noise module (SEMANTICS 3) without a copy: 4-D activations as (B, C, H W) (pixels as rows through a
# batched product, as the op table does), everything else as (rows, d). Shapes come from the tensors alone
# (no numpy), so that dynamo traces them.

def _nchw(t: Tensor, layout: str) -> bool:
    return layout == "activation" and t.dim() == 4


def _rows(t: Tensor, d: int) -> Tensor:
    return t.reshape(-1, d)


def _hidden(t: Tensor, w1: Tensor, layout: str) -> Tensor:
    """t W1: (B, m, H W) for 4-D activations, (rows, m) otherwise."""
    if _nchw(t, layout):
        return torch.matmul(w1.T, t.reshape(t.shape[0], t.shape[1], -1))
    return _rows(t, w1.shape[0]) @ w1


def _back(r: Tensor, w: Tensor, t: Tensor, layout: str) -> Tensor:
    """r w in t's layout and shape, for r from :func:`_hidden`'s layout and w (m, d)."""
    if _nchw(t, layout):
        return torch.matmul(w.T, r).reshape(t.shape)
    return (r @ w).reshape(t.shape)


def _module_vjp(g: Tensor, t: Tensor, r: Tensor, w1: Tensor, w2: Tensor, layout: str
                ) -> tuple[Tensor, Tensor, Tensor]:
    """(dfc/dt^T g, dW1, dW2) of fc(t) = relu(t W1) W2, with r = relu(t W1)."""
    if _nchw(t, layout):
        gv, tv = g.reshape(g.shape[0], g.shape[1], -1), t.reshape(t.shape[0], t.shape[1], -1)
        dh = torch.matmul(w2, gv) * (r > 0)
        return (_back(dh, w1.T, t, layout), torch.matmul(tv, dh.transpose(1, 2)).sum(0),
                torch.matmul(r, gv.transpose(1, 2)).sum(0))
    gr, tr = _rows(g, w2.shape[1]), _rows(t, w1.shape[0])
    dh = (gr @ w2.T) * (r > 0)
    return (dh @ w1.T).reshape(t.shape), tr.T @ dh, r.T @ gr


def _surrogate_times(g: Tensor, t: Tensor, n: Tensor, estimator: str, params: dict[str, Any],
                     n_max: int) -> Tensor:
    """g fda'(t) (or another estimator's surrogate), with n a 0-d tensor."""
    if estimator == "fda":
        out = fused._fda_expr(t, g, n, float(params["omega"]))
    elif estimator == "fda_series":   # Eq. 10 term by term up to the schedule's largest n, masked beyond n
        omega = float(params["omega"])
        total = torch.zeros_like(t)
        for i in range(n_max + 1):
            total = total + torch.cos((2 * i + 1) * omega * t) * (i <= n).to(t.dtype)
        out = total * (4.0 * omega / math.pi) * g
    else:
        return surrogate_grad(t, estimator, params, g)
    clip = params.get("clip")
    return out if clip is None else torch.where(t.abs() > clip, torch.zeros_like(out), out)


class QuantizeMath(torch.autograd.Function):
    """``apply(t, w1, w2, alpha, n, zero, estimator, params, layout, eta, a, training, n_max)``; see the
    module docstring. The noise terms are evaluated even at alpha = 0 (times 0): no branch on a value."""

    @staticmethod
    def forward(ctx: Any, t: Tensor, w1: Optional[Tensor], w2: Optional[Tensor], alpha: Tensor, n: Tensor,
                zero: float, estimator: str, params: tuple, layout: str, eta: str, a: float, training: bool,
                n_max: int) -> Tensor:
        z = _sign(t, zero)
        r = None
        if training and w1 is not None:
            r = torch.relu(_hidden(t, w1, layout))
            e = _back(r, w2, t, layout)
            eta_term = _eta(t, eta, a)
            if eta_term is not None:
                e = e + eta_term
            z = z + alpha.to(t.dtype) * e
        ctx.save_for_backward(t, w1, w2, r, alpha, n)
        ctx.static = (estimator, dict(params), layout, eta, a, n_max)
        return z

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Optional[Tensor], ...]:
        t, w1, w2, r, alpha, n = ctx.saved_tensors
        estimator, params, layout, eta, a, n_max = ctx.static
        g = g.contiguous()
        dt = _surrogate_times(g, t, n, estimator, params, n_max)
        dw1 = dw2 = None
        if r is not None:
            al = alpha.to(t.dtype)
            if eta == "sin":
                dt = dt + (al * a) * torch.cos(t) * g
            elif eta == "linear":
                dt = dt + (al * a) * g
            fc_t, gw1, gw2 = _module_vjp(g, t, r, w1, w2, layout)
            dt = dt + al * fc_t
            dw1, dw2 = al * gw1, al * gw2
        return (dt, dw1, dw2) + (None,) * 10


@torch.compiler.assume_constant_result
def _one_thread() -> bool:
    """Whether torch runs on one thread: the one case where torch.compile calls the numba pass. On more,
    even with the pass on torch's OpenMP team, Inductor's own kernels were no slower (bench, 2 threads:
    0.68x with the team pass, 0.70x without) and faster for small batches (make demo, batch 32: 548
    against ~690 images/s). A constant of the traced graph (a plain ``torch.get_num_threads()`` call would
    break it)."""
    return torch.get_num_threads() == 1


def quantize(t: Tensor, w1: Optional[Tensor], w2: Optional[Tensor], alpha: Tensor, n: Tensor, *, zero: float,
             estimator: str, params: tuple, params_json: str, layout: str, eta: str, a: float, training: bool,
             n_max: int) -> Tensor:
    """Eq. 14 with the SEMANTICS 4 backward (module docstring); ``w1``/``w2`` None: no noise module;
    ``params_json``: :func:`params_json` of ``params`` (computed once by the caller: no JSON while tracing)."""
    # Off the CPU the pure math. Under torch.compile on the CPU too, but for activations where the numba pass
    # runs on all of torch's threads: a weight's few thousand elements are one or two Inductor kernels (a
    # custom op call costs more), and a pass on one thread of several loses to Inductor's kernels, which use
    # them all (bench_torch.py, binary vs float compiled, 2 threads, session 5: 0.62x with a one-thread pass,
    # 0.70x without).
    if t.device.type != "cpu" or (torch.compiler.is_compiling() and not (_nchw(t, layout) and _one_thread())):
        return QuantizeMath.apply(t, w1, w2, alpha, n, zero, estimator, params, layout, eta, a, training, n_max)
    return _forward_op(t, w1, w2, alpha, n, zero, estimator, params_json, layout, eta, a, training)[0]
