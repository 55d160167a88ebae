"""Bit-packed binary models: export a trained checkpoint with its binary weights as bits, and run it with
XNOR-popcount kernels.

``export_packed(checkpoint, out)`` writes one ``.npz`` (no pickle) holding
- for every binary layer: the signs of its weights as a dense bit stream (``<layer>.weight_bits``: the flattened
  weight tensor packed with the SEMANTICS 9 bit order, 1 bit per weight, set = -1), its weight scale (SEMANTICS 5, one float
  per output channel or per layer) and its bias when it has one. Under the ``zero = 0`` convention a weight that
  is exactly 0 has sign 0, which one bit cannot hold: such a layer stores a second bit plane
  (``<layer>.weight_bits_b``, see "planes" below);
- every float parameter and buffer as it is (stem conv, batch norms, PReLU slopes, the head);
- ``__meta__``: JSON with the format tag, the training config (architecture, options, dtype), the data set and
  its normalisation, and the per-layer geometry.
The noise-module parameters are not exported: inference is sign only (SEMANTICS 4).

``load_packed(path)`` rebuilds the architecture from the config, loads the float state and replaces the forward
of every binary layer by the packed one: in eval mode a binary layer computes conv(sign(x), sign(W) * s) + b, and
with bits that is ``xnor_conv2d(pack(sign x), pack(sign W))`` (an exact integer) times s plus b. The XNOR kernels
come from the fastest installed backend that provides them (``numba`` preferred, the NumPy reference otherwise).

Planes: a tensor with values in {-1, 0, +1} is the mean of two +-1 tensors (0 -> +1 in one, -1 in the other), so
its dot products are (dot(a, w) + dot(b, w)) / 2, still exact integers. This keeps the packed model equal to the
float-simulated one under every sign convention of SEMANTICS 1 (zero = -1, 0, +1).
"""
from __future__ import annotations

from .errors import InputError

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .archive import archive_bytes, read_archive, write_archive

FORMAT = "fdaref-packed-1"
PREFERRED_BACKENDS: tuple[str, ...] = ("numba",)   # tried in order; the reference is the last resort
_NOT_EXPORTED = ("w_noise1", "w_noise2", "a_noise1", "a_noise2")


class PackedModelError(InputError, RuntimeError):
    """A packed model file is missing, unreadable or not written by :func:`export_packed`."""


# ------------------------------------------------------------------------------------------------------
# bits

def pack_flat(signs: np.ndarray) -> np.ndarray:
    """A dense SEMANTICS 9 bit stream of a +-1 tensor: element k of the flattened tensor is bit k % 64 of word
    k // 64, set for -1; unused bits of the last word are 0."""
    flat = np.ascontiguousarray(signs).reshape(-1)
    words = -(-flat.size // 64)
    bits = np.zeros(words * 64, dtype=bool)
    bits[:flat.size] = flat < 0
    return np.packbits(bits.reshape(words, 64), axis=-1, bitorder="little").view("<u8").reshape(words).astype(np.uint64)


def unpack_flat(words: np.ndarray, shape: Sequence[int], dtype: Any = np.float64) -> np.ndarray:
    """Inverse of :func:`pack_flat`: the +-1 tensor of ``shape``."""
    n = int(np.prod(shape))
    if words.dtype != np.uint64 or words.ndim != 1 or words.size != -(-n // 64):
        raise PackedModelError(f"bit stream of {words.size} {words.dtype} words cannot hold a tensor of shape "
                               f"{tuple(shape)} ({-(-n // 64)} uint64 words expected)")
    bits = np.unpackbits(words.astype("<u8").view(np.uint8), bitorder="little")[:n]
    return np.where(bits.reshape(tuple(shape)) == 1, -1.0, 1.0).astype(dtype)


def sign_planes(t: np.ndarray, zero: float) -> list[np.ndarray]:
    """sign(t) under the SEMANTICS 1 convention ``zero`` as one or two +-1 tensors whose mean is sign(t)."""
    s = np.where(t > 0, 1.0, -1.0)
    if zero == 1.0:
        s = np.where(t < 0, -1.0, 1.0)
    if zero == 0.0 and np.any(t == 0):
        a = np.where(t == 0, 1.0, s)
        b = np.where(t == 0, -1.0, s)
        return [a, b]
    return [s]


def _xnor_backend(name: Optional[str] = None) -> Any:
    """The op table whose pack_signs / xnor ops run the packed layers."""
    from .backend_loader import BackendUnavailable, load_backend
    from .optable import missing_ops
    names = (name,) if name else PREFERRED_BACKENDS
    for n in names:
        try:
            be = load_backend(n)
        except (BackendUnavailable, ImportError, LookupError):
            if name:
                raise
            continue
        if not {"pack_signs", "xnor_conv2d", "xnor_linear"} & set(missing_ops(be)):
            return be
        if name:
            raise LookupError(f"backend {name!r} does not provide the xnor ops")
    from .reference import REFERENCE
    return REFERENCE


# ------------------------------------------------------------------------------------------------------
# export

@dataclass
class ExportReport:
    """Sizes of an export, each against its float counterpart: the binary layers' weights, the whole model's
    weights, and the file (against the same file format holding the float weights instead of the bits)."""
    path: Path
    packed_file_bytes: int
    float_file_bytes: int         # the same archive (meta included) with every exported weight as a float
    checkpoint_file_bytes: int    # the training checkpoint (also holds the optimizer state and noise modules)
    binary_float_bytes: int       # the binary layers' weights as floats (model dtype)
    binary_packed_bytes: int      # their bits + scales
    float_bytes: int              # everything else that is exported, as it is
    layers: list[str] = field(default_factory=list)

    @property
    def binary_ratio(self) -> float:
        return self.binary_float_bytes / max(1, self.binary_packed_bytes)

    @property
    def model_ratio(self) -> float:
        """Float model weights (binary layers as floats + float parts) over the packed model's."""
        return (self.binary_float_bytes + self.float_bytes) / max(1, self.binary_packed_bytes + self.float_bytes)

    @property
    def file_ratio(self) -> float:
        return self.float_file_bytes / max(1, self.packed_file_bytes)

    def summary(self) -> str:
        packed_weights = self.binary_packed_bytes + self.float_bytes
        return (f"wrote {self.path}: {self.packed_file_bytes:,} bytes\n"
                f"  binary layers' weights ({len(self.layers)} layers): {self.binary_float_bytes:,} bytes as floats "
                f"-> {self.binary_packed_bytes:,} bytes as bits + scales ({self.binary_ratio:.1f}x smaller)\n"
                f"  the whole model's weights: {self.binary_float_bytes + self.float_bytes:,} -> {packed_weights:,} "
                f"bytes ({self.model_ratio:.1f}x smaller; float layers and batch norm, "
                f"{self.float_bytes:,} bytes, kept as they are)\n"
                f"  the file: {self.float_file_bytes:,} bytes with float weights -> {self.packed_file_bytes:,} bytes "
                f"({self.file_ratio:.1f}x smaller; {max(0, self.packed_file_bytes - packed_weights):,} bytes of it are "
                f"metadata and zip headers)\n"
                f"  (the training checkpoint, {self.checkpoint_file_bytes:,} bytes, also holds the optimizer state "
                f"and the noise modules, which inference does not use)")


def _binary_layers(model: Any) -> dict[str, Any]:
    from .nn.layers import BinaryConv2d, BinaryLinear
    return {name: m for name, m in model.named_modules() if isinstance(m, (BinaryConv2d, BinaryLinear))}


def _load_checkpoint_model(checkpoint: str | os.PathLike[str]) -> tuple[dict, Any, Any]:
    """(checkpoint dict, resolved TrainConfig, model on the reference with the trained state, eval mode)."""
    from .data import dataset_info
    from .train.checkpoint import check_model_state, check_normalisation, load_run_checkpoint
    from .train.config import TrainConfig
    from .train.factory import build_model
    ck = load_run_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(ck["config"]).resolved()
    info = dataset_info(cfg.dataset)
    check_normalisation(ck["data"]["mean"], ck["data"]["std"], f"{checkpoint}: data", channels=info.channels)
    model = build_model(cfg, info)
    check_model_state(model.state_dict(), ck["model"], f"{checkpoint}: model")
    model.load_state_dict(ck["model"])
    model.eval()
    return ck, cfg, model


def export_packed(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str]) -> ExportReport:
    """Write the packed model of ``checkpoint`` (a ``fdaref train`` checkpoint) to ``out``; see the module doc."""
    from .reference import REFERENCE
    ck, cfg, model = _load_checkpoint_model(checkpoint)
    binary = _binary_layers(model)
    state = model.state_dict()
    arrays: dict[str, np.ndarray] = {}
    layers_meta: dict[str, Any] = {}
    bin_float = bin_packed = 0
    skip = set()
    for name, layer in binary.items():
        w = layer.weight.numpy()
        opts = layer.options
        planes = sign_planes(w, float(opts.zero))
        arrays[f"{name}.weight_bits"] = pack_flat(planes[0])
        if len(planes) == 2:
            arrays[f"{name}.weight_bits_b"] = pack_flat(planes[1])
        s = np.asarray(REFERENCE.weight_scale(w, opts.scale))
        arrays[f"{name}.scale"] = np.ascontiguousarray(s.reshape(-1))
        bin_float += w.nbytes
        bin_packed += sum(arrays[k].nbytes for k in arrays if k.startswith(f"{name}.weight_bits")) + s.nbytes
        skip.add(f"{name}.weight")
        skip.update(f"{name}.{p}" for p in _NOT_EXPORTED)
        is_conv = hasattr(layer, "kernel_size")
        layers_meta[name] = {
            "kind": "conv2d" if is_conv else "linear", "weight_shape": list(w.shape), "planes": len(planes),
            "zero": float(opts.zero), "scale": opts.scale, "scale_shape": list(s.shape),
            "pad_value": float(opts.pad_value), "has_bias": layer.bias is not None,
            **({"stride": list(layer.stride), "padding": list(layer.padding), "dilation": list(layer.dilation)}
               if is_conv else {}),
        }
    float_bytes = 0
    for k, v in state.items():
        if k in skip:
            continue
        arrays[f"float.{k}"] = np.ascontiguousarray(v)
        float_bytes += v.nbytes
    meta = {
        "format": FORMAT, "config": ck["config"], "dataset": cfg.dataset, "data_dir": cfg.data_dir,
        "mean": np.asarray(ck["data"]["mean"]).tolist(), "std": np.asarray(ck["data"]["std"]).tolist(),
        "dtype": cfg.dtype, "binary_layers": layers_meta,
        "source": {"checkpoint": str(checkpoint), "epoch": ck.get("position", {}).get("epoch")},
    }
    float_arrays = {k: v for k, v in arrays.items() if k.startswith("float.")}
    float_arrays.update({f"float.{name}.weight": np.ascontiguousarray(layer.weight.numpy())
                         for name, layer in binary.items()})
    float_file_bytes = len(archive_bytes(meta, float_arrays))
    out = write_archive(out, meta, arrays)
    return ExportReport(out, out.stat().st_size, float_file_bytes, Path(checkpoint).stat().st_size, bin_float,
                        bin_packed, float_bytes, list(binary))


# ------------------------------------------------------------------------------------------------------
# load and run

def _read(path: str | os.PathLike[str]) -> tuple[dict, dict[str, np.ndarray]]:
    from .train.checkpoint import FORMAT as CHECKPOINT_FORMAT
    try:
        return read_archive(path, fmt=FORMAT, kind="packed model", error=PackedModelError,
                            missing_hint=f"write one with `fdaref export --checkpoint CKPT --out {Path(path).name}`")
    except PackedModelError as exc:
        if repr(CHECKPOINT_FORMAT) not in str(exc):
            raise
        raise PackedModelError(f"{path}: a training checkpoint, not a packed model (evaluate it with --checkpoint, "
                               f"or write a packed model with `fdaref export --checkpoint {path} --out MODEL.npz`)"
                               ) from exc


class _PackedLayer:
    """The eval-mode forward of one binary layer on bits: sum over planes of xnor(x plane, w plane) / count,
    times the weight scale, plus the bias."""

    def __init__(self, layer: Any, info: dict, w_planes: list[np.ndarray], scale: np.ndarray, be: Any):
        self.layer, self.info, self.be = layer, info, be
        self.kind = info["kind"]
        self.zero = float(info["zero"])
        self.channels = int(info["weight_shape"][1])
        self.w_packed = [be.to_numpy(be.pack_signs(be.from_numpy(w), axis=1, zero=-1.0)) for w in w_planes]
        self.scale = scale
        # A backend with a prepared-layer fast path (numba's prepare_xnor_conv2d) gets the weights once, here, as a
        # deployed model would: their kernel layout and the zero-padding border tables are then not rebuilt on
        # every call (at batch 1 that rebuild costs as much as the conv).
        prepare = getattr(be, "prepare_xnor_conv2d", None) if self.kind == "conv2d" else None
        self.prepared = None
        if prepare is not None:
            self.prepared = [prepare(be.from_numpy(wp), channels=self.channels, **self._geometry())
                             for wp in self.w_packed]

    def _geometry(self) -> dict:
        return dict(stride=tuple(self.info["stride"]), padding=tuple(self.info["padding"]),
                    dilation=tuple(self.info["dilation"]), pad_value=self.info["pad_value"])

    def __call__(self, x: Any) -> Any:
        from .autodiff import Tensor
        xn = x.numpy()
        be = self.be
        fused = getattr(be, "sign_xnor_conv2d", None) if self.kind == "conv2d" else None
        if fused is not None and (self.zero != 0.0 or not np.any(xn == 0)):
            x_planes = [xn]      # one plane: the fused kernel takes the signs of x itself
            zero = -1.0 if self.zero == 0.0 else self.zero
        else:
            x_planes = sign_planes(xn, self.zero)
            zero = -1.0
        acc = None
        for xpl in x_planes:
            xp = None if fused is not None else be.pack_signs(be.from_numpy(xpl), axis=1, zero=-1.0)
            for i, wp in enumerate(self.w_packed):
                wpb = be.from_numpy(wp)
                if self.kind == "conv2d":
                    xc = np.ascontiguousarray(xpl, dtype=xn.dtype) if fused is not None else None
                    if self.prepared is not None:   # the weights prepared once (numba)
                        layer = self.prepared[i]
                        r = layer.sign_conv(xc, zero=zero) if fused is not None else layer.conv(xp)
                    elif fused is not None:   # sign + pack + XNOR conv in one call (numba's inference fast path)
                        r = fused(xc, wpb, zero=zero, **self._geometry())
                    else:
                        r = be.xnor_conv2d(xp, wpb, channels=self.channels, **self._geometry())
                else:
                    r = be.xnor_linear(xp, wpb, features=self.channels)
                r = be.to_numpy(r).astype(np.int64)
                acc = r if acc is None else acc + r
        count = len(x_planes) * len(self.w_packed)
        if count > 1:
            acc = acc // count   # exact: see the module doc
        dt = xn.dtype
        shape = (1, -1, 1, 1) if self.kind == "conv2d" else (1, -1)
        y = acc.astype(dt) * self.scale.astype(dt).reshape(shape)
        if self.layer.bias is not None:
            y = y + self.layer.bias.numpy().astype(dt).reshape(shape)
        return Tensor.from_numpy(np.ascontiguousarray(y), x.ops, x.device)


class PackedModel:
    """A packed model ready for inference: ``predict(images) -> logits``; ``meta`` holds the data set and its
    normalisation (what ``fdaref evaluate --packed`` reads)."""

    def __init__(self, meta: dict, model: Any, ops: Any, xnor_backend: Any):
        self.meta, self.model, self.ops, self.xnor_backend = meta, model, ops, xnor_backend

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for normalised images (N, C, H, W) (cast to the model's dtype)."""
        from .autodiff import Tensor, no_grad
        x = np.ascontiguousarray(images, dtype=np.dtype(self.meta["dtype"]))
        with no_grad():
            return self.model(Tensor.from_numpy(x, self.ops)).numpy()

    def __repr__(self) -> str:
        return (f"PackedModel({self.meta['config'].get('model')}, {len(self.meta['binary_layers'])} binary layers, "
                f"xnor on {self.xnor_backend.name}, float layers on {self.ops.name})")


def normalisation(meta: dict, path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """The (mean, std) a packed model records, checked (1-D, one per channel of its data set, finite, std > 0);
    PackedModelError naming ``path`` otherwise."""
    from .data import dataset_info
    from .train.checkpoint import check_normalisation
    channels = dataset_info(meta["dataset"]).channels if "dataset" in meta else None
    return check_normalisation(meta.get("mean"), meta.get("std"), f"{path}", PackedModelError, channels=channels)


def _check_layer_meta(path: str | os.PathLike[str], name: str, info: Any, layer: Any,
                      arrays: dict[str, np.ndarray]) -> None:
    """PackedModelError unless the metadata and arrays of binary layer ``name`` are what export_packed writes."""
    def bad(what: str) -> PackedModelError:
        return PackedModelError(f"{path}: binary layer {name}: {what} (expected a file written by `fdaref export`)")
    if not isinstance(info, dict):
        raise bad(f"its metadata is a {type(info).__name__}, not an object")
    is_conv = hasattr(layer, "kernel_size")
    needed = ("kind", "weight_shape", "planes", "zero", "pad_value") + (("stride", "padding", "dilation") if is_conv
                                                                       else ())
    missing = [k for k in needed if k not in info]
    if missing:
        raise bad(f"no {', '.join(missing)} in its metadata")
    if info["kind"] != ("conv2d" if is_conv else "linear"):
        raise bad(f"kind {info['kind']!r}, but the architecture has a {'conv2d' if is_conv else 'linear'} layer")
    if info["weight_shape"] != list(layer.weight.shape):
        raise bad(f"weight shape {info['weight_shape']!r}, the architecture's is {list(layer.weight.shape)}")
    if info["planes"] not in (1, 2):
        raise bad(f"planes {info['planes']!r}, expected 1 or 2")
    keys = [f"{name}.weight_bits", f"{name}.scale"] + ([f"{name}.weight_bits_b"] if info["planes"] == 2 else [])
    absent = [k for k in keys if k not in arrays]
    if absent:
        raise bad(f"the array(s) {', '.join(absent)} are missing")
    scale = arrays[f"{name}.scale"]
    if scale.dtype.kind != "f" or scale.ndim != 1 or scale.size not in (1, layer.weight.shape[0]) \
            or not np.all(np.isfinite(scale)):
        raise bad(f"its scale ({scale.dtype} {list(scale.shape)}) should be finite floats, one per output "
                  "channel or one for the layer")


def load_packed(path: str | os.PathLike[str], *, backend: Optional[str] = None,
                float_backend: Optional[str] = None) -> PackedModel:
    """Rebuild the packed model stored at ``path``.

    ``backend``: the op table for the XNOR kernels (default: the first of :data:`PREFERRED_BACKENDS` that is
    installed, else the reference). ``float_backend``: the op table for the float layers (default: the same).
    A file that lacks anything export_packed writes is a PackedModelError naming it (never a KeyError, nor a
    layer silently left at its initial weights).
    """
    from .backend_loader import load_backend
    from .data import dataset_info
    from .train.checkpoint import check_model_state
    from .train.config import TrainConfig
    from .train.factory import build_model
    meta, arrays = _read(path)
    missing = [k for k, kind in (("config", dict), ("binary_layers", dict), ("dtype", str))
               if not isinstance(meta.get(k), kind)]
    if missing:
        raise PackedModelError(f"{path}: not a packed model written by `fdaref export` (no {', '.join(missing)} "
                               "in its metadata)")
    if any(k in meta for k in ("dataset", "mean", "std")):   # what evaluation reads, checked before any backend loads
        normalisation(meta, path)
    cfg = TrainConfig.from_dict(meta["config"]).resolved()
    if meta["dtype"] != cfg.dtype:
        raise PackedModelError(f"{path}: dtype {meta['dtype']!r} differs from its config's {cfg.dtype!r}")
    model = build_model(cfg, dataset_info(cfg.dataset))
    binary = _binary_layers(model)
    if set(binary) != set(meta["binary_layers"]):
        raise PackedModelError(f"{path}: binary layers {sorted(meta['binary_layers'])} do not match the "
                               f"architecture's {sorted(binary)}")
    for name, layer in binary.items():
        _check_layer_meta(path, name, meta["binary_layers"][name], layer, arrays)
    # What export_packed stores as floats: everything but the binary weights (stored as bits) and noise modules.
    not_float = {f"{name}.{p}" for name in binary for p in ("weight", *_NOT_EXPORTED)}
    state = model.state_dict()
    floats = {k: v for k, v in state.items() if k not in not_float}
    check_model_state(floats, {k[len("float."):]: v for k, v in arrays.items() if k.startswith("float.")},
                      f"{path}: float layers", PackedModelError)
    state.update({k: arrays[f"float.{k}"] for k in floats})
    xbe = _xnor_backend(backend)
    ops = load_backend(float_backend) if float_backend else xbe
    model.load_state_dict(state)
    model.to(ops)
    model.eval()
    dt = np.dtype(cfg.dtype)
    for name, layer in binary.items():
        info = meta["binary_layers"][name]
        shape = info["weight_shape"]
        planes = [unpack_flat(arrays[f"{name}.weight_bits"], shape)]
        if info["planes"] == 2:
            planes.append(unpack_flat(arrays[f"{name}.weight_bits_b"], shape))
        layer.forward = _PackedLayer(layer, info, planes, arrays[f"{name}.scale"].astype(dt), xbe)
    return PackedModel(meta, model, ops, xbe)


def evaluate_packed(path: str | os.PathLike[str], dataset: Optional[str] = None, *, data_dir: Optional[str] = None,
                    batch_size: int = 256, test_subset: Optional[int] = None, backend: Optional[str] = None
                    ) -> dict[str, Any]:
    """Accuracy, confusion matrix and predictions of the packed model on the test set of ``dataset`` (default:
    the one it was trained on), normalised with the training statistics stored in the file."""
    from .data import BatchLoader, load_splits
    from .train.metrics import accuracy_of, confusion_matrix
    pm = load_packed(path, backend=backend)
    name = dataset or pm.meta["dataset"]
    splits = load_splits(name, data_dir or pm.meta.get("data_dir"), subset=1, val_fraction=0.0,
                         test_subset=test_subset)
    mean, std = normalisation(pm.meta, path)
    loader = BatchLoader(splits.test, batch_size, mean, std, dtype=np.dtype(pm.meta["dtype"]).type)
    labels, preds = [], []
    for x, y in loader.epoch(0):
        preds.append(np.argmax(pm.predict(x), axis=1))
        labels.append(y)
    labels_a, preds_a = np.concatenate(labels), np.concatenate(preds)
    cm = confusion_matrix(labels_a, preds_a, splits.info.num_classes)
    return {"mode": "packed", "accuracy": accuracy_of(cm), "confusion": cm, "count": int(cm.sum()),
            "predictions": preds_a, "labels": labels_a, "xnor_backend": pm.xnor_backend.name}
