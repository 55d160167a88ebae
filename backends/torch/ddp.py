"""Multi-GPU (or multi-process CPU) training of the torch-native FDA models with DistributedDataParallel.

Launch with torchrun, one process per GPU::

    torchrun --nproc_per_node 8 -m fdaref.backends.torch.ddp --model resnet20 --dataset cifar10 \
        --data-dir /data/cifar-10-batches-py --epochs 400 --batch-size 16 --out runs/ddp.json

Each process takes ``LOCAL_RANK`` from torchrun, uses ``cuda:LOCAL_RANK`` with NCCL when CUDA is there and
the CPU with gloo otherwise (that is how the launch path is tested). ``--batch-size`` is per process (the
global batch is world_size times it). Every rank builds the model from the same seed and DDP broadcasts
rank 0's weights; a DistributedSampler shards the data; the SEMANTICS 6 schedule (:class:`FDASchedule`) and the
cosine learning rate step per epoch; rank 0 writes a JSON summary (per-epoch loss / accuracy, n, alpha,
images/s and a checksum of the final weights, which all ranks agree on).

The fdaref engine's own training loop (``fdaref train --backend torch``) is single-process; this module is
the torch-native path for people who train in PyTorch.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from fdaref.presets import get_preset

from .modules import FDASchedule, resnet20, vgg_small


def _data(args: argparse.Namespace) -> tuple[TensorDataset, int, int, int]:
    """(train set, channels, image size, classes): synthetic, or an fdaref data set normalised by its splits."""
    if args.dataset == "synthetic":
        g = torch.Generator().manual_seed(args.seed)
        x = torch.randn(args.synthetic_size, 3, args.image_size, args.image_size, generator=g)
        y = torch.randint(0, 10, (args.synthetic_size,), generator=g)
        return TensorDataset(x, y), 3, args.image_size, 10
    from fdaref.data.registry import load_splits
    splits = load_splits(args.dataset, args.data_dir, seed=args.seed, subset=args.subset)
    tr = splits.train
    scale = float(tr.info.pixel_max)
    img = tr.images.astype(np.float32) / scale
    img = (img - splits.mean.reshape(1, -1, 1, 1)) / splits.std.reshape(1, -1, 1, 1)
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    return TensorDataset(x, torch.from_numpy(tr.labels)), x.shape[1], x.shape[2], tr.info.num_classes


def _checksum(model: torch.nn.Module) -> float:
    with torch.no_grad():
        return float(sum(p.double().sum().item() for p in model.parameters()))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fdaref.backends.torch.ddp", description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("resnet20", "vgg_small"), default="resnet20")
    p.add_argument("--preset", default="paper")
    p.add_argument("--dataset", default="synthetic", help="synthetic, or an fdaref data set name (cifar10, ...)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--synthetic-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps-per-epoch", type=int, default=None, help="cap the steps of an epoch (smoke runs)")
    p.add_argument("--batch-size", type=int, default=128, help="per process")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--out", default=None, help="JSON summary written by rank 0")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if "RANK" not in os.environ:
        raise SystemExit("launch with torchrun (e.g. torchrun --nproc_per_node 2 -m fdaref.backends.torch.ddp)")
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    try:
        data, channels, size, classes = _data(args)
        options = get_preset(args.preset)
        build = resnet20 if args.model == "resnet20" else vgg_small
        kwargs: dict[str, Any] = dict(in_channels=channels, num_classes=classes, options=options, seed=args.seed)
        if args.model == "vgg_small":
            kwargs["image_size"] = size
        model = build(**kwargs).to(device)
        schedule = FDASchedule(model, args.epochs)
        ddp = DDP(model, device_ids=[local_rank] if use_cuda else None)
        opt = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
        loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler, drop_last=True)
        history = []
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)
            sched = schedule.on_epoch_start(epoch)
            for group in opt.param_groups:
                group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * epoch / args.epochs))
            ddp.train()
            seen, loss_sum, correct, t0 = 0, 0.0, 0, time.perf_counter()
            for step, (x, y) in enumerate(loader):
                if args.steps_per_epoch is not None and step >= args.steps_per_epoch:
                    break
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                out = ddp(x)
                loss = F.cross_entropy(out, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                seen += len(y)
                loss_sum += loss.item() * len(y)
                correct += int((out.argmax(1) == y).sum())
            stats = torch.tensor([seen, loss_sum, correct], dtype=torch.float64, device=device)
            dist.all_reduce(stats)
            elapsed = time.perf_counter() - t0
            history.append({"epoch": epoch, **sched, "train_loss": float(stats[1] / max(stats[0], 1)),
                            "train_acc": float(stats[2] / max(stats[0], 1)),
                            "images_per_s": float(stats[0]) / elapsed if elapsed > 0 else None})
            if rank == 0:
                print(json.dumps(history[-1]), flush=True)
        sums = torch.tensor([_checksum(model)], dtype=torch.float64, device=device)
        gathered = [torch.zeros_like(sums) for _ in range(world)]
        dist.all_gather(gathered, sums)
        if rank == 0 and args.out:
            summary = {"world_size": world, "backend": dist.get_backend(), "device": str(device),
                       "model": args.model, "preset": args.preset, "history": history,
                       "weight_checksums": [float(s.item()) for s in gathered]}
            with open(args.out, "w") as fh:
                json.dump(summary, fh, indent=1)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
