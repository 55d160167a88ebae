"""PyTorch adapters: check a user's sign ``autograd.Function``, quantizer module, binary layer or whole model.

Everything runs through the user's own torch autograd; the other side is fdaref's reference (the op, or a
reference layer / model of :mod:`fdaref.nn` in float64 with identical weights).

- :func:`torch_sign_table`: ``sign`` and ``surrogate`` from a sign Function (forward, and backward with g = 1);
- :func:`torch_quantizer_table`: ``quantize_forward`` / ``quantize_backward`` from a quantizer module;
  both are op tables for the standard runner (:func:`~.callables.run_wrapped`), so they get the suite's
  strategies, edge cases, tolerances, shrinking and reports;
- :func:`check_torch_layer`: a binary Conv2d / Linear module described by a :class:`TorchLayerMapping`;
- :func:`check_torch_model`: a whole model given a name mapping to an fdaref reference model.
Layer and model checks compare the output, the input gradient and every parameter gradient, with the
layer tolerance of the suite (``LAYER_TOL``: relative to the largest finite reference value of each tensor),
the output of a second forward without autograd on a non-contiguous input and of a third after new
parameters are written in place; no forward may change the module's parameters or its input, nor change a
buffer or attribute again when repeated, and every mapped tensor must be registered in the module. The layer check also checks the noise
modules' initialisation as the factory builds them.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np

from fdaref.errors import InputError

from ..case import noncontiguous
from ..compare import OutputDiff, compare_output
from ..report import DECLINED, ERROR, FAIL, PASS, WARN, CaseResult, SuiteReport
from ..tolerances import LAYER_TOL
from .callables import CallableOps, run_wrapped
from .declared import Declaration

__all__ = ["TorchLayerMapping", "TorchQuantizerMapping", "check_torch_layer", "check_torch_model", "torch_sign_table",
           "torch_quantizer_table", "compare_with_reference"]


def _torch():
    import torch
    return torch


def _tensor(a: np.ndarray, requires_grad: bool = False, device: Any = None) -> Any:
    t = _torch().from_numpy(np.array(a, copy=True))
    t = t if device is None else t.to(device)
    return t.requires_grad_(True) if requires_grad else t


def _numpy(t: Any) -> Optional[np.ndarray]:
    return None if t is None else t.detach().cpu().numpy().copy()


def _device_of(module: Any) -> Any:
    """The device of the module's first parameter or buffer (the CPU for one with neither): where the checks
    put its inputs."""
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return _torch().device("cpu")


def resolve(obj: Any, path: str) -> Any:
    """``obj.a.b.c`` for the dotted ``path`` ``"a.b.c"``."""
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def assign(obj: Any, path: str, value: Any) -> None:
    """Set the attribute at ``path``: a tensor there is filled in place (a buffer, a parameter), anything
    else is replaced."""
    torch = _torch()
    head, _, name = path.rpartition(".")
    parent = resolve(obj, head) if head else obj
    current = getattr(parent, name)
    if isinstance(current, torch.Tensor):
        with torch.no_grad():
            current.copy_(torch.as_tensor(np.asarray(value), dtype=current.dtype).reshape(current.shape))
    else:
        setattr(parent, name, value)


# ---------------------------------------------------------------------------------------------------
# Op tables from a sign Function and from a quantizer module

def _backward(y: Any, g: np.ndarray, name: str) -> None:
    """``y.backward(g)``, and AssertionError if the backward wrote into its incoming gradient: autograd hands
    that one tensor to every branch that uses it (``sign(x) + x``), so an in-place ``g.mul_`` corrupts them."""
    gt = _tensor(g)
    y.backward(gt)
    if not np.array_equal(_numpy(gt), g, equal_nan=True):
        raise AssertionError(f"{name}: the backward wrote into its incoming gradient (in place); autograd passes "
                             f"that tensor to every other use of the output too")


def torch_sign_table(apply: Callable[..., Any], *, zero: float, estimator: str = "fda",
                     params: Optional[Mapping[str, Any]] = None, arg_names: Iterable[str] = ("n",),
                     label: Optional[str] = None) -> CallableOps:
    """``sign`` = ``apply(x, *args)`` forward, ``surrogate`` = its backward, where ``args`` are the
    estimator parameters named in ``arg_names`` (BiBench-style ``FDASign.apply(x, n)``). ``params`` are the
    fixed parameters the Function implements (e.g. ``{"omega": 0.1, "clip": 1.0}``). The backward runs with
    an upstream gradient of random signs and powers of two, divided out exactly: a backward that ignores g,
    or takes |g|, differs."""
    arg_names = tuple(arg_names)
    fixed = dict(params or {})
    name = label or getattr(apply, "__qualname__", "torch sign")

    def run(x: np.ndarray, now: Mapping[str, Any]) -> tuple[Any, Any]:
        xt = _tensor(x, requires_grad=True)
        return xt, apply(xt, *[now[k] for k in arg_names])

    def sign(x: np.ndarray, zero: float = zero) -> np.ndarray:
        return _numpy(run(x, {"n": 9, **fixed})[1])

    def surrogate(x: np.ndarray, estimator: str, params: Mapping[str, Any]) -> np.ndarray:
        xt, y = run(x, params)
        rng = np.random.default_rng(x.size)
        g = (rng.choice((-1.0, 1.0), x.shape) * 2.0 ** rng.integers(-2, 3, x.shape)).astype(x.dtype)
        _backward(y, g, name)
        return _numpy(xt.grad) / g

    declared = {"zero": zero, "estimator": estimator, **{k: v for k, v in fixed.items() if k not in arg_names}}
    rebuild = (f"from fdaref.conformance.adapters import torch_sign_table\n"
               f"be = torch_sign_table(YOUR_SIGN_FUNCTION.apply, zero={zero!r}, estimator={estimator!r}, "
               f"params={fixed!r}, arg_names={arg_names!r})  # {name}")
    return CallableOps(name, {"sign": sign, "surrogate": surrogate}, Declaration(name, declared), rebuild)


def _eval_backward(build, t, g, w1, w2, alpha, layout, params, estimator, name) -> None:
    """In eval the backward is that of sign (SEMANTICS 4): g * est'(t) whatever alpha, so AssertionError
    where the module's eval backward differs from the reference surrogate (a straight-through identity, no
    gradient at all) beyond the surrogate's tolerance."""
    from fdaref.reference import REFERENCE
    from ..records import RECORDS
    module = build(t, w1, w2, alpha, layout, params, False)
    tt = _tensor(t, requires_grad=True)
    _backward(module(tt), g, name)
    want = g.astype(np.float64) * REFERENCE.surrogate(t.astype(np.float64), estimator, dict(params or {}))
    got = None if tt.grad is None else _numpy(tt.grad)
    diff = compare_output("eval dt", got, want, RECORDS["quantize_backward"].tolerance(t.dtype.name),
                          float(np.max(np.abs(want[np.isfinite(want)]), initial=1e-30)), t.dtype.name)
    if not diff.ok:
        raise AssertionError(f"{name}: in eval the backward must be that of sign, g * est'(t) (SEMANTICS 4): "
                             + "; ".join(line.strip() for line in diff.summary().splitlines()))


@dataclass(frozen=True)
class TorchQuantizerMapping:
    """Where a quantizer module keeps its noise module's W1 / W2, its alpha and its n (dotted paths).

    ``noise_as_linear``: W1 / W2 are ``torch.nn.Linear`` weights, stored transposed ((m, d) and (d, m)).
    ``implements``: the option values it implements (see :mod:`.declared`), e.g. ``{"zero": 0.0, "clip": 1.0}``.
    """

    w1: Optional[str] = None
    w2: Optional[str] = None
    noise_as_linear: bool = True
    n: Optional[str] = "n"
    alpha: Optional[str] = "alpha"
    implements: Mapping[str, Any] = field(default_factory=dict)


def torch_quantizer_table(factory: Callable[[int, str], Any], mapping: TorchQuantizerMapping,
                          label: Optional[str] = None) -> CallableOps:
    """``quantize_forward`` / ``quantize_backward`` from ``factory(d, layout) -> module``, ``module(t) -> z``.

    A case without a noise module runs the module with alpha = 0 and reports no module gradients (SEMANTICS 4:
    z = sign(t) exactly either way)."""
    name = label or getattr(factory, "__qualname__", "torch quantizer")

    def build(t: np.ndarray, w1: Optional[np.ndarray], w2: Optional[np.ndarray], alpha: float, layout: str,
              params: Optional[Mapping[str, Any]], training: bool) -> Any:
        from fdaref.noise import row_length
        module = factory(row_length(t.shape, layout), layout).to(_torch().float64 if t.dtype == np.float64 else
                                                                  _torch().float32)
        module.train(training)
        if w1 is not None:
            for path, w in ((mapping.w1, w1), (mapping.w2, w2)):
                target = resolve(module, path)
                value = w.T if mapping.noise_as_linear else w
                if tuple(target.shape) != value.shape:
                    raise ValueError(f"{name}: {path} has shape {tuple(target.shape)}, the case's noise weight "
                                     f"needs {value.shape}")
                assign(module, path, value)
        if mapping.alpha:
            assign(module, mapping.alpha, alpha if w1 is not None else 0.0)
        if mapping.n and params and "n" in params:
            assign(module, mapping.n, int(params["n"]))
        return module

    def quantize_forward(t, w1, w2, *, alpha, zero, layout, eta_kind, a, training):
        module = build(t, w1, w2, alpha, layout, None, training)
        with _torch().no_grad():
            z = _numpy(module(_tensor(t)))
        z_grad = _numpy(module(_tensor(t, requires_grad=True)))   # what training runs: autograd on
        if not np.array_equal(z, z_grad, equal_nan=True):
            raise AssertionError(f"{name}: the forward with autograd on differs from the one without "
                                 f"(max |difference| {np.nanmax(np.abs(z.astype(np.float64) - z_grad)):g})")
        return z

    def quantize_backward(g, t, w1, w2, *, alpha, estimator, params, layout, eta_kind, a):
        module = build(t, w1, w2, alpha, layout, params, True)
        tt = _tensor(t, requires_grad=True)
        _backward(module(tt), g, name)
        if not mapping.implements.get("eval_noise"):   # a BiBench-style eval adds the module: not sign's backward
            _eval_backward(build, t, g, w1, w2, alpha, layout, params, estimator, name)
        if w1 is None:
            return _numpy(tt.grad), None, None
        grads = [resolve(module, p).grad for p in (mapping.w1, mapping.w2)]
        grads = [_numpy(gr.T if mapping.noise_as_linear else gr) if gr is not None else np.zeros_like(w)
                 for gr, w in zip(grads, (w1, w2))]
        return _numpy(tt.grad), grads[0], grads[1]

    return CallableOps(name, {"quantize_forward": quantize_forward, "quantize_backward": quantize_backward},
                       Declaration(name, mapping.implements))


# ---------------------------------------------------------------------------------------------------
# Layers and models against the reference

@dataclass(frozen=True)
class TorchLayerMapping:
    """How a binary torch layer maps onto fdaref's reference layer (dotted attribute paths).

    ``weight`` / ``bias``: the layer's weight and bias; ``weight_noise`` / ``activation_noise``: the paths of
    W1 and W2 of its two noise modules (None: it has none); ``noise_as_linear``: W1 / W2 are stored as
    ``nn.Linear`` weights, i.e. transposed; ``n`` / ``alpha``: the attributes the schedule sets (SEMANTICS 6);
    ``schedule``: instead, the name of the layer's method ``(epoch, epochs)`` that sets them (its own
    schedule then runs; with ``n`` / ``alpha`` paths too, where to read them back, it is checked at every run
    length by :func:`~.schedules.check_schedule`; fdaref's torch modules have ``set_schedule``);
    ``dilation``: a conv factory takes a 7th argument, the dilation (a geometry with dilation 2 is added);
    ``pairs``: it takes (h, w) pairs for kernel, stride and padding (a non-square geometry is added);
    ``sign``: optionally the layer's sign Function (``apply(x, n)``), whose surrogate is then checked op by
    op too; ``implements``: the option values it implements (``zero``, ``clip``, ``eval_noise``, ...).
    """

    weight: str = "weight"
    bias: Optional[str] = "bias"
    weight_noise: Optional[tuple[str, str]] = None
    activation_noise: Optional[tuple[str, str]] = None
    noise_as_linear: bool = True
    n: Optional[str] = "n"
    alpha: Optional[str] = "alpha"
    schedule: Optional[str] = None
    dilation: bool = False
    pairs: bool = False
    sign: Optional[Callable[..., Any]] = None
    implements: Mapping[str, Any] = field(default_factory=dict)

    def names(self) -> dict[str, tuple[str, bool]]:
        """fdaref parameter name -> (torch path, stored transposed)."""
        out = {"weight": (self.weight, False)}
        if self.bias:
            out["bias"] = (self.bias, False)
        for prefix, paths in (("w_noise", self.weight_noise), ("a_noise", self.activation_noise)):
            if paths:
                out[f"{prefix}1"], out[f"{prefix}2"] = (paths[0], self.noise_as_linear), (paths[1], self.noise_as_linear)
        return out


def _compare(name: str, got: Optional[np.ndarray], ref: Any, dtype: str) -> OutputDiff:
    ref = np.asarray(ref, np.float64)
    finite = np.abs(ref[np.isfinite(ref)])
    mag = max(float(np.max(finite)) if finite.size else 0.0, 1e-30)
    return compare_output(name, got, ref, LAYER_TOL[dtype], mag, dtype)


# torch's own batch norm counts its training batches in this buffer; fdaref's reference has no counterpart
_TORCH_COUNTERS = ("num_batches_tracked",)


def _snapshot(module: Any) -> dict[str, Any]:
    """Copies of every parameter and buffer of ``module`` and of the public number and tensor attributes of
    it and its submodules (n, alpha, a step counter): what a forward must leave as it was."""
    torch = _torch()
    out = {key: value.detach().clone() for key, value in module.state_dict(keep_vars=True).items()}
    for prefix, sub in module.named_modules():
        for key, value in vars(sub).items():
            if not key.startswith("_") and isinstance(value, (bool, int, float, torch.Tensor)):
                out[f"{prefix}.{key}" if prefix else key] = (value.detach().clone() if isinstance(value, torch.Tensor)
                                                             else value)
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN (tensors: also the same shape and dtype)."""
    torch = _torch()
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape \
                or a.dtype != b.dtype:
            return False
        return bool(((a == b) | (a.isnan() & b.isnan()) if a.is_floating_point() else a == b).all())
    return type(a) is type(b) and (a == b or (a != a and b != b))


def _unchanged(module: Any, before: Mapping[str, Any], skip: Iterable[str], xt: Any, x: np.ndarray,
               call: str, repeat: Callable[[], Any]) -> list[OutputDiff]:
    """Failures for what the forward ``call`` changed: a parameter (against ``before``, a :func:`_snapshot`);
    a buffer or public number / tensor attribute that ``repeat()``, the same call again, changes once more
    (a per-call schedule, a counter; a cache the first call fills and a repeat leaves as it is passes),
    except those in ``skip`` (buffers the reference updates too, compared with it) and torch's batch
    counters; and its input ``xt``, which held ``x``, written to."""
    skip = set(skip)
    params = {key for key, _ in module.named_parameters()}
    after = _snapshot(module)
    diffs = [OutputDiff(f"{key} after the forward {call}", False,
                        problem="changed by the forward (it must leave the parameters as they were; the optimizer "
                                "sets them)")
             for key, value in before.items() if key in params and not _same(value, after.get(key))]
    repeat()
    again = _snapshot(module)
    diffs += [OutputDiff(f"{key} after a repeated forward {call}", False,
                         problem="changed again by the same call (a forward must leave buffers and attributes as "
                                 "they were, but for a cache it fills; the schedule sets n and alpha)")
              for key, value in after.items()
              if key not in params and key not in skip and key.rpartition(".")[2] not in _TORCH_COUNTERS
              and not _same(value, again.get(key))]
    if not _same(xt.detach().cpu(), _torch().from_numpy(x)):
        diffs.append(OutputDiff(f"input after the forward {call}", False,
                                problem="changed in place (a layer must not write to its caller's input)"))
    return diffs


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n for n in shape if n != 1)


def _fits(target: tuple[int, ...], value: tuple[int, ...]) -> bool:
    """The same shape, or the same but for axes of size 1 (a 1x1 convolution's (m, C, 1, 1) noise weight)."""
    return target == value or (int(np.prod(target)) == int(np.prod(value)) and _squeezed(target) == _squeezed(value))


def _as_reference(t: Any, transposed: bool, shape: tuple[int, ...]) -> np.ndarray:
    """A torch tensor mapped onto a reference array of ``shape`` (stored transposed: of ``shape[::-1]``)."""
    a = _numpy(t)
    return a.reshape(shape[::-1]).T if transposed else a.reshape(shape)


def _warm_up(module: Any, x: np.ndarray, seed: int) -> None:
    """Two training steps' forward and backward on other inputs of the same shape, before the parameters are
    set: a layer keeping state between calls (a running average of its scale, a step counter) differs
    afterwards, where a stateless one is as it was."""
    mode = module.training
    module.train(True)
    rng = np.random.default_rng(seed + 7)
    for _ in range(2):
        out = module(_tensor(rng.standard_normal(x.shape).astype(x.dtype), True, _device_of(module)))
        out.sum().backward()
    module.zero_grad(set_to_none=True)
    module.train(mode)


def _registered(module: Any, names: Mapping[str, tuple[str, bool]], param_keys: Iterable[str],
                state: Mapping[str, Any]) -> list[OutputDiff]:
    """A failure for each trainable parameter of the module that is not mapped, and for each mapped tensor
    the module does not own: a reference parameter whose counterpart is not among ``module.parameters()``
    (an optimizer built from them never updates it; ``.to()`` and ``state_dict`` miss it, e.g. noise modules
    kept in a plain list), a buffer not in ``module.state_dict()``."""
    params = {id(p) for p in module.parameters()}
    stored = {id(t) for t in module.state_dict(keep_vars=True).values()}
    mapped = {id(resolve(module, path)) for path, _ in names.values()}
    out = [OutputDiff(f"{name} (a parameter of the module)", False,
                      problem="trainable, and the reference has no counterpart (an optimizer built from "
                              "module.parameters() trains it; a learnable threshold, gain, eta amplitude or a noise "
                              "bias is not SEMANTICS'); map it, or set requires_grad=False if it is a constant")
           for name, p in module.named_parameters() if p.requires_grad and id(p) not in mapped]
    for key in state:
        path, is_param = names[key][0], key in param_keys
        target = resolve(module, path)
        if id(target) not in (params if is_param else stored):
            where = "module.parameters()" if is_param else "module.state_dict()"
            out.append(OutputDiff(f"{path} registered", False,
                                  problem=f"not among {where} (an optimizer, .to() and checkpoints do not see it; "
                                          f"register it, e.g. nn.ModuleList instead of a list)"))
    return out


def _after_new_parameters(module: Any, reference: Any, names: Mapping[str, tuple[str, bool]],
                          param_keys: Iterable[str], x: np.ndarray, dtype: str, rng: np.random.Generator) -> OutputDiff:
    """Give both sides new parameters (fresh draws, as an optimizer step changes them in place) and compare a
    forward in ``torch.inference_mode()`` in the same mode: a binarized weight cached by inference code and never
    invalidated (or keyed by the storage, which an in-place update keeps) gives the old output."""
    from fdaref.autodiff import Tensor
    from fdaref.reference import REFERENCE
    torch = _torch()
    state = reference.state_dict()
    for key in [k for k in state if k in param_keys]:   # the state's order: the same draws every run
        if state[key].dtype.kind == "f":
            scale = float(np.max(np.abs(state[key]), initial=0.0)) or 1.0
            state[key] = (rng.uniform(-scale, scale, state[key].shape)).astype(dtype).astype(np.float64)
            path, transposed = names[key]
            assign(module, path, state[key].T if transposed else state[key])
    reference.load_state_dict(state)
    with torch.inference_mode():      # the other way to turn autograd off, which deployment code uses
        out = module(_tensor(x, device=_device_of(module)))
    want = reference(Tensor.from_numpy(x.astype(np.float64), REFERENCE)).numpy()
    return _compare("output in inference mode after new parameters (written in place)", _numpy(out), want, dtype)


def compare_with_reference(label: str, op: str, torch_module: Any, reference: Any,
                           names: Mapping[str, tuple[str, bool]], x: np.ndarray, dtype: str, *,
                           seed: int = 0, prepare: Optional[Callable[[], None]] = None,
                           parameters: bool = True) -> CaseResult:
    """Copy the reference's parameters and buffers into ``torch_module`` (``names``: fdaref name -> (torch
    path, transposed)), run forward and backward of sum(out * r) on both, and compare the output, the input
    gradient, every reference parameter's gradient and every mapped float buffer after the step (batch
    norm's running statistics). A second forward, without autograd, in the same mode, on a non-contiguous
    copy of the input (channels-last for 4-d), must give the same output, and a third without autograd after
    new parameters are written in place on both sides (:func:`_after_new_parameters`). Neither of the first
    two forwards may change the module's parameters or write to its input, nor change a buffer (but those the
    reference updates) or public number / tensor attribute again when it is repeated (:func:`_unchanged`);
    every mapped tensor must be registered (:func:`_registered`); earlier outputs must stay as they were,
    and torch's global generator untouched. ``parameters=False`` leaves out the parameter gradients and the buffers (an input
    with a NaN: a noise module multiplied by alpha = 0 spreads it there, where the reference skips the
    module). The reference runs in float64 on the values rounded to ``dtype``."""
    from fdaref.autodiff import Tensor
    from fdaref.reference import REFERENCE
    torch = _torch()
    t0 = time.perf_counter()
    res = CaseResult(op, label, str(type(torch_module).__name__), "cpu", dtype, PASS, 1)
    callers_rng = torch.random.get_rng_state()
    try:
        state = {k: (v.astype(dtype).astype(np.float64) if v.dtype.kind == "f" else v)
                 for k, v in reference.state_dict().items()}
        reference.load_state_dict(state)
        reference.to(REFERENCE, "cpu")   # the oracle: fdaref.nn builds layers on the fast numpy backend by default
        unmapped = [k for k in state if k not in names]
        if unmapped:
            res.outcome, res.message = FAIL, (f"the mapping gives no torch counterpart for the reference's "
                                              f"{', '.join(unmapped)}, so they cannot be set or compared")
            return res
        torch_module.to(torch.float64 if dtype == "float64" else torch.float32)
        x = x.astype(dtype)
        _warm_up(torch_module, x, seed)
        for key, (path, transposed) in names.items():
            target = resolve(torch_module, path)
            value = state[key].T if transposed else state[key]
            if not _fits(tuple(target.shape), value.shape):
                res.outcome, res.message = FAIL, (f"{path} has shape {tuple(target.shape)}; the reference's {key} "
                                                  f"needs {value.shape}{' (transposed)' if transposed else ''}")
                return res
            assign(torch_module, path, value)
        if prepare is not None:
            prepare()
        rng = np.random.default_rng(seed)
        torch_module.zero_grad(set_to_none=True)
        for path, _ in names.values():   # the warm-up's gradients, also on tensors the module does not register
            resolve(torch_module, path).grad = None
        param_keys = {key for key, _ in reference.named_parameters()}
        updated = [names[key][0] for key in state if key not in param_keys]   # buffers: compared with the reference
        before = _snapshot(torch_module)
        torch.random.manual_seed(int(rng.integers(2 ** 31)))   # not a state a forward's own reseed restores
        rng_state = torch.random.get_rng_state()
        device = _device_of(torch_module)
        res.device = str(device)
        xt = _tensor(x, True, device)
        out = torch_module(xt)
        out_first = _numpy(out)
        r = rng.standard_normal(tuple(out.shape))
        (out * torch.from_numpy(r.astype(dtype)).to(device)).sum().backward()
        xr = Tensor.from_numpy(x.astype(np.float64), REFERENCE, requires_grad=True)
        reference.zero_grad()
        out_r = reference(xr)
        (out_r * REFERENCE.from_numpy(r)).sum().backward()
        diffs = [_compare("output", _numpy(out), out_r.numpy(), dtype),
                 _compare("grad input", _numpy(xt.grad), REFERENCE.to_numpy(xr.grad), dtype)]
        for key, p in reference.named_parameters() if parameters else ():
            path, transposed = names[key]
            g, want = resolve(torch_module, path).grad, REFERENCE.to_numpy(p.grad)
            # None is torch's "no gradient reached it" (a module not evaluated, in eval): zeros of its shape
            got = np.zeros(want.shape, dtype) if g is None else _as_reference(g, transposed, want.shape)
            diffs.append(_compare(f"grad {key} ({path})", got, want, dtype))
        for key, value in reference.state_dict().items() if parameters else ():   # BN's running statistics
            buffer = None if key in param_keys else resolve(torch_module, names[key][0])
            if isinstance(buffer, torch.Tensor) and buffer.is_floating_point():
                diffs.append(_compare(f"buffer {key} ({names[key][0]}) after the step",
                                      _as_reference(buffer, names[key][1], value.shape), value, dtype))
        diffs += _unchanged(torch_module, before, updated, xt, x, "with autograd", lambda: torch_module(xt))
        # inference code may take another path without autograd (an XNOR kernel), or assume a contiguous input
        # torch's other memory format for 4-d (.to() keeps the strides of a dense tensor)
        xn = _torch().from_numpy(noncontiguous(x, "channels_last")).to(device)
        with torch.no_grad():
            out_n = torch_module(xn)
        out_n_first = _numpy(out_n)
        diffs.append(_compare(f"output without autograd, {'channels-last' if x.ndim == 4 else 'column-major'} "
                              f"input", out_n_first, out_r.numpy(), dtype))
        with torch.no_grad():
            diffs += _unchanged(torch_module, before, updated, xn, x, "without autograd", lambda: torch_module(xn))
        diffs += _registered(torch_module, names, param_keys, state)
        diffs.append(_after_new_parameters(torch_module, reference, names, param_keys, x, dtype, rng))
        # results handed out earlier stay as they were (a reused output buffer changes under its caller)
        for name, tensor, first in (("output", out, out_first), ("output without autograd", out_n, out_n_first)):
            if not np.array_equal(_numpy(tensor), first, equal_nan=True):
                diffs.append(OutputDiff(f"{name}, read again after the later calls", False,
                                        problem="changed by a later forward (a reused output buffer)"))
        if not torch.equal(torch.random.get_rng_state(), rng_state):
            diffs.append(OutputDiff("torch's global random generator", False,
                                    problem="drawn from or reseeded by a forward (SEMANTICS has no randomness in "
                                            "a forward; a reseed also changes the caller's own draws)"))
    except Exception:  # noqa: BLE001 - the user's module raising is this case's failure
        res.outcome, res.traceback, res.message = ERROR, traceback.format_exc(), "the check raised"
        return res
    finally:
        torch.random.set_rng_state(callers_rng)   # the check seeds torch's generator; the caller's comes back
    res.diffs = [d.to_dict() for d in diffs]
    bad = [d for d in diffs if not d.ok]
    if bad:
        if all(d.output.startswith("buffer ") for d in bad):
            hint = ["output and gradients match; only buffers differ after the step (batch norm's running "
                    "statistics: its momentum, the unbiased variance of the update)"]
        elif all(d.output.startswith("grad ") for d in bad):
            hint = ["the forward matches; only gradients differ (the surrogate, the noise module's chain rule "
                    "or the weight scale's gradient)"]
        else:
            hint = []
        res.outcome, res.message = FAIL, "\n".join(hint + [d.summary() for d in bad])
    res.seconds = time.perf_counter() - t0
    return res


# Geometries of the layer checks: (C_in, C_out, kernel, stride, padding, bias, input shape). C_in = 70 gives
# the activation module m = 1 and d = 70 rows (BiBench's d // 64 would also be 1 there). Stride 2 with
# padding 1 on an even input tells symmetric padding from a "SAME" port's (bottom / right only); the 5x5
# kernel is past the 3x3 that hand-written layers special-case. 33 output channels and a batch of 5 are
# past the tiles of 16 / 32 channels and 4 samples a kernel may special-case its tail of.
CONV_GEOMETRIES = ((5, 6, 3, 1, 1, True, (2, 5, 6, 6)), (70, 4, 2, 2, 0, False, (1, 70, 5, 5)),
                   (3, 33, 3, 2, 1, True, (5, 3, 8, 8)), (4, 8, 5, 1, 2, False, (1, 4, 7, 6)),
                   (130, 4, 3, 1, 1, False, (1, 130, 4, 4)))   # C_in 130: the activation module's m = 2
# 96 features at batch 1: m = 96 // 64 = 1 where round(96 / 64) = 2, and a batch axis that x.squeeze() drops
LINEAR_GEOMETRIES = ((20, 33, None, None, None, True, (5, 20)), (130, 3, None, None, None, False, (2, 130)),
                     (96, 5, None, None, None, True, (1, 96)))
# Run where the mapping declares the factory takes them (TorchLayerMapping.dilation / .pairs), declined
# otherwise: dilation 2 with padding 2, and a 3x2 kernel with stride (1, 2) and padding (1, 0), where a port
# that swaps h and w or ignores the dilation differs.
EXTRA_CONV_GEOMETRIES = (("dilation", (3, 5, 3, 1, 2, True, (2, 3, 9, 9), 2)),
                         ("pairs", (3, 4, (3, 2), (1, 2), (1, 0), True, (2, 3, 7, 8))))
# The schedule of the layer checks runs over EPOCHS epochs, so that n = 9 + e at epoch e (SEMANTICS 6).
EPOCHS = 10
# ... and the first geometry also trains at the last nonzero alpha of a 10,000-epoch run (2.5e-9; the paper's
# 400 epochs end at 1.5e-6), where a layer that skips its module below an epsilon differs
LONG_RUN = (9998, 10000)


def schedule_points(geometry: int, geometries: int) -> list[tuple[int, bool]]:
    """(epoch, training) of the layer cases of one geometry: training at the first epoch (alpha > 0, n = 9)
    and at the last (alpha = 0, n = 18), eval at both, and training at its share of the epochs in between,
    so that the geometries of a kind together train with every n from 9 to 18."""
    middle = [e for e in range(1, EPOCHS - 1) if (e - 1) % geometries == geometry]
    return [(0, True)] + [(e, True) for e in middle] + [(EPOCHS - 1, True), (0, False), (EPOCHS - 1, False)]


_OPTION_FIELDS = (("zero", "zero"), ("estimator", "estimator"), ("omega", "omega"), ("clip", "clip"),
                  ("eta_kind", "eta"), ("a", "a"), ("k", "k"), ("mode", "scale"), ("pad_value", "pad_value"),
                  ("noise", "noise"))


def check_torch_layer(factory: Callable[..., Any], *, kind: str = "conv2d", mapping: Optional[TorchLayerMapping] = None,
                      preset: Optional[str] = None, dtypes: Iterable[str] = ("float64", "float32"),
                      profile: str = "quick", options: Any = None, device: str = "cpu",
                      raise_on_failure: bool = True) -> SuiteReport:
    """Check the binary layer built by ``factory`` against fdaref's reference layer under ``preset``.

    ``factory(in_channels, out_channels, kernel_size, stride, padding, bias)`` for ``kind="conv2d"``,
    ``factory(in_features, out_features, bias)`` for ``"linear"``; ``mapping`` defaults to the factory's
    ``fdaref_mapping`` attribute. Options the mapping declares and the preset needs otherwise are reported as
    declined (with the reason) instead of being run; eval with alpha > 0 is declined for a layer declaring
    ``eval_noise=True``. ``options`` (a :class:`fdaref.presets.BinaryOptions`) replaces the preset's.
    First the noise modules' initialisation (:func:`_init_case`), then per dtype and geometry: the cases of
    :func:`schedule_points`, and eval at the last epoch with a NaN in the input; for the first geometry
    also training at ``LONG_RUN`` (alpha 2.5e-9); with ``mapping.sign`` also that Function's ``sign`` and
    ``surrogate`` op by op. ``device``: where the layer cases run (``"cuda"``: the layer moved there, its
    inputs made there; a path a layer takes only on one device is checked there only).
    Returns the report; raises AssertionError with it on a failure by default.
    """
    from fdaref import nn
    from fdaref.presets import BinaryOptions, get_preset
    t0 = time.perf_counter()
    if kind not in ("conv2d", "linear"):
        raise InputError(f"layer kind {kind!r}: expected 'conv2d' or 'linear'")
    mapping = mapping or getattr(factory, "fdaref_mapping", None) or TorchLayerMapping()
    options = options or (get_preset(preset) if preset else BinaryOptions())
    label = getattr(factory, "__qualname__", type(factory).__name__)
    decl = Declaration(label, mapping.implements)
    op = f"binary_{kind}"
    report = SuiteReport(label, f"torch {_torch().__version__}", device, ",".join(dtypes), profile, preset)
    declined = [r for r in (decl.supports(op, name, getattr(options, attr)) for name, attr in _OPTION_FIELDS) if r]
    if declined:
        report.add(CaseResult(op, "layer checks", label, "cpu", report.dtype, DECLINED, message="; ".join(declined)))
    else:
        geometries = CONV_GEOMETRIES if kind == "conv2d" else LINEAR_GEOMETRIES
        if kind == "conv2d":
            geometries += tuple(g for flag, g in EXTRA_CONV_GEOMETRIES if getattr(mapping, flag))
            missing = [flag for flag, _ in EXTRA_CONV_GEOMETRIES if not getattr(mapping, flag)]
            if missing:
                report.add(CaseResult(op, "layer: dilation 2 and a 3x2 kernel with stride (1, 2)", label, "cpu",
                                      report.dtype, DECLINED, message=(
                                          f"the mapping does not declare {' / '.join(missing)}=True (a factory that "
                                          f"takes the dilation as a 7th argument / (h, w) pairs), so those "
                                          f"geometries are not run")))
        init = _init_case(factory, kind, mapping, options, op, geometries, nn)
        if init is not None:
            report.add(init)
        for dtype in dtypes:
            for gi, geometry in enumerate(geometries):
                def case(epoch: int, training: bool, **kw: Any) -> CaseResult:
                    return _layer_case(factory, kind, mapping, options, decl, op, dtype, gi, geometry, epoch,
                                       training, nn, device=device, **kw)
                for epoch, training in schedule_points(gi, len(geometries)):
                    report.add(case(epoch, training))
                if gi == 0:
                    report.add(case(LONG_RUN[0], True, epochs=LONG_RUN[1]))
                # sign(NaN) = NaN, seen where the noise module is not evaluated: eval, alpha = 0
                report.add(case(EPOCHS - 1, False, nan=True))
    if mapping.schedule and (mapping.n or mapping.alpha) and preset and not declined:
        for res in _layer_schedule(factory, kind, mapping, preset).results:
            report.add(res)
    if mapping.sign is not None and options.estimator == "fda" and not declined:
        table = torch_sign_table(mapping.sign, zero=options.zero, estimator="fda",
                                 params={"omega": options.omega, "clip": options.clip}, label=f"{label} sign")
        for dtype in dtypes:
            # the sign Function is asked only what the layer runs, so its declined alternatives are not listed,
            # nor the error inputs the table's wrapper, not the Function, accepts (warnings)
            for res in run_wrapped(table, ["sign", "surrogate"], dtype=dtype, profile=profile, preset=preset,
                                   raise_on_failure=False).results:
                if res.outcome not in (DECLINED, WARN):
                    report.add(res)
    report.seconds = time.perf_counter() - t0
    if raise_on_failure and not report.ok():
        raise AssertionError(report.render())
    return report


# a correct uniform initialisation fails the pooled Kolmogorov-Smirnov bound below with probability <= 1e-9
_INIT_P = 1e-9


def _init_draws(factory, kind, mapping, options, geometries, nn, paths, pools, diffs) -> None:
    """Build the layer of each geometry; check each noise weight's bound into ``diffs`` and pool its scaled
    values in ``pools`` (for :func:`_init_case`)."""
    for geometry in geometries:
        cin, cout = geometry[:2]
        ref, mod, _ = _build(factory, kind, geometry, options, nn, np.random.default_rng(0))   # ref: d and m
        state = ref.state_dict()
        for prefix, pair in paths.items():
            if not pair or f"{prefix}1" not in state:
                continue
            d, m = state[f"{prefix}1"].shape
            for index, (path, bound) in enumerate(zip(pair, (1 / np.sqrt(d), 1 / np.sqrt(m)))):
                shape = state[f"{prefix}{index + 1}"].shape
                value = _as_reference(resolve(mod, path), mapping.noise_as_linear, shape).astype(np.float64)
                u = value / bound
                worst = float(np.max(np.abs(u))) if u.size else 0.0
                if not np.all(np.isfinite(u)) or worst > 1 + 2.0 ** -20:
                    diffs.append(OutputDiff(f"{path} at construction ({cin} -> {cout})", False,
                                            problem=f"|value| up to {worst:.4g} x the bound 1/sqrt({d if index == 0 else m})"))
                pools.setdefault(f"{prefix}{index + 1} ({path})", []).append(u.ravel())


def _init_case(factory: Callable[..., Any], kind: str, mapping: TorchLayerMapping, options: Any, op: str,
               geometries: Iterable[tuple], nn: Any) -> Optional[CaseResult]:
    """The noise modules as the factory builds them (SEMANTICS 3): W1 ~ U(-1/sqrt(d), 1/sqrt(d)) and
    W2 ~ U(-1/sqrt(m), 1/sqrt(m)). Every value within its bound, and the values of each of the four weights,
    scaled by their bounds and pooled over the geometries, uniform on [-1, 1] by the Kolmogorov-Smirnov
    statistic (a zero or constant W2, a normal draw, kaiming's sqrt(6 / fan_in) or another fan-in differ).
    None when the layer has no noise modules to map."""
    paths = {"w_noise": mapping.weight_noise, "a_noise": mapping.activation_noise}
    label = "initialisation: noise W1 ~ U(+-1/sqrt(d)), W2 ~ U(+-1/sqrt(m)), as built by the factory"
    pools: dict[str, list[np.ndarray]] = {}
    diffs: list[OutputDiff] = []
    try:
        _init_draws(factory, kind, mapping, options, geometries, nn, paths, pools, diffs)
    except Exception:  # noqa: BLE001 - the user's factory raising, or a path missing at construction
        return CaseResult(op, label, getattr(factory, "__qualname__", "layer"), "cpu", "-", ERROR, 1,
                          message="building the layer or reading its noise weights raised",
                          traceback=traceback.format_exc())
    if not pools:
        return None
    for name, parts in pools.items():
        u = np.sort(np.concatenate(parts))
        cdf = np.clip((u + 1) / 2, 0, 1)
        i = np.arange(1, u.size + 1)
        ks = float(max(np.max(i / u.size - cdf), np.max(cdf - (i - 1) / u.size)))
        allowed = float(np.sqrt(np.log(2 / _INIT_P) / (2 * u.size)))   # the Dvoretzky-Kiefer-Wolfowitz bound
        diffs.append(OutputDiff(f"{name} / bound over {u.size} values: uniform on [-1, 1]", ks <= allowed,
                                problem="" if ks <= allowed else
                                f"Kolmogorov-Smirnov distance {ks:.3g} > {allowed:.3g} (mean {np.mean(u):.3g}, "
                                f"std {np.std(u):.3g}; uniform: 0, 0.577)"))
    res = CaseResult(op, label, getattr(factory, "__qualname__", "layer"), "cpu", "-", PASS, 1,
                     diffs=[d.to_dict() for d in diffs])
    bad = [d for d in diffs if not d.ok]
    if bad:
        res.outcome, res.message = FAIL, "\n".join(d.summary() for d in bad)
    return res


def _plant_weight_probes(w: np.ndarray, rng: np.random.Generator, options: Any) -> None:
    """Weights past the clip and past 1 (a port clamping W, or sign(hardtanh(W)), loses their gradient; an
    optimizer does move weights there), the clip's neighbours and tiny ones (a threshold for "zero")."""
    from .. import probes
    dtype = w.dtype.name
    values = [3.0, -3.0, 1.5, -1.5, 1e-7, -1e-7] + probes.boundary_values(float(options.clip or 1.0), dtype) \
        + probes.tiny_values(dtype)[2:]
    picks = rng.choice(w.size, size=min(w.size // 4, len(values)), replace=False)
    w.flat[picks] = np.asarray(values[:len(picks)], np.float64)


def _plant_far_values(x: np.ndarray, rng: np.random.Generator, omega: float, inf: bool) -> None:
    """omega x near 2 pi, 3 pi and 10 (past the first period: a port cutting the series off there differs)
    and, with ``inf``, +-inf (where the module is not evaluated: z = sign(t) = +-1 there)."""
    values = [2 * np.pi / omega * (1 + 1e-3), -3 * np.pi / omega * (1 - 1e-3), 10 / omega, -10 / omega]
    values += [np.inf, -np.inf] if inf else []
    free = np.flatnonzero(np.isfinite(x) & (np.abs(x) < 4))   # leave the probes planted before
    count = min(free.size // 4, len(values))
    x.flat[rng.choice(free, size=count, replace=False)] = values[:count]


def _layer_schedule(factory: Callable[..., Any], kind: str, mapping: TorchLayerMapping, preset: str) -> SuiteReport:
    """The layer's own schedule method (``mapping.schedule``) through :func:`~.schedules.check_schedule`: n and
    alpha read back at ``mapping.n`` / ``mapping.alpha`` after each call, for every run length it sweeps."""
    from fdaref.presets import get_preset
    from .schedules import check_schedule
    from fdaref import nn
    geometry = (CONV_GEOMETRIES if kind == "conv2d" else LINEAR_GEOMETRIES)[0]
    layer = _build(factory, kind, geometry, get_preset(preset), nn, np.random.default_rng(0))[1]

    def read(path: Optional[str]) -> Optional[Callable[[int, int], Any]]:
        if not path:
            return None

        def value(epoch: int, epochs: int) -> Any:
            getattr(layer, mapping.schedule)(epoch, epochs)
            v = resolve(layer, path)
            return v.detach().clone() if isinstance(v, _torch().Tensor) else v
        value.__qualname__ = f"{getattr(factory, '__qualname__', 'layer')}.{mapping.schedule} -> {path}"
        return value
    uses_n = get_preset(preset).uses_n   # an estimator without n (the release's ste): its n is not the schedule's
    return check_schedule(read(mapping.n) if uses_n else None, read(mapping.alpha), preset=preset,
                          raise_on_failure=False)


def _build(factory: Callable[..., Any], kind: str, geometry: tuple, options: Any, nn: Any,
           rng: np.random.Generator) -> tuple[Any, Any, str]:
    """(the reference layer, the factory's layer, a description) of one geometry: (C_in, C_out, kernel,
    stride, padding, bias, input shape[, dilation]); a dilation other than 1 is the factory's 7th argument."""
    cin, cout, k, stride, padding, bias, _, *rest = geometry
    if kind != "conv2d":
        return (nn.BinaryLinear(cin, cout, bias=bias, options=options, rng=rng), factory(cin, cout, bias),
                f"{cin} -> {cout}{', bias' if bias else ''}")
    dilation = rest[0] if rest else 1
    ref = nn.BinaryConv2d(cin, cout, k, stride, padding, dilation, bias=bias, options=options, rng=rng)
    mod = factory(cin, cout, k, stride, padding, bias, *((dilation,) if dilation != 1 else ()))
    kh, kw = (k, k) if isinstance(k, int) else k
    desc = (f"{cin} -> {cout}, {kh}x{kw}, stride {stride}, pad {padding}"
            f"{f', dilation {dilation}' if dilation != 1 else ''}{', bias' if bias else ''}")
    return ref, mod, desc


def _layer_case(factory, kind, mapping, options, decl, op, dtype, gi, geometry, epoch, training, nn,
                nan: bool = False, epochs: int = EPOCHS, device: str = "cpu") -> CaseResult:
    """One layer case. The input holds zeros, the probes of :func:`~..layers.plant_probes` (signed zeros,
    subnormals, the clip and its neighbours, |omega x| near pi), an all-zero row of the activation module
    and, with ``nan``, one NaN; the weight a zero and an all-zero filter, W1 a zero column (m > 1). A NaN
    case compares the output and the input gradient only."""
    from ..layers import plant_probes
    bias, x_shape = geometry[5], geometry[6]
    ref, mod, desc = _build(factory, kind, geometry, options, nn, np.random.default_rng(100 + gi))
    mod = mod.to(device)
    ref.set_schedule(epoch, epochs)
    n, alpha = ref.params.get("n"), ref.alpha
    label = (f"layer: {desc}; epoch {epoch}/{epochs} (n={n}, alpha={alpha:.4g}), {'train' if training else 'eval'}"
             f"{', input with a NaN' if nan else ''}")
    if not training and alpha != 0:
        reason = decl.supports(op, "eval_noise", False)
        if reason:
            return CaseResult(op, label, type(mod).__name__, "cpu", dtype, DECLINED, message=reason)
    names = {key: value for key, value in mapping.names().items() if key != "bias" or bias}
    w = ref.weight.numpy().copy()
    w_rng = np.random.default_rng(300 + gi)
    _plant_weight_probes(w, w_rng, options)
    w.flat[0] = 0.0                      # sign(0) of a weight, and of input zeros below
    w[1] = 0.0                           # a dead filter: scale 0 (a port dividing by it differs)
    ref.weight.data = w
    for key in ("w_noise1", "a_noise1"):   # a hidden unit at exactly 0 for every row: relu'(0) = 0 matters
        w1 = getattr(ref, key, None)
        if w1 is not None and w1.shape[1] > 1:
            w1.data = np.concatenate([w1.numpy()[:, :-1], np.zeros_like(w1.numpy()[:, -1:])], axis=1)
    x_rng = np.random.default_rng(200 + gi + 10 * epoch)
    x = x_rng.standard_normal(x_shape).astype(dtype)
    x.flat[::7] = 0.0
    plant_probes(x, x_rng, zero_clip=options.clip, omega=options.omega)
    _plant_far_values(x, x_rng, options.omega, inf=nan)
    if kind == "conv2d":                 # a zero row of the activation module (relu'(0) again): one pixel's channels
        x[0, :, 0, 0] = 0.0
    elif len(x) > 1:                     # one sample's features
        x[-1] = 0.0
    if nan:
        x.flat[x_rng.integers(x.size)] = np.nan
    ref.train(training)

    def prepare() -> None:
        mod.train(training)
        if mapping.schedule:
            getattr(mod, mapping.schedule)(epoch, epochs)
            return
        if mapping.n and n is not None:
            assign(mod, mapping.n, int(n))
        if mapping.alpha:
            assign(mod, mapping.alpha, float(alpha))
    res = compare_with_reference(label, op, mod, ref, names, x, dtype, seed=gi, prepare=prepare, parameters=not nan)
    if res.failed:
        res.reproduction = _layer_reproduction(factory, kind, options, dtype)
    return res


def _layer_reproduction(factory: Any, kind: str, options: Any, dtype: str) -> str:
    module, name = getattr(factory, "__module__", "YOUR_MODULE"), getattr(factory, "__qualname__", "YOUR_FACTORY")
    return ("from fdaref.conformance.adapters import check_torch_layer\n"
            f"from fdaref.presets import BinaryOptions\nfrom {module} import {name}\n"
            f"print(check_torch_layer({name}, kind={kind!r}, dtypes=({dtype!r},), raise_on_failure=False,\n"
            f"                        options=BinaryOptions(**{options.to_dict()!r})).render())")


def _eval_leaves_state(model: Any, x: np.ndarray, dtype: str) -> CaseResult:
    """After ``model.eval()`` a forward changes no parameter or buffer: batch norm left in training mode (a
    block whose ``train()`` does not reach it) updates its running statistics there. Needs no reference, so
    it holds where comparing eval outputs cannot (see :func:`check_torch_model`)."""
    torch = _torch()
    res = CaseResult("model", "eval: a forward leaves parameters and buffers as they were", type(model).__name__,
                     "cpu", dtype, PASS, 1)
    mode = model.training
    try:
        model.eval()
        before = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
        with torch.no_grad():
            model(_tensor(x, device=_device_of(model)))
        changed = [k for k, v in model.state_dict(keep_vars=True).items()
                   if k.rpartition(".")[2] not in _TORCH_COUNTERS and not _same(before.get(k), v.detach())]
        if changed:
            res.outcome = FAIL
            res.message = (f"changed by a forward in eval: {', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''} "
                           f"(a module still in training mode: model.eval() must reach every submodule)")
    except Exception:  # noqa: BLE001 - the user's model raising is this case's failure
        res.outcome, res.traceback, res.message = ERROR, traceback.format_exc(), "the eval forward raised"
    finally:
        model.train(mode)
    return res


def check_torch_model(model: Any, reference: Any, names: Mapping[str, str], x_shape: tuple[int, ...], *,
                      transposed: Iterable[str] = (), schedule: Optional[Callable[[Any, Any], None]] = None,
                      dtypes: Iterable[str] = ("float64",), training: bool = True, seed: int = 0,
                      raise_on_failure: bool = True) -> SuiteReport:
    """A whole torch model against an fdaref reference model (e.g. ``fdaref.nn.resnet20(...)``).

    ``names`` maps every reference state name (parameters and buffers) to the torch model's dotted path;
    those in ``transposed`` are stored transposed there (``nn.Linear`` noise weights). ``schedule(model,
    reference)`` may set n / alpha on both. Compares as :func:`compare_with_reference` does.

    Known limit: with ``training=False`` the later layers binarize values computed from exact +-s sums, and
    a correct model whose sums round to +-1e-17 in another order flips those signs; this check has no sign
    band for that (the layer checks of :mod:`fdaref.conformance.layers` do), so it can fail a correct model
    in eval. Check eval layer by layer (:func:`check_torch_layer`) instead.
    """
    report = SuiteReport(type(model).__name__, f"torch {_torch().__version__}", "cpu", ",".join(dtypes), "adapter", None)
    mapped = {k: (v, k in set(transposed)) for k, v in names.items()}
    for dtype in dtypes:
        x = np.random.default_rng(seed).standard_normal(x_shape)
        reference.train(training)
        model.train(training)

        def prepare() -> None:
            if schedule is not None:
                schedule(model, reference)
        report.add(compare_with_reference(f"model: {type(model).__name__}, input {list(x_shape)}, "
                                          f"{'train' if training else 'eval'}", "model", model, reference, mapped,
                                          x, dtype, seed=seed, prepare=prepare))
        report.add(_eval_leaves_state(model, x.astype(dtype), dtype))
    if raise_on_failure and not report.ok():
        raise AssertionError(report.render())
    return report
