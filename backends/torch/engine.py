"""The torch backend's step engines for fdaref's Trainer: torch autograd through fdaref's torch modules.

``fdaref train --backend torch`` uses :class:`TorchEngine` by default (``--engine torch``; ``torch-compile``
runs the model through ``torch.compile``); ``--engine fdaref`` keeps fdaref's own autodiff engine over the
torch op table. The Trainer (fdaref.train.loop) finds these through ``backend.training_engines``.

- The model is the torch counterpart of the reference model (:data:`.modules.MODELS`), initialised with the
  reference model's seeded weights, so both engines start from the same parameters.
- Batches are assembled on the device: the training images (uint8) live there for the whole run; each
  epoch's order and crop / flip come from the loader's plan (fdaref.data.loader, the seeded generator of
  the host loader) and its normalisation from a per-channel lookup table computed by the host's own
  ``normalize``, so the device batches equal the host loader's bit for bit.
- Loss sum and correct count accumulate on the device; nothing in a step waits for the device.
- State in and out is in the reference format (fdaref names, numpy arrays, fdaref.optim's optimizer state).
- Under torchrun (torch.distributed initialised, world size > 1) the engine wraps the model in
  DistributedDataParallel: every rank takes its contiguous slice of each global batch (the loader's
  batch size is the global one), the gradients are averaged, the statistics summed over ranks when read,
  and only rank 0 writes the run's files (:attr:`TorchEngine.is_writer`). See :mod:`.ddp`.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from fdaref.errors import InputError

from fdaref.data import BatchLoader
from fdaref.data.transforms import normalize
from fdaref.train.evaluation import EvalResult
from fdaref.train.metrics import accuracy_of, confusion_matrix

from . import modules as M
from .ops import set_fp32_precision

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
CUDA_SYNC_EVERY = 50   # steps between stat reads on a GPU (each read waits for the device)


class DeviceData:
    """One split of a data set on the device: raw images, labels and the normalisation lookup table.

    Batches come out exactly as ``BatchLoader.epoch`` makes them on the host (same order, crops, flips and
    float values), as device tensors. Needs integer pixels (every fdaref image data set stores uint8).
    """

    def __init__(self, loader: BatchLoader, device: torch.device, dtype: torch.dtype) -> None:
        data, info = loader.data, loader.data.info
        self.loader, self.device = loader, device
        levels = int(np.iinfo(data.images.dtype).max) + 1
        c = data.images.shape[1]
        grid = np.broadcast_to(np.arange(levels, dtype=data.images.dtype), (1, c, 1, levels))
        lut = normalize(np.ascontiguousarray(grid), loader.mean, loader.std, info.pixel_max, loader.dtype)
        self.lut = torch.from_numpy(np.ascontiguousarray(lut.reshape(c, levels))).to(device, dtype)
        self.levels = levels
        pad = info.pad if loader.augment else 0
        images = torch.from_numpy(np.ascontiguousarray(data.images)).to(device)
        if pad:  # raw 0 (black) around the images, before normalisation, as random_crop_flip pads
            images = F.pad(images, (pad, pad, pad, pad))
        self.images = images.to(torch.int64 if levels > 256 else torch.uint8)
        self.labels = torch.from_numpy(data.labels).to(device)
        self.pad, self.h, self.w = pad, data.images.shape[2], data.images.shape[3]
        self.channel_base = (torch.arange(c, device=device) * levels).view(1, c, 1, 1)

    @staticmethod
    def supports(loader: BatchLoader) -> bool:
        return np.issubdtype(loader.data.images.dtype, np.integer) and loader.data.images.dtype.itemsize <= 2

    def epoch(self, epoch: int, start_batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader, dev = self.loader, self.device
        order, aug = loader.plan(epoch)
        order_d = torch.from_numpy(order).to(dev)
        rows = torch.arange(self.h, device=dev).view(1, -1)
        cols = torch.arange(self.w, device=dev).view(1, -1)
        if aug is not None:
            dy = torch.from_numpy(aug.dy).to(dev).view(-1, 1)
            dx = torch.from_numpy(aug.dx).to(dev).view(-1, 1)
            flip = torch.from_numpy(aug.flip).to(dev).view(-1, 1)
        bs = loader.batch_size
        for b in range(start_batch, len(loader)):
            sel = slice(b * bs, (b + 1) * bs)
            idx = order_d[sel]
            if aug is not None:
                r = dy[sel] + rows                                           # (B, H) rows of the padded image
                c = dx[sel] + torch.where(flip[sel], self.w - 1 - cols, cols)  # (B, W), mirrored where flip
                pix = self.images[idx.view(-1, 1, 1, 1), torch.arange(self.images.shape[1], device=dev).view(
                    1, -1, 1, 1), r.view(len(idx), 1, -1, 1), c.view(len(idx), 1, 1, -1)]
            else:
                pix = self.images[idx]
            x = self.lut.view(-1)[pix.to(torch.int64) + self.channel_base]
            yield x, self.labels[idx]


class TorchEngine:
    """Training steps by torch autograd on fdaref's torch modules (see the module docstring)."""

    name = "torch"

    def __init__(self, cfg: Any, reference: Any, info: Any, *, compile_model: bool = False) -> None:
        self.device = torch.device(cfg.device)
        self.dtype = _DTYPES[cfg.dtype]
        if self.device.type == "cuda":
            set_fp32_precision(tf32=False)   # once, for the run: IEEE float32 as the reference computes
        self.sync_every = CUDA_SYNC_EVERY if self.device.type == "cuda" else 1
        self.label_smoothing = float(cfg.label_smoothing)
        self._reference = reference
        build = M.MODELS[cfg.model]
        kwargs: dict[str, Any] = {"image_size": info.height} if cfg.model == "vgg_small" else {}
        model = build(info.channels, info.num_classes, options=cfg.options(), device=self.device, dtype=self.dtype,
                      **kwargs)
        M.load_reference_state_dict(model, reference.state_dict())   # the reference's seeded initial weights
        self.model = model.train()
        named = dict(self.model.named_parameters())
        self._params = [(ref_name, named[M.torch_name(ref_name)]) for ref_name, _ in reference.named_parameters()]
        params = [p for _, p in self._params]
        self.optimizer_kind = cfg.optimizer
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.steps = 0
        self.rank, self.world = _distributed()
        self.is_writer = self.rank == 0
        if self.world > 1 and cfg.batch_size % self.world:
            raise InputError(f"batch_size: the global batch {cfg.batch_size} must divide evenly over "
                             f"{self.world} processes")
        trained = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()] \
                if self.device.type == "cuda" else None
            trained = DistributedDataParallel(self.model, device_ids=ids)
        self.forward = torch.compile(trained) if compile_model else trained
        self.eval_forward = torch.compile(self.model) if compile_model else self.model
        self._data: dict[int, DeviceData] = {}
        self.reset_stats(0.0, 0, 0)

    # -- batches and steps ---------------------------------------------------------------------------
    def _device_data(self, loader: BatchLoader) -> DeviceData | None:
        if not DeviceData.supports(loader):
            return None
        key = id(loader)
        if key not in self._data:
            self._data[key] = DeviceData(loader, self.device, self.dtype)
        return self._data[key]

    def batches(self, loader: BatchLoader, epoch: int, start_batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        data = self._device_data(loader)
        if data is not None:
            return data.epoch(epoch, start_batch)
        return ((torch.from_numpy(x).to(self.device, self.dtype), torch.from_numpy(y).to(self.device))
                for x, y in loader.epoch(epoch, start_batch=start_batch))

    def set_schedule(self, epoch: int, epochs: int) -> dict[str, Any]:
        return M.FDASchedule(self.model, epochs).on_epoch_start(epoch)

    def reset_stats(self, loss_sum: float, correct: int, seen: int) -> None:
        if self.rank != 0:  # the position's sums count once, on rank 0; read_stats adds the ranks up
            loss_sum, correct = 0.0, 0
        self._loss_sum = torch.tensor(float(loss_sum), dtype=torch.float64, device=self.device)
        self._correct = torch.tensor(int(correct), dtype=torch.int64, device=self.device)
        self._seen = int(seen)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        if self.world > 1:  # this rank's contiguous slice of the global batch
            per = x.shape[0] // self.world
            x, y = x.narrow(0, self.rank * per, per), y.narrow(0, self.rank * per, per)
            self._seen += per * (self.world - 1)   # the other ranks' images, counted here once
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.forward(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        with torch.no_grad():
            self._loss_sum.add_(loss.detach().to(torch.float64) * y.shape[0])
            self._correct.add_((logits.argmax(1) == y).sum())
        self._seen += int(y.shape[0])

    def read_stats(self) -> tuple[float, int, int]:
        if self.world > 1:
            both = torch.stack([self._loss_sum, self._correct.to(torch.float64)])
            dist.all_reduce(both)
            return float(both[0].item()), int(both[1].item()), self._seen
        return float(self._loss_sum.item()), int(self._correct.item()), self._seen

    @property
    def last_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def all_finite(self) -> bool:
        tensors = [t for t in self.model.state_dict().values() if t.is_floating_point()]
        checks = torch.stack([torch.isfinite(t).all() for t in tensors] + [torch.isfinite(self._loss_sum)])
        ok = checks.all().to(torch.float32)
        if self.world > 1:   # every rank stops, or none
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item())

    # -- evaluation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, loader: BatchLoader) -> EvalResult:
        self.model.eval()
        try:
            loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
            preds, labels = [], []
            for x, y in self.batches(loader, 0, 0):
                logits = self.eval_forward(x)   # the unwrapped model: no collective, every rank alike
                loss_sum += F.cross_entropy(logits, y).to(torch.float64) * y.shape[0]
                preds.append(logits.argmax(1))
                labels.append(y)
            cm = confusion_matrix(torch.cat(labels).cpu().numpy(), torch.cat(preds).cpu().numpy(),
                                  loader.data.info.num_classes)
        finally:
            self.model.train()
        count = int(cm.sum())
        return EvalResult(float(loss_sum.item()) / count, accuracy_of(cm), cm, count)

    # -- state in the reference format ---------------------------------------------------------------
    def model_state(self) -> dict[str, np.ndarray]:
        return dict(M.reference_state_dict(self.model))

    def load_model_state(self, state: dict[str, np.ndarray]) -> None:
        M.load_reference_state_dict(self.model, state)

    _STATE_NAMES = {"sgd": {"momentum": "momentum_buffer"}, "adam": {"m": "exp_avg", "v": "exp_avg_sq"}}

    def optimizer_state(self) -> dict[str, Any]:
        names = self._STATE_NAMES[self.optimizer_kind]
        state = []
        for _, p in self._params:
            s = self.optimizer.state.get(p, {})
            state.append({ref: s[own].detach().cpu().numpy().copy() for ref, own in names.items()
                          if s.get(own) is not None})
        return {"lr": float(self.optimizer.param_groups[0]["lr"]), "steps": self.steps, "state": state}

    def load_optimizer_state(self, sd: dict[str, Any]) -> None:
        if len(sd["state"]) != len(self._params):
            raise ValueError(f"optimizer state: the checkpoint has {len(sd['state'])} parameters, the model "
                             f"{len(self._params)}")
        names = self._STATE_NAMES[self.optimizer_kind]
        self.steps = int(sd["steps"])
        for (ref_name, p), s in zip(self._params, sd["state"]):
            own: dict[str, torch.Tensor] = {}
            for ref, name in names.items():
                if ref in s:
                    v = np.asarray(s[ref])
                    if v.shape != tuple(p.shape):
                        raise ValueError(f"optimizer state {ref!r} of {ref_name}: shape {v.shape}, the parameter "
                                         f"{tuple(p.shape)}")
                    own[name] = torch.from_numpy(v.copy()).to(p.device, p.dtype)
            if own and self.optimizer_kind == "adam":
                own["step"] = torch.tensor(float(self.steps))
            if own:
                self.optimizer.state[p] = own
            else:
                self.optimizer.state.pop(p, None)
        for group in self.optimizer.param_groups:
            group["lr"] = float(sd["lr"])

    def reference_model(self) -> Any:
        self._reference.load_state_dict(self.model_state())
        return self._reference


def _distributed() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def eager_engine(cfg: Any, reference: Any, info: Any) -> TorchEngine:
    return TorchEngine(cfg, reference, info)


def compiled_engine(cfg: Any, reference: Any, info: Any) -> TorchEngine:
    engine = TorchEngine(cfg, reference, info, compile_model=True)
    engine.name = "torch-compile"
    return engine


TRAINING_ENGINES = {"torch": eager_engine, "torch-compile": compiled_engine}
# Runs from this many optimizer steps on compile by default (TorchBackend.default_engine). Measured on a
# 2-core CPU, one thread (bench/bench_torch.py): the compile of binary resnet20 takes 11-31 s (warm / cold
# Inductor cache; minutes on a heavily loaded machine) and a step drops from ~340 to ~225 ms, so it pays back
# after 100-300 steps; 1,000 leaves short runs (tests, ablations) eager with a margin. The demo's 4 x 281 =
# 1,124 steps compile.
COMPILE_MIN_STEPS = 1000
