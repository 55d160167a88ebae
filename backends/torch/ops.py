"""The op table (:class:`fdaref.optable.OpTable`) implemented with torch, on the CPU and on CUDA.

Every op is a pure function of torch tensors: inputs are never written, no state is kept between calls. The
math is torch's; fdaref is imported only for its validation helpers and constants (estimator defaults,
SEMANTICS choices), never for computing a result.

Precision on CUDA: TF32 would make conv2d and matmul differ from the float32 reference by ~1e-3, so every
conv / matmul op runs inside :func:`ieee_fp32` (TF32 off) unless ``TorchBackend(allow_tf32=True)`` is
asked for. :meth:`TorchBackend.conformance_context` turns TF32 off for a whole block (the conformance suite
uses it), and ``NVIDIA_TF32_OVERRIDE=0`` does the same for a process.

The fda surrogate is the fused closed form of :mod:`.fused`: by default the torch.compile kernel on CUDA and
the eager in-place kernel on the CPU (``FDAREF_TORCH_COMPILE=0/1/auto`` overrides, see
:func:`fused.use_compiled`). On the CPU, where numba is installed, the float32 surrogate times g runs as a
fused loop and the float32 activation quantizer (noise module, eta sin, fda) as one fused pass per image
(:mod:`.cpu_loops`; ``FDAREF_TORCH_LOOPS=0`` turns them off).
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fdaref.estimators import get_estimator
from fdaref.noise import ETAS, LAYOUTS
from fdaref.optable import OP_NAMES, PLUMBING
from fdaref.scale import SCALE_MODES
from fdaref.binarize import ZERO_CONVENTIONS

from . import cpu_loops, fused

Tensor = torch.Tensor
Pair = tuple[int, int]

_FLOAT_DTYPES = (torch.float32, torch.float64)
_DTYPE_NAMES = {"float32": torch.float32, "float64": torch.float64}


# ---------------------------------------------------------------------------------------------------
# checks and small helpers

def _check_float(x: Any, name: str, ndim: Optional[tuple[int, ...]] = None) -> Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of float32 or float64, got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {x.dtype}")
    if ndim is not None and x.dim() not in ndim:
        raise ValueError(f"{name}: expected {' or '.join(map(str, ndim))} dimensions, got shape {tuple(x.shape)}")
    return x


def _check_bias(b: Optional[Tensor], outputs: int) -> None:
    """A bias is None or of shape (outputs,): torch would broadcast a (1,) bias silently."""
    if b is not None and tuple(b.shape) != (outputs,):
        raise ValueError(f"b: expected shape ({outputs},) (one per output), got {tuple(b.shape)}")


def _check_features(x: Tensor, w: Tensor) -> None:
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"linear: x has {x.shape[1]} features, w expects {w.shape[1]}")


def _check_smoothing(label_smoothing: float) -> None:
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"label_smoothing: expected a number in [0, 1], got {label_smoothing!r}")


def _check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _pair(value: Any, name: str) -> Pair:
    items = (value, value) if isinstance(value, int) else tuple(value)
    if len(items) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
        raise ValueError(f"{name}: expected a pair of ints (height, width), got {value!r}")
    return int(items[0]), int(items[1])


def _same_device(*tensors: Optional[Tensor]) -> None:
    devices = {t.device for t in tensors if t is not None}
    if len(devices) > 1:
        raise ValueError(f"inputs are on different devices: {sorted(map(str, devices))}")


@contextlib.contextmanager
def ieee_fp32(enabled: bool = True) -> Iterator[None]:
    """Run float32 matmul and cuDNN conv in IEEE float32 (TF32 off) inside the block; restores after."""
    if not enabled or not torch.cuda.is_available():
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    matmul = torch.backends.cuda.matmul
    if conv is not None and hasattr(conv, "fp32_precision") and hasattr(matmul, "fp32_precision"):
        saved = (conv.fp32_precision, matmul.fp32_precision)
        conv.fp32_precision, matmul.fp32_precision = "ieee", "ieee"
        try:
            yield
        finally:
            conv.fp32_precision, matmul.fp32_precision = saved
    else:  # older torch: the legacy switches
        saved_l = (torch.backends.cudnn.allow_tf32, matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = False, False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = saved_l


def set_fp32_precision(tf32: bool) -> None:
    """Set float32 matmul and cuDNN conv precision for the process, once (TF32 when ``tf32``, else IEEE).
    Training engines call this at setup instead of toggling the flags around every op."""
    mode = "tf32" if tf32 else "ieee"
    conv = getattr(torch.backends.cudnn, "conv", None)
    matmul = torch.backends.cuda.matmul
    if conv is not None and hasattr(conv, "fp32_precision") and hasattr(matmul, "fp32_precision"):
        conv.fp32_precision, matmul.fp32_precision = mode, mode
    else:  # older torch: the legacy switches
        torch.backends.cudnn.allow_tf32 = matmul.allow_tf32 = tf32


# ---------------------------------------------------------------------------------------------------
# surrogate gradients (SEMANTICS 2) in torch, by name

SurrogateFn = Callable[..., Tensor]
_SURROGATES: dict[str, SurrogateFn] = {}


def register_surrogate(name: str, fn: SurrogateFn, replace: bool = False) -> None:
    """Give the torch backend an implementation of the estimator ``name``: ``fn(x, **params) -> Tensor``.

    The parameters and their defaults come from fdaref's registry (:func:`fdaref.register_estimator`), so
    register the estimator there first; this adds its torch math.
    """
    if name in _SURROGATES and not replace:
        raise ValueError(f"torch surrogate {name!r} is already registered (pass replace=True to override)")
    _SURROGATES[name] = fn


def surrogate_names() -> list[str]:
    """Estimators the torch backend computes."""
    return sorted(_SURROGATES)


def _fda(x: Tensor, n: int, omega: float, clip: Optional[float]) -> Tensor:
    return fused.fda_grad_auto(x, n, omega, clip)


def _fda_series(x: Tensor, n: int, omega: float, clip: Optional[float]) -> Tensor:
    t = x.to(torch.float64) * omega  # in float64: t rounded to float32 loses the phase at large |x|
    total = torch.zeros_like(t)
    for i in range(n + 1):
        total.add_(torch.cos(t * (2 * i + 1)))
    total.mul_(4.0 * omega / math.pi)
    total = total.to(x.dtype)
    if clip is not None:
        total.masked_fill_(x.abs() > clip, 0.0)
    return total


def _sign_swish(x: Tensor, beta: float) -> Tensor:
    bx = beta * x
    return beta * (2 - bx * torch.tanh(bx / 2)) / (1 + torch.cosh(bx))


register_surrogate("ste", lambda x: torch.ones_like(x))
register_surrogate("clipped_ste", lambda x: (x.abs() <= 1).to(x.dtype))
register_surrogate("approx_sign", lambda x: torch.where(x.abs() <= 1, 2 - 2 * x.abs(), torch.zeros_like(x)))
register_surrogate("sign_swish", _sign_swish)
register_surrogate("tanh", lambda x, beta: beta * (1 - torch.tanh(beta * x) ** 2))
register_surrogate("fda", _fda)
register_surrogate("fda_series", _fda_series)


def surrogate_grad(x: Tensor, estimator: str, params: Mapping[str, Any] | None = None,
                   g: Optional[Tensor] = None) -> Tensor:
    """d sign / dx at ``x`` under ``estimator`` (times ``g`` when given; fused for ``fda``)."""
    resolved = get_estimator(estimator).resolve(params)
    fn = _SURROGATES.get(estimator)
    if fn is None:
        raise NotImplementedError(
            f"estimator {estimator!r} has no torch implementation; add one with "
            "fdaref.backends.torch.register_surrogate(name, fn)")
    if estimator == "fda":
        return fused.fda_grad_auto(x, resolved["n"], resolved["omega"], resolved["clip"], g)
    out = fn(x, **resolved)
    return out if g is None else out.mul_(g)


# ---------------------------------------------------------------------------------------------------
# rows of the noise module (SEMANTICS 3)

def _row_length(shape: Sequence[int], layout: str) -> int:
    _check_choice(layout, "layout", LAYOUTS)
    if len(shape) not in (2, 4):
        raise ValueError(f"{layout} layout expects a 2-D or 4-D tensor, got shape {tuple(shape)}")
    return int(np.prod(shape[1:])) if layout == "weight" else int(shape[1])


def _to_rows(t: Tensor, layout: str) -> Tensor:
    d = _row_length(t.shape, layout)
    if layout == "activation" and t.dim() == 4:
        return t.permute(0, 2, 3, 1).reshape(-1, d)
    return t.reshape(-1, d)


def _from_rows(rows: Tensor, shape: Sequence[int], layout: str) -> Tensor:
    if layout == "activation" and len(shape) == 4:
        b, c, h, w = shape
        return rows.reshape(b, h, w, c).permute(0, 3, 1, 2)
    return rows.reshape(tuple(shape))


def _check_module(t: Tensor, w1: Tensor, w2: Tensor, layout: str, eta_kind: str) -> None:
    _check_float(t, "t")
    _check_float(w1, "w1", (2,))
    _check_float(w2, "w2", (2,))
    _check_choice(eta_kind, "eta", ETAS)
    _same_device(t, w1, w2)
    d = _row_length(t.shape, layout)
    m = w1.shape[1]
    if w1.shape[0] != d or tuple(w2.shape) != (m, d):
        raise ValueError(f"noise module for rows of length d={d} expects w1 (d, m) and w2 (m, d); "
                         f"got w1 {tuple(w1.shape)}, w2 {tuple(w2.shape)}")


# Activations (B, C, H, W) are rows of length C, one per pixel (SEMANTICS 3). Computing the module on a (B, C, P)
# view (P = H W) instead of permuted (B H W, C) rows skips the two NCHW <-> NHWC copies a permute costs on each
# way through; with m = 1 (C < 128) the two products are a channel reduction and an outer product.

def _is_nchw(t: Tensor, layout: str) -> bool:
    return layout == "activation" and t.dim() == 4


def _bcp(t: Tensor) -> Tensor:
    """The (B, C, P) view of a contiguous (B, C, H, W) tensor (a copy only if ``t`` is not contiguous)."""
    return t.reshape(t.shape[0], t.shape[1], -1)


def _hidden(t: Tensor, w1: Tensor, layout: str) -> Tensor:
    """The module's pre-activation t W1: (B, m, P) for 4-D activations, (rows, m) otherwise."""
    if _is_nchw(t, layout):
        return torch.matmul(w1.T, _bcp(t))
    return _to_rows(t, layout) @ w1


def _add_fc_(out: Tensor, r: Tensor, w: Tensor, layout: str, scale: float) -> Tensor:
    """In place: ``out += scale * (r @ w)`` in the layout of ``out`` (contiguous, the shape of t), where ``r``
    comes from :func:`_hidden` (r = relu(h) forward, dh backward) and ``w`` is (m, d): W2 forward, W1^T
    backward. One pass over ``out``; no row-shaped temporary."""
    if _is_nchw(out, layout):
        ov = out.view(out.shape[0], out.shape[1], -1)
        if r.shape[1] == 1:   # m = 1: an outer product, a broadcast multiply-add
            ov.addcmul_(w.T, r, value=scale)
        else:
            ov.baddbmm_(w.T.expand(out.shape[0], -1, -1), r, alpha=scale)
    else:
        out.view(r.shape[0], -1).addmm_(r, w, alpha=scale)
    return out


def _fc_param_grads(g: Tensor, t: Tensor, r: Tensor, dh: Tensor, layout: str) -> tuple[Tensor, Tensor]:
    """dW1 = t^T dh and dW2 = relu(h)^T g over all rows (unscaled). For 4-D activations the per-image
    products (C, P) x (P, m) are summed over the batch: the outputs are tiny, so no row copy is made."""
    if _is_nchw(t, layout):
        gv = _bcp(g)
        return (torch.matmul(_bcp(t), dh.transpose(1, 2)).sum(0),
                torch.matmul(r, gv.transpose(1, 2)).sum(0))
    return _to_rows(t, layout).T @ dh, r.T @ _to_rows(g, layout)


def _dhidden(g: Tensor, h: Tensor, w2: Tensor, layout: str) -> Tensor:
    """dh = (g W2^T) * (h > 0), shaped like ``h``."""
    dr = torch.matmul(w2, _bcp(g)) if _is_nchw(g, layout) else _to_rows(g, layout) @ w2.T
    return dr.mul_(h > 0)


# the exact sign (SEMANTICS 1) in two cheap passes: x * 2^e * 2^e maps every nonzero finite x (denormals too) to
# |u| >= 2^51 (or inf), 0 to 0, NaN to NaN; adding the zero convention and clamping to [-1, 1] leaves
# +-1, ``zero`` at 0 and NaN at NaN. torch.sign + masked_fill (for 0 and NaN) costs two mask tensors and two
# masked writes, each slower on the CPU than a fused arithmetic pass.
_SIGN_SCALE = {torch.float32: 2.0 ** 100, torch.float64: 2.0 ** 600}  # 2^-149 * 2^200, 2^-1074 * 2^1200 >= 1


def _fast_sign(x: Tensor, zero: float) -> Tensor:
    """sign(x) with ``zero`` at 0 and NaN kept, as a new contiguous tensor (x float32 or float64)."""
    return _sign_into_(torch.empty_like(x, memory_format=torch.contiguous_format), x, zero)


def _sign_into_(out: Tensor, x: Tensor, zero: float) -> Tensor:
    """out = sign(x) (``zero`` at 0, NaN kept) in two passes: addcmul evaluates zero + (s x) s left to right,
    so s^2 (inf in float32) is never formed."""
    s = _SIGN_SCALE[x.dtype]
    zt = torch.full((), zero, dtype=x.dtype, device=x.device)
    st = torch.full((), s, dtype=x.dtype, device=x.device)
    return torch.addcmul(zt, x, st, value=s, out=out).clamp_(-1.0, 1.0)


# Cache blocking on the CPU (the quantizer of 4-D activations): every elementwise step of the quantizer runs
# on a group of images (about fused.CPU_BLOCK elements) before the next group, so the block of t, g and the
# scratch buffers stay in L2 and no tensor-sized temporary (sin t, cos t, the surrogate's work) is allocated:
# a fresh multi-MB buffer costs page faults on every call. The per-image products of the module are the same
# as in the unblocked path; dW1 / dW2 are summed block by block.

def _fused_serves(t: Tensor, layout: str, eta_kind: str) -> bool:
    """Whether the quantizer's fused pass (:mod:`.cpu_loops`) can take these activations (coverage aside)."""
    return eta_kind == "sin" and _is_nchw(t, layout) and cpu_loops.fused_quantizer_applies(t)


def _use_blocks(t: Tensor, layout: str) -> bool:
    return t.device.type == "cpu" and _is_nchw(t, layout) and t.numel() > 0


def _images_per_block(t: Tensor) -> int:
    return max(1, min(t.shape[0], fused._blocking() // max(1, t[0].numel())))


def _quantize_forward_blocked(t: Tensor, w1: Tensor, w2: Tensor, alpha: float, zero: float, eta_kind: str,
                              a: float) -> tuple[Tensor, Tensor]:
    """z = sign(t) + alpha (relu(t W1) W2 + eta(t)) and r = relu(t W1), both in NCHW, image block by block
    (where :func:`.cpu_loops.quantize_forward` does not serve)."""
    tv = _bcp(t.contiguous())
    b, c, p = tv.shape
    z = torch.empty_like(tv)
    h = torch.empty((b, w1.shape[1], p), dtype=t.dtype)
    nb = _images_per_block(t)
    work = torch.empty((min(nb, b), c, p), dtype=t.dtype) if eta_kind == "sin" else None
    w1t, w2t = w1.T, w2.T
    for i in range(0, b, nb):
        xs, zs, hs = tv[i:i + nb], z[i:i + nb], h[i:i + nb]
        _sign_into_(zs, xs, zero)
        if eta_kind == "sin":
            zs.add_(torch.sin(xs, out=work[:xs.shape[0]]), alpha=alpha * a)
        elif eta_kind == "linear":
            zs.add_(xs, alpha=alpha * a)
        r = torch.matmul(w1t, xs, out=hs).clamp_(min=0)   # relu(h) is all backward needs (h > 0 iff r > 0)
        if r.shape[1] == 1:
            zs.addcmul_(w2t, r, value=alpha)
        else:
            zs.baddbmm_(w2t.expand(xs.shape[0], -1, -1), r, alpha=alpha)
    return z.view(t.shape), h


def _quantize_backward_blocked(g: Tensor, t: Tensor, h: Tensor, w1: Tensor, w2: Tensor, alpha: float,
                               estimator: str, params: Mapping[str, Any] | None, eta_kind: str, a: float
                               ) -> tuple[Tensor, Tensor, Tensor]:
    """SEMANTICS 4 backward of the activation quantizer (module present, alpha != 0), image block by block;
    ``h``: relu(t W1) (B, m, H W)."""
    tv, gv = _bcp(t.contiguous()), _bcp(g.contiguous())
    b, c, p = tv.shape
    dt = torch.empty_like(tv)
    dw1, dw2 = torch.zeros_like(w1), torch.zeros_like(w2)
    nb = _images_per_block(t)
    resolved = get_estimator(estimator).resolve(params)
    lean = estimator == "fda" and not fused.use_compiled("cpu")
    loops = lean and cpu_loops.covers(tv, resolved["omega"])   # one coverage check serves every block
    size = min(nb, b) * c * p
    work = None if loops else tuple(torch.empty(size, dtype=t.dtype) for _ in range(3))
    cos_coef = alpha * a if eta_kind == "sin" else 0.0
    for i in range(0, b, nb):
        xs, gs, ds, hs = tv[i:i + nb], gv[i:i + nb], dt[i:i + nb], h[i:i + nb]
        if lean and (resolved["clip"] is None or cos_coef == 0):
            if loops:
                cpu_loops.fda_cos_into(ds.view(-1), xs.reshape(-1), gs.reshape(-1), resolved["n"],
                                       resolved["omega"], cos_coef)
            else:
                fused.fda_into_(ds.view(-1), xs.reshape(-1), gs.reshape(-1), resolved["n"], resolved["omega"],
                                work, cos_coef)
            if resolved["clip"] is not None:
                ds.masked_fill_(xs.abs() > resolved["clip"], 0.0)
        else:
            ds.copy_(surrogate_grad(xs, estimator, params, gs))
            if cos_coef:
                ds.addcmul_(gs, torch.cos(xs), value=cos_coef)
        if eta_kind == "linear":
            ds.add_(gs, alpha=alpha * a)
        dh = torch.matmul(w2, gs).mul_(hs > 0)
        if dh.shape[1] == 1:
            ds.addcmul_(w1, dh, value=alpha)
        else:
            ds.baddbmm_(w1.expand(xs.shape[0], -1, -1), dh, alpha=alpha)
        dw1.add_(torch.matmul(xs, dh.transpose(1, 2)).sum(0))
        dw2.add_(torch.matmul(hs, gs.transpose(1, 2)).sum(0))
    return dt.view(t.shape), dw1.mul_(alpha), dw2.mul_(alpha)


def _eta(t: Tensor, kind: str, a: float) -> Optional[Tensor]:
    if kind == "sin":
        return torch.sin(t).mul_(a)
    if kind == "linear":
        return t * a
    return None


# ---------------------------------------------------------------------------------------------------
# bit packing helpers (SEMANTICS 9)

_M1, _M2, _M4 = 0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F


def popcount64(words: Tensor) -> Tensor:
    """Number of set bits of each int64 word (SWAR; torch has no popcount), as int64."""
    x = words - (words >> 1).bitwise_and_(_M1)
    x = x.bitwise_and(_M2) + (x >> 2).bitwise_and_(_M2)
    x = (x + (x >> 4)).bitwise_and_(_M4)   # bytes of 0..8: the sign bit is clear from here on
    x = x + (x >> 8)
    x = x + (x >> 16)
    x = x + (x >> 32)
    return x.bitwise_and_(0x7F)


def _as_words(packed: Tensor, name: str) -> Tensor:
    if not isinstance(packed, torch.Tensor) or packed.dtype not in (torch.uint64, torch.int64):
        raise TypeError(f"{name}: expected packed uint64 words (a torch.uint64 tensor), got "
                        f"{getattr(packed, 'dtype', type(packed).__name__)}")
    return packed.view(torch.int64) if packed.dtype == torch.uint64 else packed


def _clear_stray(words: Tensor, count: int) -> Tensor:
    """``words`` (``count`` elements packed along the last axis) with the bits beyond ``count`` in the last
    word cleared: SEMANTICS 11 says stray bits never change a result, and the popcounts count whole words."""
    used = count % 64
    if not used or words.shape[-1] == 0:
        return words
    out = words.clone()
    out[..., -1] &= (1 << used) - 1
    return out


def _fill_word(channels: int, word: int, pad_value: float) -> int:
    """The packed word of ``pad_value`` (+1 or -1) for the channels of word ``word``."""
    if pad_value > 0:
        return 0
    used = min(64, channels - 64 * word)
    bits = (1 << used) - 1
    return bits - (1 << 64) if bits >= (1 << 63) else bits  # as a signed int64


# ---------------------------------------------------------------------------------------------------

class TorchBackend:
    """fdaref's op table in torch (CPU, and CUDA where available). See :mod:`fdaref.optable`."""

    name = "torch"
    version = torch.__version__
    dtypes = ("float32", "float64")

    def __init__(self, allow_tf32: bool = False) -> None:
        self.allow_tf32 = allow_tf32
        self.devices: tuple[str, ...] = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)

    def __repr__(self) -> str:
        return f"<fdaref torch backend {self.version}, devices {', '.join(self.devices)}>"

    # -- identity and capabilities --------------------------------------------------------------------
    def refuses(self, op: str, device: str, dtype: str) -> Optional[str]:
        if op not in OP_NAMES and op not in PLUMBING:
            return f"unknown op {op!r}"
        base = str(device).split(":")[0]
        if base not in ("cpu", "cuda"):
            return f"the torch backend runs on 'cpu' or 'cuda', not {device!r}"
        if base == "cuda" and not torch.cuda.is_available():
            return "no CUDA device is available to torch here"
        if dtype not in self.dtypes:
            return f"the torch backend computes in float32 or float64, not {dtype}"
        return None

    def supports(self, op: str, option: str, value: Any) -> Optional[str]:
        """Capabilities (fdaref.conformance.capabilities): an estimator registered in fdaref without torch math."""
        if option == "estimator" and value not in _SURROGATES:
            return (f"estimator {value!r} has no torch implementation (add one with "
                    "fdaref.backends.torch.register_surrogate)")
        return None

    @property
    def training_engines(self) -> Mapping[str, Callable[..., Any]]:
        """The Trainer's step engines on this backend (:mod:`.engine`)."""
        from .engine import TRAINING_ENGINES  # here: the engines build on the modules, which use this table
        return TRAINING_ENGINES

    def default_engine(self, total_steps: Optional[int] = None) -> str:
        """The fastest engine for a run of ``total_steps``: ``torch-compile`` from COMPILE_MIN_STEPS on (it
        runs binary resnet20 steps about 1.5x as fast on the CPU, and the compile, 10-30 s on a small CPU,
        is repaid over such a run), else ``torch`` (eager)."""
        from .engine import COMPILE_MIN_STEPS
        return "torch-compile" if total_steps is not None and total_steps >= COMPILE_MIN_STEPS else "torch"

    def conformance_context(self) -> contextlib.AbstractContextManager:
        """TF32 off for float32 matmul / conv on CUDA for the duration of a block (a no-op on the CPU)."""
        return ieee_fp32(True)

    def _precise(self) -> contextlib.AbstractContextManager:
        return ieee_fp32(not self.allow_tf32)

    # -- moving arrays --------------------------------------------------------------------------------
    def from_numpy(self, a: np.ndarray, device: str = "cpu") -> Tensor:
        a = np.asarray(a)
        base = str(device).split(":")[0]
        if base not in ("cpu", "cuda"):
            raise ValueError(f"the torch backend has no device {device!r}; it runs on 'cpu' or 'cuda'")
        if base == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA device here")
        t = torch.from_numpy(np.array(a, copy=True, order="C"))
        return t.to(device)

    def to_numpy(self, x: Tensor) -> np.ndarray:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"to_numpy: expected a torch.Tensor, got {type(x).__name__}")
        x = x.detach().to("cpu")
        if x.dtype == torch.uint64:
            return x.view(torch.int64).numpy().view(np.uint64).copy()
        return x.numpy().copy()

    def zeros(self, shape: Sequence[int], like: Tensor) -> Tensor:
        return torch.zeros(tuple(shape), dtype=like.dtype, device=like.device)

    def sum_to_shape(self, x: Tensor, shape: Sequence[int]) -> Tensor:
        shape = tuple(shape)
        if tuple(x.shape) == shape:
            return x
        lead = x.dim() - len(shape)
        if lead < 0:
            raise ValueError(f"sum_to_shape: cannot reduce shape {tuple(x.shape)} to the larger rank of {shape}")
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                          if n == 1 and x.shape[lead + i] != 1)
        return x.sum(dim=axes, keepdim=True).reshape(shape) if axes else x.reshape(shape)

    # -- SEMANTICS 1-4 --------------------------------------------------------------------------------------
    def sign(self, x: Tensor, zero: float = -1.0) -> Tensor:
        _check_float(x, "x")
        _check_choice(zero, "zero", ZERO_CONVENTIONS)
        return _fast_sign(x, float(zero))

    def surrogate(self, x: Tensor, estimator: str, params: Mapping[str, Any]) -> Tensor:
        _check_float(x, "x")
        return surrogate_grad(x, estimator, params)

    def noise_forward(self, t: Tensor, w1: Tensor, w2: Tensor, *, layout: str, eta_kind: str = "sin",
                      a: float = 0.1) -> Tensor:
        _check_module(t, w1, w2, layout, eta_kind)
        t = t.contiguous()
        with self._precise():
            r = _hidden(t, w1, layout).clamp_(min=0)
            out = _eta(t, eta_kind, a)
            if out is None:
                out = torch.zeros_like(t)
            return _add_fc_(out, r, w2, layout, 1.0)

    def noise_backward(self, g: Tensor, t: Tensor, w1: Tensor, w2: Tensor, *, layout: str,
                       eta_kind: str = "sin", a: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
        _check_module(t, w1, w2, layout, eta_kind)
        _check_float(g, "g")
        if g.shape != t.shape:
            raise ValueError(f"g: expected the shape of t {tuple(t.shape)}, got {tuple(g.shape)}")
        g, t = g.contiguous(), t.contiguous()
        if eta_kind == "sin":
            dt = torch.cos(t).mul_(g).mul_(a)
        elif eta_kind == "linear":
            dt = torch.mul(g, a)
        else:
            dt = torch.zeros_like(t)
        with self._precise():
            h = _hidden(t, w1, layout)
        dw1, dw2 = self._add_fc_vjp_(dt, g, t, h, w1, w2, layout, 1.0)
        return dt, dw1, dw2

    def _add_fc_vjp_(self, dt: Tensor, g: Tensor, t: Tensor, h: Tensor, w1: Tensor, w2: Tensor, layout: str,
                     scale: float) -> tuple[Tensor, Tensor]:
        """The fully connected part of Eq. 13's backward, scaled: ``dt += scale * dfc/dt^T g`` in place;
        returns (scale dW1, scale dW2). ``g``, ``t``, ``dt`` contiguous; ``h``: t W1 from :func:`_hidden`, or its
        relu (the mask h > 0 and relu(h) are the same for both)."""
        with self._precise():
            dh = _dhidden(g, h, w2, layout)
            _add_fc_(dt, dh, w1.T, layout, scale)
            dw1, dw2 = _fc_param_grads(g, t, h.clamp(min=0), dh, layout)
        return dw1.mul_(scale), dw2.mul_(scale)

    def quantize_forward(self, t: Tensor, w1: Optional[Tensor], w2: Optional[Tensor], *, alpha: float,
                         zero: float = -1.0, layout: str = "weight", eta_kind: str = "sin", a: float = 0.1,
                         training: bool = True) -> Tensor:
        return self.quantize_forward_saving(t, w1, w2, alpha=alpha, zero=zero, layout=layout, eta_kind=eta_kind,
                                            a=a, training=training)[0]

    def quantize_forward_saving(self, t: Tensor, w1: Optional[Tensor], w2: Optional[Tensor], *, alpha: float,
                                zero: float = -1.0, layout: str = "weight", eta_kind: str = "sin",
                                a: float = 0.1, training: bool = True) -> tuple[Tensor, Optional[Tensor]]:
        """:meth:`quantize_forward`, also returning the module's hidden activation r = relu(t W1) (None where
        the module is not evaluated) for :meth:`quantize_backward_saved`: r is d / m times smaller than t, so
        keeping it costs less than the product it saves in backward (and h > 0 exactly where r > 0)."""
        _check_float(t, "t")
        _check_choice(zero, "zero", ZERO_CONVENTIONS)
        if not training or alpha == 0 or w1 is None:
            return _fast_sign(t, float(zero)), None
        _check_module(t, w1, w2, layout, eta_kind)
        if _fused_serves(t, layout, eta_kind):
            fused_out = cpu_loops.quantize_forward(t, w1, w2, float(zero), alpha, alpha * a)
            if fused_out is not None:   # None: some |t| beyond the loops' coverage
                return fused_out
        if _use_blocks(t, layout):
            return _quantize_forward_blocked(t, w1, w2, alpha, float(zero), eta_kind, a)
        z = _fast_sign(t, float(zero))              # fresh and contiguous: the other terms go into it
        t = t.contiguous()
        if eta_kind == "sin":
            z.add_(torch.sin(t), alpha=alpha * a)
        elif eta_kind == "linear":
            z.add_(t, alpha=alpha * a)
        with self._precise():
            r = _hidden(t, w1, layout).clamp_(min=0)
            _add_fc_(z, r, w2, layout, alpha)
        return z, r

    def quantize_backward(self, g: Tensor, t: Tensor, w1: Optional[Tensor], w2: Optional[Tensor], *,
                          alpha: float, estimator: str = "fda", params: Mapping[str, Any] | None = None,
                          layout: str = "weight", eta_kind: str = "sin", a: float = 0.1
                          ) -> tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        return self.quantize_backward_saved(g, t, None, w1, w2, alpha=alpha, estimator=estimator, params=params,
                                            layout=layout, eta_kind=eta_kind, a=a)

    def _fused_backward(self, g: Tensor, t: Tensor, h: Optional[Tensor], w1: Tensor, w2: Tensor, alpha: float,
                        estimator: str, params: Mapping[str, Any] | None, layout: str, eta_kind: str, a: float
                        ) -> Optional[tuple[Tensor, Tensor, Tensor]]:
        """:func:`.cpu_loops.quantize_backward` where it serves (fda without a clip, eta sin, float32 CPU
        activations, covered), else None. ``FDAREF_TORCH_LOOPS=0`` turns it off; ``FDAREF_TORCH_COMPILE``
        only chooses the FDA kernel of the paths below."""
        if estimator != "fda" or not _fused_serves(t, layout, eta_kind):
            return None
        resolved = get_estimator(estimator).resolve(params)
        if resolved["clip"] is not None:
            return None
        if h is None:
            with self._precise():
                h = _hidden(t.contiguous(), w1, layout).clamp_(min=0)
        return cpu_loops.quantize_backward(g, t, h, w1, w2, resolved["n"], resolved["omega"], alpha * a, alpha)

    def quantize_backward_saved(self, g: Tensor, t: Tensor, h: Optional[Tensor], w1: Optional[Tensor],
                                w2: Optional[Tensor], *, alpha: float, estimator: str = "fda",
                                params: Mapping[str, Any] | None = None, layout: str = "weight",
                                eta_kind: str = "sin", a: float = 0.1
                                ) -> tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """Fused: the surrogate is multiplied into its own buffer, the eta and fc terms added in place.
        ``h``: relu(t W1) from :meth:`quantize_forward_saving` (None: recomputed)."""
        _check_float(g, "g")
        _check_float(t, "t")
        if g.shape != t.shape:
            raise ValueError(f"g: expected the shape of t {tuple(t.shape)}, got {tuple(g.shape)}")
        if w1 is not None:
            _check_module(t, w1, w2, layout, eta_kind)
        if w1 is not None and alpha != 0:
            fused_out = self._fused_backward(g, t, h, w1, w2, alpha, estimator, params, layout, eta_kind, a)
            if fused_out is not None:
                return fused_out
        g, t = g.contiguous(), t.contiguous()
        if w1 is not None:
            if alpha != 0 and _use_blocks(t, layout):
                if h is None:
                    h = _hidden(t, w1, layout).clamp_(min=0)
                return _quantize_backward_blocked(g, t, h, w1, w2, alpha, estimator, params, eta_kind, a)
        dt = surrogate_grad(t, estimator, params, g)
        if w1 is None:
            return dt, None, None
        if alpha == 0:
            return dt, torch.zeros_like(w1), torch.zeros_like(w2)
        if eta_kind == "sin":
            dt.addcmul_(g, torch.cos(t), value=alpha * a)
        elif eta_kind == "linear":
            dt.add_(g, alpha=alpha * a)
        if h is None:
            with self._precise():
                h = _hidden(t, w1, layout).clamp_(min=0)
        dw1, dw2 = self._add_fc_vjp_(dt, g, t, h, w1, w2, layout, alpha)
        return dt, dw1, dw2

    # -- SEMANTICS 5 ----------------------------------------------------------------------------------------
    def weight_scale(self, w: Tensor, mode: str = "channel") -> Tensor:
        _check_float(w, "w", (2, 4))
        _check_choice(mode, "scale", SCALE_MODES)
        if mode == "channel":
            return w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
        if mode == "layer":
            return w.abs().mean().reshape((1,) * w.dim())
        return torch.ones((1,) * w.dim(), dtype=w.dtype, device=w.device)

    @staticmethod
    def _conv_args(x: Tensor, w: Tensor, stride: Any, padding: Any, dilation: Any, pad_value: float
                   ) -> tuple[Pair, Pair, Pair]:
        _check_float(x, "x", (4,))
        _check_float(w, "w", (4,))
        if x.shape[1] != w.shape[1]:
            raise ValueError(f"conv2d: x has {x.shape[1]} channels but w expects {w.shape[1]} (groups = 1)")
        _check_choice(pad_value, "pad_value", (0.0, -1.0, 1.0))
        stride, padding, dilation = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
        for size, k, p, d in zip(x.shape[2:], w.shape[2:], padding, dilation):
            if size + 2 * p < d * (k - 1) + 1:   # SEMANTICS 11: an error (torch raises a RuntimeError)
                raise ValueError(f"conv2d: the kernel {tuple(w.shape[2:])} (dilation {dilation}) is larger than the "
                                 f"padded input {tuple(x.shape[2:])} + 2 x {padding}")
        return stride, padding, dilation

    def conv2d_forward(self, x: Tensor, w: Tensor, b: Optional[Tensor], *, stride: Pair, padding: Pair,
                       dilation: Pair, pad_value: float = 0.0) -> Tensor:
        stride, padding, dilation = self._conv_args(x, w, stride, padding, dilation, pad_value)
        _check_bias(b, w.shape[0])
        _same_device(x, w, b)
        if pad_value != 0 and any(padding):
            x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]), value=float(pad_value))
            padding = (0, 0)
        with self._precise():
            return F.conv2d(x, w, b, stride, padding, dilation)

    def conv2d_backward(self, g: Tensor, x: Tensor, w: Tensor, *, has_bias: bool, stride: Pair,
                        padding: Pair, dilation: Pair, pad_value: float = 0.0
                        ) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        stride, padding, dilation = self._conv_args(x, w, stride, padding, dilation, pad_value)
        _check_float(g, "g", (4,))
        _same_device(g, x, w)
        h, wd = x.shape[2], x.shape[3]
        ph, pw = padding
        if pad_value != 0 and any(padding):
            x = F.pad(x, (pw, pw, ph, ph), value=float(pad_value))
            padding = (0, 0)
        with self._precise():
            dx, dw, db = torch.ops.aten.convolution_backward(
                g, x, w, [w.shape[0]] if has_bias else None, list(stride), list(padding), list(dilation),
                False, [0, 0], 1, [True, True, has_bias])
        if x.shape[2] != h or x.shape[3] != wd:  # the constant padding gets no gradient
            dx = dx[:, :, ph:ph + h, pw:pw + wd].contiguous()
        return dx, dw, (db if has_bias else None)

    def linear_forward(self, x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
        _check_float(x, "x", (2,))
        _check_float(w, "w", (2,))
        _check_features(x, w)
        _check_bias(b, w.shape[0])
        _same_device(x, w, b)
        with self._precise():
            return F.linear(x, w, b)

    def linear_backward(self, g: Tensor, x: Tensor, w: Tensor, *, has_bias: bool
                        ) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        _check_float(g, "g", (2,))
        _check_features(x, w)
        with self._precise():
            return g @ w, g.T @ x, (g.sum(0) if has_bias else None)

    # -- float layers ---------------------------------------------------------------------------------
    @staticmethod
    def _bn_view(v: Tensor, x: Tensor) -> Tensor:
        return v.reshape((1, -1) + (1,) * (x.dim() - 2))

    def batch_norm_forward(self, x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Tensor,
                           running_var: Tensor, *, training: bool, momentum: float = 0.1, eps: float = 1e-5
                           ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        _check_float(x, "x", (2, 4))
        if training:
            if x.numel() // x.shape[1] < 2:
                raise ValueError(f"batch_norm: training needs more than one value per channel, got {tuple(x.shape)}")
            rm, rv = running_mean.clone(), running_var.clone()  # native_batch_norm updates them in place
            y, mean, invstd = torch.native_batch_norm(x, gamma, beta, rm, rv, True, momentum, eps)
            return y, mean, invstd, rm, rv
        mean = running_mean
        invstd = torch.rsqrt(running_var + eps)
        y = (x - self._bn_view(mean, x)) * self._bn_view(invstd * gamma, x) + self._bn_view(beta, x)
        return y, mean, invstd, running_mean, running_var

    def batch_norm_backward(self, g: Tensor, x: Tensor, gamma: Tensor, mean: Tensor, invstd: Tensor, *,
                            training: bool) -> tuple[Tensor, Tensor, Tensor]:
        _check_float(g, "g", (2, 4))
        if training:
            dx, dgamma, dbeta = torch.ops.aten.native_batch_norm_backward(
                g, x, gamma, None, None, mean, invstd, True, 0.0, [True, True, True])
            return dx, dgamma, dbeta
        dims = [0] + list(range(2, x.dim()))
        xhat = (x - self._bn_view(mean, x)) * self._bn_view(invstd, x)
        return g * self._bn_view(gamma * invstd, x), (g * xhat).sum(dims), g.sum(dims)

    def relu_forward(self, x: Tensor) -> Tensor:
        return torch.relu(_check_float(x, "x"))

    def relu_backward(self, g: Tensor, x: Tensor) -> Tensor:
        return g * (x > 0)

    def prelu_forward(self, x: Tensor, slope: Tensor) -> Tensor:
        _check_float(x, "x")
        s = slope.reshape((1, -1) + (1,) * (x.dim() - 2)) if x.dim() > 1 else slope
        return torch.where(x > 0, x, x * s)

    def prelu_backward(self, g: Tensor, x: Tensor, slope: Tensor) -> tuple[Tensor, Tensor]:
        _check_float(g, "g")
        s = slope.reshape((1, -1) + (1,) * (x.dim() - 2)) if x.dim() > 1 else slope
        pos = x > 0
        dx = torch.where(pos, g, g * s)
        contrib = torch.where(pos, torch.zeros_like(x), g * x)
        if slope.numel() == 1:
            dslope = contrib.sum().reshape(slope.shape)
        else:
            dims = [0] + list(range(2, x.dim()))
            dslope = contrib.sum(dims).reshape(slope.shape)
        return dx, dslope

    @staticmethod
    def _pool_args(x: Tensor, kernel: Any, stride: Any, padding: Any) -> tuple[Pair, Pair, Pair]:
        _check_float(x, "x", (4,))
        kernel, stride, padding = _pair(kernel, "kernel"), _pair(stride, "stride"), _pair(padding, "padding")
        if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
            raise ValueError(f"pool: expected kernel, stride >= 1 and padding >= 0, got {kernel}, {stride}, {padding}")
        if any(2 * p > k for k, p in zip(kernel, padding)):  # as the reference: no all-padding window
            raise ValueError(f"padding: expected at most half the kernel {kernel}, got {padding}")
        return kernel, stride, padding

    def max_pool2d_forward(self, x: Tensor, *, kernel: Pair, stride: Pair, padding: Pair = (0, 0)) -> Tensor:
        kernel, stride, padding = self._pool_args(x, kernel, stride, padding)
        return F.max_pool2d(x, kernel, stride, padding)

    def max_pool2d_backward(self, g: Tensor, x: Tensor, *, kernel: Pair, stride: Pair,
                            padding: Pair = (0, 0)) -> Tensor:
        """The gradient goes to the first maximal element of each window (torch's kernels keep the first
        maximum: they replace it only on a strictly larger value)."""
        kernel, stride, padding = self._pool_args(x, kernel, stride, padding)
        _, idx = F.max_pool2d(x, kernel, stride, padding, return_indices=True)
        return torch.ops.aten.max_pool2d_with_indices_backward(g, x, list(kernel), list(stride), list(padding),
                                                               [1, 1], False, idx)

    def avg_pool2d_forward(self, x: Tensor, *, kernel: Pair, stride: Pair, padding: Pair = (0, 0)) -> Tensor:
        kernel, stride, padding = self._pool_args(x, kernel, stride, padding)
        return F.avg_pool2d(x, kernel, stride, padding, count_include_pad=True)

    def avg_pool2d_backward(self, g: Tensor, x: Tensor, *, kernel: Pair, stride: Pair,
                            padding: Pair = (0, 0)) -> Tensor:
        kernel, stride, padding = self._pool_args(x, kernel, stride, padding)
        return torch.ops.aten.avg_pool2d_backward(g, x, list(kernel), list(stride), list(padding), False, True,
                                                  None)

    @staticmethod
    def _check_labels(logits: Tensor, labels: Tensor) -> None:
        _check_float(logits, "logits", (2,))
        if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32):
            raise TypeError("labels: expected an int64 tensor of class indices")
        if labels.shape != (logits.shape[0],):
            raise ValueError(f"labels: expected shape ({logits.shape[0]},), got {tuple(labels.shape)}")

    def cross_entropy_forward(self, logits: Tensor, labels: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
        self._check_labels(logits, labels)
        _check_smoothing(label_smoothing)
        return F.cross_entropy(logits, labels.long(), label_smoothing=float(label_smoothing))

    def cross_entropy_backward(self, g: Tensor, logits: Tensor, labels: Tensor, *,
                               label_smoothing: float = 0.0) -> Tensor:
        self._check_labels(logits, labels)
        _check_smoothing(label_smoothing)
        b, c = logits.shape
        q = torch.full_like(logits, label_smoothing / c)
        q.scatter_add_(1, labels.long()[:, None], torch.full((b, 1), 1.0 - label_smoothing,
                                                             dtype=logits.dtype, device=logits.device))
        return (torch.softmax(logits, 1) - q).mul_(g / b)

    # -- SEMANTICS 9: bit packing and XNOR-popcount --------------------------------------------------------
    def pack_signs(self, x: Tensor, *, axis: int, zero: float) -> Tensor:
        _check_float(x, "x")
        if zero not in (-1.0, 1.0):
            raise ValueError(f"pack_signs: zero must be -1 or +1 (a bit holds two values), got {zero!r}")
        if not -x.dim() <= axis < x.dim():
            raise ValueError(f"pack_signs: axis {axis} out of range for shape {tuple(x.shape)}")
        if bool(torch.isnan(x).any()):  # an inference-time op: the host sync is affordable
            raise ValueError("pack_signs: x contains NaN, which has no sign bit (SEMANTICS 9)")
        bits = (x < 0) | (x == 0) if zero == -1.0 else (x < 0)
        bits = torch.movedim(bits, axis, -1)
        c = bits.shape[-1]
        words = -(-c // 64)
        if words * 64 != c:
            bits = F.pad(bits, (0, words * 64 - c))
        bits = bits.reshape(bits.shape[:-1] + (words, 64)).to(torch.int64)
        weights = torch.bitwise_left_shift(torch.ones(64, dtype=torch.int64, device=x.device),
                                           torch.arange(64, dtype=torch.int64, device=x.device))
        return (bits * weights).sum(-1).view(torch.uint64)  # distinct bits: the sum is the OR

    def xnor_linear(self, x_packed: Tensor, w_packed: Tensor, *, features: int) -> Tensor:
        xw, ww = _as_words(x_packed, "x_packed"), _as_words(w_packed, "w_packed")
        if xw.dim() != 2 or ww.dim() != 2 or xw.shape[1] != ww.shape[1] or xw.shape[1] != -(-features // 64):
            raise ValueError(f"xnor_linear: expected (B, words) and (out, words) with words = ceil({features}/64); "
                             f"got {tuple(xw.shape)} and {tuple(ww.shape)}")
        xw, ww = _clear_stray(xw, features), _clear_stray(ww, features)
        out = torch.empty((xw.shape[0], ww.shape[0]), dtype=torch.int64, device=xw.device)
        step = max(1, (1 << 22) // max(1, ww.shape[0] * ww.shape[1]))
        for i in range(0, xw.shape[0], step):  # chunks bound the (rows, out, words) temporary
            diff = popcount64(xw[i:i + step, None, :] ^ ww[None, :, :]).sum(-1)
            out[i:i + step] = features - 2 * diff
        return out.to(torch.int32)

    def xnor_conv2d(self, x_packed: Tensor, w_packed: Tensor, *, channels: int, stride: Pair, padding: Pair,
                    dilation: Pair, pad_value: float = 0.0) -> Tensor:
        xw, ww = _as_words(x_packed, "x_packed"), _as_words(w_packed, "w_packed")
        stride, padding, dilation = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
        _check_choice(pad_value, "pad_value", (0.0, -1.0, 1.0))
        words = -(-channels // 64)
        if xw.dim() != 4 or ww.dim() != 4 or xw.shape[3] != words or ww.shape[3] != words:
            raise ValueError(f"xnor_conv2d: expected x_packed (N, H, W, {words}) and w_packed (C_out, kh, kw, "
                             f"{words}) for {channels} channels; got {tuple(xw.shape)} and {tuple(ww.shape)}")
        xw, ww = _clear_stray(xw, channels), _clear_stray(ww, channels)
        n, h, w_, _ = xw.shape
        c_out, kh, kw, _ = ww.shape
        (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
        ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w_ + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if ho <= 0 or wo <= 0:
            raise ValueError(f"xnor_conv2d: empty output for input {h}x{w_} and kernel {kh}x{kw}")
        xp = torch.zeros((n, h + 2 * ph, w_ + 2 * pw, words), dtype=torch.int64, device=xw.device)
        if pad_value != 0:
            for j in range(words):
                xp[..., j] = _fill_word(channels, j, pad_value)
        xp[:, ph:ph + h, pw:pw + w_] = xw
        valid = None
        if pad_value == 0 and (ph or pw):  # zero padding has no bit pattern: mask those taps out
            valid = torch.zeros((h + 2 * ph, w_ + 2 * pw), dtype=torch.int64, device=xw.device)
            valid[ph:ph + h, pw:pw + w_] = 1
        out = torch.zeros((n, ho, wo, c_out), dtype=torch.int64, device=xw.device)
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
                cols = slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)
                patch = xp[:, rows, cols, :]                                 # (N, Ho, Wo, words)
                diff = popcount64(patch[:, :, :, None, :] ^ ww[None, None, None, :, i, j, :]).sum(-1)
                tap = channels - 2 * diff                                    # (N, Ho, Wo, C_out)
                if valid is not None:
                    tap.mul_(valid[rows, cols][None, :, :, None])
                out.add_(tap)
        return out.permute(0, 3, 1, 2).to(torch.int32).contiguous()


backend = TorchBackend()
