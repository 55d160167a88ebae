"""Layer-level and end-to-end checks through the engine (:mod:`fdaref.autodiff`, :mod:`fdaref.nn`).

- ``binary conv layer``: a BinaryConv2d with both noise modules, forward + backward on given inputs;
- ``resnet20 basic block``: a downsampling binary BasicBlock in training mode (BN batch statistics);
- ``end-to-end``: the same model, initial weights and batches for k SGD steps on the backend and on the
  reference: loss, every gradient, the updated parameters and BN buffers are compared at every step.

The backend side runs in its dtype; the reference side in float64 on float64 copies of the backend's state
(re-synchronised before every step, so each step is checked from the same point). Signs taken of computed
activations may differ where the reference value lies within ``SIGN_BAND`` of 0: those flips are counted
and reported, and the reference then follows the backend's sign at exactly those elements so the rest of the
comparison stays meaningful; a sign mismatch outside the band is a failure.
"""
from __future__ import annotations

import time
import traceback
from typing import Any, Callable, Optional

import numpy as np

from .compare import OutputDiff, compare_output
from .capabilities import binary_options_declined
from .report import DECLINED, ERROR, FAIL, NOT_PROVIDED, PASS, CaseResult
from .tolerances import LAYER_TOL, SIGN_BAND

NEEDED = ("quantize_forward", "quantize_backward", "weight_scale", "conv2d_forward", "conv2d_backward",
          "batch_norm_forward", "batch_norm_backward", "prelu_forward", "prelu_backward")


def _engine():
    from fdaref import autodiff as ad
    from fdaref import functions as F
    from fdaref import nn
    return ad, F, nn


def _scale_leaking_class():
    """BinaryConv2d with the weight scale NOT detached: the bug the layer check must catch."""
    ad, F, nn = _engine()

    class ScaleLeakingBinaryConv2d(nn.BinaryConv2d):
        def binary_inputs(self, x):
            xq = self._quantize(x, self.a_noise1, self.a_noise2, "activation")
            wq = self._quantize(self.weight, self.w_noise1, self.w_noise2, "weight")
            w = self.weight
            sgn = F.constant(w.ops.sign(w.data, 0.0), w)
            k = int(np.prod(w.shape[1:]))
            ones = F.constant(w.ops.from_numpy(np.ones((1, k), dtype=w.numpy().dtype), w.device), w)
            s = F.linear((w * sgn).reshape(w.shape[0], k), ones) / float(k)   # differentiable mean |W|
            return xq, wq * s.reshape(w.shape[0], 1, 1, 1)

    return ScaleLeakingBinaryConv2d


def __getattr__(name: str) -> Any:  # lazy: the engine is imported only when used
    if name == "ScaleLeakingBinaryConv2d":
        return _scale_leaking_class()
    raise AttributeError(name)


class _KinkSync:
    """Records the backend's inputs to every kink (the sign of the binary layers, PReLU and ReLU at 0, the
    max-pool argmax) and makes the reference follow them where a rounding-level difference crossed it.

    A crossing counts (``flips[kind]``) when the two sides decide differently and the reference value lies
    within the band (``SIGN_BAND`` times the tensor's magnitude) of the kink: of 0 for sign / PReLU / ReLU,
    of the backend's value for a max-pool tie. The reference then takes the backend's value at exactly those
    elements. A different decision outside the band is a failure (``bad``).
    """

    KINDS = ("sign", "prelu", "relu", "max_pool")

    def __init__(self, dtype: str, zero: float):
        self.dtype, self.zero = dtype, zero
        self.recorded: dict[tuple[str, int], list[np.ndarray]] = {}
        self.flips = {kind: 0 for kind in self.KINDS}
        self.bad: list[str] = []

    @property
    def sign_flips(self) -> int:
        return self.flips["sign"]

    def attach(self, model: Any, side: str) -> None:
        _, _, nn = _engine()
        for i, layer in enumerate(nn.binary_layers(model)):
            self._hook(layer, "binary_inputs", ("sign", i), side)
        kinds = (("prelu", nn.PReLU), ("relu", nn.ReLU), ("max_pool", nn.MaxPool2d))
        counters = {kind: 0 for kind, _ in kinds}
        for m in model.modules():
            for kind, cls in kinds:
                if type(m) is cls:  # AvgPool2d derives from MaxPool2d and has no kink
                    self._hook(m, "forward", (kind, counters[kind]), side)
                    counters[kind] += 1

    def _hook(self, module: Any, method: str, key: tuple[str, int], side: str) -> None:
        original = getattr(module, method)

        def hooked(x, _orig=original, _key=key, _module=module):
            if side == "backend":
                self.recorded.setdefault(_key, []).append(np.asarray(x.numpy(), np.float64))
                return _orig(x)
            return _orig(self._follow(x, _key, _module))
        setattr(module, method, hooked)

    def _decisions(self, kind: str, a: np.ndarray, module: Any) -> np.ndarray:
        if kind == "sign":
            return np.where(a > 0, 1.0, np.where(a < 0, -1.0, self.zero))
        if kind in ("prelu", "relu"):
            return a > 0
        from fdaref.reference import REFERENCE  # which element each window picks (first maximal one)
        return REFERENCE.max_pool2d_backward(np.ones(REFERENCE.max_pool2d_forward(
            a, kernel=module.kernel, stride=module.stride, padding=module.padding).shape), a,
            kernel=module.kernel, stride=module.stride, padding=module.padding)

    def _follow(self, x: Any, key: tuple[str, int], module: Any) -> Any:
        _, F, _ = _engine()
        kind, index = key
        queue = self.recorded.get(key) or []
        if not queue:
            return x
        xb = queue.pop(0)
        xr = np.asarray(x.numpy(), np.float64)
        if xb.shape != xr.shape:
            self.bad.append(f"{kind} {index}: input shape {xb.shape} vs {xr.shape}")
            return x
        band = SIGN_BAND[self.dtype] * max(1.0, float(np.max(np.abs(xr))) if xr.size else 1.0)
        near = (np.abs(xb - xr) if kind == "max_pool" else np.abs(xr)) <= band
        decided = self._decisions(kind, xb, module)
        crossed = np.zeros(xr.shape, dtype=bool)
        for _ in range(8):  # a max-pool window with 3+ near-tied elements may need a second pass
            differ = decided != self._decisions(kind, np.where(crossed, xb, xr), module)
            if np.any(differ & ~near):
                idx = tuple(int(v) for v in np.argwhere(differ & ~near)[0])
                self.bad.append(f"{'binary layer' if kind == 'sign' else kind} {index}: the {kind} decision "
                                f"differs at {idx}: backend input {xb[idx]!r}, reference {xr[idx]!r} (outside the "
                                f"band {band:.3g})")
                break
            if not np.any(differ & ~crossed):
                break
            crossed |= differ
        if not np.any(crossed):
            return x
        self.flips[kind] += int(crossed.sum())
        delta = np.where(crossed, xb - xr, 0.0)
        return x + F.constant(x.ops.from_numpy(delta.astype(x.numpy().dtype), x.device), x)


class _ReductionBounds:
    """The reference op table, recording for each PReLU slope the sum of |g x| its gradient reduces over:
    a slope gradient is one sum over the whole activation, so its rounding scales with that sum, not with
    the (possibly cancelled) result. Keyed by the slope array's id (``bound_of`` maps parameters)."""

    def __init__(self) -> None:
        from fdaref.reference import REFERENCE
        self._ref = REFERENCE
        self.slope_bounds: dict[int, np.ndarray] = {}

    def __getattr__(self, item: str) -> Any:
        return getattr(self._ref, item)

    def prelu_backward(self, g: np.ndarray, x: np.ndarray, slope: np.ndarray):
        _, bound = self._ref.prelu_backward(np.abs(g), -np.abs(x), slope)
        key = id(slope)
        self.slope_bounds[key] = self.slope_bounds.get(key, 0.0) + np.abs(bound)
        return self._ref.prelu_backward(g, x, slope)

    def bounds(self, model: Any) -> dict[str, float]:
        """{"grad <parameter name>": bound} for the parameters a recorded prelu_backward reduced into."""
        out = {}
        for name, t in model.named_parameters():
            b = self.slope_bounds.get(id(t.data))
            if b is not None:
                out[f"grad {name}"] = float(np.max(b))
        return out

    def reset(self) -> None:
        self.slope_bounds.clear()


def _compare(name: str, got: Any, ref: Any, dtype: str, bound: float = 0.0) -> OutputDiff:
    ref = np.asarray(ref, np.float64)
    mag = max(float(np.max(np.abs(ref))) if ref.size else 0.0, bound, 1e-30)
    return compare_output(name, None if got is None else np.asarray(got), ref, LAYER_TOL[dtype], mag, dtype)


def _grads(model: Any) -> dict[str, Optional[np.ndarray]]:
    return {f"grad {k}": (None if t.grad is None else np.asarray(t.ops.to_numpy(t.grad)))
            for k, t in model.named_parameters()}


def _pair_models(make: Callable[[Any], Any], backend: Any, device: str, dtype: str,
                 backend_make: Optional[Callable[[Any], Any]] = None, ref_ops: Any = None) -> tuple[Any, Any]:
    from fdaref.reference import REFERENCE
    mb = (backend_make or make)(np.dtype(dtype))
    state = mb.state_dict()
    mb.to(backend, device)
    mr = make(np.float64)
    mr.load_state_dict({k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in state.items()})
    mr.to(ref_ops or REFERENCE, "cpu")
    return mb, mr


def _forward_backward(model: Any, x: np.ndarray, r: np.ndarray, ops: Any, device: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    ad, _, _ = _engine()
    xt = ad.Tensor.from_numpy(x, ops, device, requires_grad=True)
    model.zero_grad()
    out = model(xt)
    loss = (out * ops.from_numpy(r.astype(x.dtype), device)).sum()
    loss.backward()
    return np.asarray(out.numpy()), (None if xt.grad is None else np.asarray(ops.to_numpy(xt.grad)))


def plant_probes(x: np.ndarray, rng: np.random.Generator, zero_clip: Optional[float], omega: float) -> None:
    """Put probes (probes.py) at random positions of a layer input: subnormals and the smallest normal, the
    clip (or |x| = 1) and 1-3 ulps either side, and omega x = k pi +- small distances for small k."""
    from .probes import boundary_values, kpi_points, tiny_values
    dtype = x.dtype.name
    values = tiny_values(dtype) + boundary_values(float(zero_clip or 1.0), dtype)
    for k in (-1, 1):
        values += kpi_points(k, omega, dtype)[:7] + kpi_points(k, omega, dtype)[-8:]
    picks = rng.choice(x.size, size=min(x.size // 4, len(values)), replace=False)
    x.flat[picks] = np.asarray(values[:len(picks)], np.float64).astype(x.dtype)


def check_module(label: str, make: Callable[[Any], Any], x_shape: tuple[int, ...], backend: Any, device: str,
                 dtype: str, zero: float, seed: int = 0,
                 backend_make: Optional[Callable[[Any], Any]] = None, probe_options: Any = None) -> CaseResult:
    """One forward + backward of a module built by ``make(dtype)`` on given inputs; compares output, input
    gradient, every parameter gradient and every buffer."""
    from fdaref.reference import REFERENCE
    t0 = time.perf_counter()
    res = CaseResult(label.split(":")[0], f"layer: {label}", str(backend.name), device, dtype, PASS, 1)
    try:
        ref_ops = _ReductionBounds()
        mb, mr = _pair_models(make, backend, device, dtype, backend_make, ref_ops)
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(x_shape).astype(dtype)
        x.flat[:: max(1, x.size // 7)] = 0.0
        if probe_options is not None:
            plant_probes(x, rng, zero_clip=probe_options.clip, omega=probe_options.omega)
        probe = make(np.float64).to(REFERENCE)  # a throwaway copy: running statistics of mr stay untouched
        out_shape = probe(_engine()[0].Tensor.from_numpy(x.astype(np.float64), REFERENCE)).shape
        r = rng.standard_normal(out_shape)
        sync = _KinkSync(dtype, zero)
        sync.attach(mb, "backend")
        sync.attach(mr, "reference")
        yb, gxb = _forward_backward(mb, x, r, backend, device)
        yr, gxr = _forward_backward(mr, x.astype(np.float64), r, ref_ops, "cpu")
        diffs = [_compare("output", yb, yr, dtype), _compare("grad input", gxb, gxr, dtype)]
        gb, gr = _grads(mb), _grads(mr)
        bounds = ref_ops.bounds(mr)
        diffs += [_compare(k, gb[k], gr[k], dtype, bounds.get(k, 0.0)) for k in gr]
        sb, sr = mb.state_dict(), mr.state_dict()
        diffs += [_compare(f"state {k}", sb[k], sr[k], dtype) for k in sr if "running" in k]
    except Exception:  # noqa: BLE001
        res.outcome, res.traceback, res.message = ERROR, traceback.format_exc(), "the layer check raised"
        return res
    _finish(res, diffs, sync, t0)
    if res.outcome == FAIL and any(not d.ok and d.output.startswith("grad") and "weight" in d.output for d in diffs):
        res.message += _diagnose_leak(make, backend_make, x, r, dtype, gb)
    return res


def _diagnose_leak(make, backend_make, x, r, dtype, gb) -> str:
    """Does the backend's weight gradient match the one with the weight scale NOT detached?"""
    try:
        from fdaref.reference import REFERENCE
        _, _, nn = _engine()
        leak = _scale_leaking_class()

        def leaky(dt):
            model = make(dt)
            for name, m in list(model.named_modules()):
                if isinstance(m, nn.BinaryConv2d):
                    m.__class__ = leak
            return model
        _, ml = _pair_models(make, REFERENCE, "cpu", dtype, None)
        ml2 = leaky(np.float64).to(REFERENCE)
        ml2.load_state_dict(ml.state_dict())
        _forward_backward(ml2, x.astype(np.float64), r, REFERENCE, "cpu")
        gl = _grads(ml2)
        hits = [k for k in gl if "weight" in k and gb.get(k) is not None and gl[k] is not None
                and np.allclose(gb[k], gl[k], rtol=1e-4, atol=1e-6 * (np.max(np.abs(gl[k])) + 1e-30))]
        if hits:
            return ("\ndiagnosis: " + ", ".join(hits) + " match(es) the gradient with the weight scale NOT detached: "
                    "the scale's gradient leaks into W (SEMANTICS 5: no gradient flows through s)")
    except Exception:  # noqa: BLE001 - a diagnosis is best effort
        pass
    return ""


def _finish(res: CaseResult, diffs: list[OutputDiff], sync: _KinkSync, t0: float) -> None:
    res.diffs = [d.to_dict() for d in diffs]
    res.sign_flips, res.sign_band = sync.sign_flips, SIGN_BAND[res.dtype]
    res.kink_crossings = {kind: n for kind, n in sync.flips.items() if kind != "sign" and n}
    bad = [d for d in diffs if not d.ok]
    if bad or sync.bad:
        res.outcome = FAIL
        res.message = "\n".join(sync.bad + [d.summary() for d in bad])
    res.seconds = time.perf_counter() - t0


def check_end_to_end(backend: Any, device: str, dtype: str, *, options: Any, steps: int = 2, seed: int = 0,
                     model: str = "tiny") -> CaseResult:
    """k SGD steps (momentum, weight decay) on the same model, init and batches; per step the loss, every
    gradient and the updated parameters and buffers are compared, the reference re-synchronised to the
    backend's state before each step."""
    ad, F, nn = _engine()
    from fdaref.optim import SGD
    from fdaref.reference import REFERENCE
    t0 = time.perf_counter()
    res = CaseResult("end-to-end", f"end-to-end: {model}, {steps} SGD steps", str(backend.name), device, dtype, PASS, steps)

    def make(dt):
        if model == "resnet20":
            return nn.resnet20(in_channels=1, num_classes=5, options=options, seed=seed, dtype=dt)
        return nn.tiny(in_channels=1, num_classes=5, options=options, seed=seed, dtype=dt, width=4)

    diffs: list[OutputDiff] = []
    sync = _KinkSync(dtype, options.zero)
    try:
        ref_ops = _ReductionBounds()
        mb, mr = _pair_models(make, backend, device, dtype, ref_ops=ref_ops)
        sync.attach(mb, "backend")
        sync.attach(mr, "reference")
        opt_b = SGD(mb.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        rng = np.random.default_rng(seed + 1)
        size = 8
        for step in range(steps):
            for layer in nn.binary_layers(mb) + nn.binary_layers(mr):
                # epochs of a long run: alpha stays > 0, so the quantized values are continuous and a
                # float32 conv of them has no exact ties / zeros for max pool and PReLU to decide on
                layer.set_schedule(step, 100)
            x = rng.standard_normal((4, 1, size, size)).astype(dtype)
            y = rng.integers(0, 5, 4).astype(np.int64)
            state = mb.state_dict()
            mr.load_state_dict({k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in state.items()})
            losses = []
            grads = []
            ref_ops.reset()
            for m, ops, dev, xx in ((mb, backend, device, x), (mr, ref_ops, "cpu", x.astype(np.float64))):
                m.train()
                m.zero_grad()
                loss = F.cross_entropy(m(ad.Tensor.from_numpy(xx, ops, dev)), ops.from_numpy(y, dev))
                loss.backward()
                losses.append(np.asarray(loss.numpy()))
                grads.append(_grads(m))
            diffs.append(_compare(f"step {step} loss", losses[0], losses[1], dtype))
            bounds = ref_ops.bounds(mr)
            diffs += [_compare(f"step {step} {k}", grads[0][k], grads[1][k], dtype, bounds.get(k, 0.0))
                      for k in grads[1]]
            # the update: the reference applies SGD to the same state with its float64 gradients
            opt_r = SGD(mr.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
            sd = opt_b.state_dict()
            sd["state"] = [{k: np.asarray(v, np.float64) for k, v in st.items()} for st in sd["state"]]
            opt_r.load_state_dict(sd)
            opt_b.step()
            opt_r.step()
            sb, sr = mb.state_dict(), mr.state_dict()
            diffs += [_compare(f"step {step} after update {k}", sb[k], sr[k], dtype) for k in sr]
    except Exception:  # noqa: BLE001
        res.outcome, res.traceback, res.message = ERROR, traceback.format_exc(), "the end-to-end check raised"
        return res
    _finish(res, diffs, sync, t0)
    return res


LAYER_PRESETS = ("paper", "bibench", "release")  # tried in this order when no preset is given


def _supported_options(backend: Any, preset: Optional[str], default: Any, get_preset: Any) -> tuple[Any, list]:
    """The options of the layer checks: the preset's, or without one the first of the default (paper) and
    LAYER_PRESETS whose every value the backend supports (capabilities); (None, declined) if none is."""
    candidates = [get_preset(preset)] if preset else [default()] + [get_preset(p) for p in LAYER_PRESETS]
    first_declined: list = []
    for options in candidates:
        declined = binary_options_declined(backend, options)
        if not declined:
            return options, []
        first_declined = first_declined or declined
    return None, first_declined


def layer_checks(backend: Any, device: str, dtype: str, *, profile: Any, preset: Optional[str] = None,
                 spec: Optional[str] = None, conv_class: Any = None, control: Any = None) -> list[CaseResult]:
    """The layer-level and end-to-end checks (skipped as "not provided" when the backend lacks an op)."""
    missing = [op for op in NEEDED + ("linear_forward", "linear_backward", "cross_entropy_forward",
                                      "cross_entropy_backward", "max_pool2d_forward", "max_pool2d_backward",
                                      "avg_pool2d_forward", "avg_pool2d_backward")
               if not callable(getattr(backend, op, None)) or backend.refuses(op, device, dtype)]
    name = str(backend.name)
    if missing:
        return [CaseResult("layers", "layer and end-to-end checks", name, device, dtype, NOT_PROVIDED,
                           message=f"needs {', '.join(missing)}: not provided by {name} (or refused)")]
    try:
        ad, F, nn = _engine()
        from fdaref.presets import BinaryOptions, get_preset
    except ImportError as exc:
        return [CaseResult("layers", "layer and end-to-end checks", name, device, dtype, NOT_PROVIDED,
                           message=f"the engine is not available: {exc}")]
    options, declined = _supported_options(backend, preset, BinaryOptions, get_preset)
    if options is None:
        return [CaseResult("layers", "layer and end-to-end checks", name, device, dtype, DECLINED,
                           message="the backend declines " + "; ".join(
                               f"{d.op} {d.option}={d.value!r} ({d.reason})" for d in declined))]
    conv_cls = conv_class or nn.BinaryConv2d

    def conv_layer(cls):
        return lambda dt: cls(5, 6, 3, 1, 1, bias=True, options=options, rng=np.random.default_rng(3), dtype=dt)

    def block(dt):
        return nn.BasicBlock(4, 6, 2, binary=True, options=options, rng=np.random.default_rng(4), dtype=dt)

    checks = [
        ("binary_conv2d", lambda: check_module(
            "binary_conv2d: BinaryConv2d(5 -> 6, 3x3, pad 1, bias) with noise modules", conv_layer(nn.BinaryConv2d),
            (2, 5, 5, 6), backend, device, dtype, options.zero, backend_make=conv_layer(conv_cls),
            probe_options=options)),
        ("resnet20_block", lambda: check_module(
            "resnet20_block: BasicBlock(4 -> 6, stride 2, option-A shortcut), training", block, (3, 4, 6, 6),
            backend, device, dtype, options.zero, probe_options=options)),
        ("end-to-end", lambda: check_end_to_end(backend, device, dtype, options=options, steps=profile.e2e_steps,
                                                model="resnet20" if profile.name == "thorough" else "tiny")),
    ]
    from .isolation import guarded_call
    limits = control.limits if control is not None else None
    out = []
    for i, (op, run) in enumerate(checks):
        key = f"layers#{i}"
        if control is not None and key in control.skip:
            continue
        if control is not None:
            control.begin(key, limits.layer)
        t0 = time.perf_counter()
        res, problem = guarded_call(run, None if limits is None else limits.layer)
        if problem:
            res = CaseResult(op, "layer check", name, device, dtype, ERROR, 1, message=problem.splitlines()[0],
                             traceback=problem, seconds=time.perf_counter() - t0)
        out.append(res)
    return out
