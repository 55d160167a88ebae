"""Data-parallel training with torchrun: fdaref's one Trainer, the torch engine wrapped in
DistributedDataParallel, one process per GPU (or per CPU process with gloo).

Launch with torchrun; the options are ``fdaref train``'s::

    torchrun --nproc_per_node 8 -m fdaref.backends.torch.ddp --backend torch --device cuda \\
        --model resnet20 --dataset cifar10 --data-dir /data/cifar-10-batches-py --batch-size 1024 --out runs/ddp

Each process takes ``LOCAL_RANK`` from torchrun and uses ``cuda:LOCAL_RANK`` with NCCL where CUDA is there,
the CPU with gloo otherwise (that is how the launch path is tested). ``--batch-size`` is the global batch:
every rank trains on its contiguous slice of each batch of the seeded loader (so the data order, the
schedules, the learning rate per step and the checkpoints are those of a single-process run), DDP averages
the gradients and keeps the replicas identical, and rank 0 writes the run directory (metrics.jsonl,
checkpoint.npz, summary.json) plus ``ddp.json``: the world size, the process-group backend and a checksum
of every rank's final weights (they agree).
"""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

import torch
import torch.distributed as dist

from fdaref.atomic import write_json_atomic


def _checksum(model: torch.nn.Module) -> float:
    with torch.no_grad():
        return float(sum(p.double().sum().item() for p in model.parameters()))


def parser() -> argparse.ArgumentParser:
    from fdaref.cli.train import add_run_arguments
    p = argparse.ArgumentParser(prog="torchrun ... -m fdaref.backends.torch.ddp", description=__doc__.splitlines()[0])
    add_run_arguments(p)
    p.add_argument("--out", required=True, help="run directory (written by rank 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    if "RANK" not in os.environ:
        raise SystemExit("launch with torchrun (e.g. torchrun --nproc_per_node 2 -m fdaref.backends.torch.ddp ...)")
    from fdaref.cli.train import _resume_config, config_from_args
    from fdaref.train import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = torch.cuda.is_available() and args.device == "cuda"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        cfg = _resume_config(args) if args.resume else config_from_args(args, out=args.out)
        cfg.backend = "torch"
        trainer = Trainer(cfg, progress=not args.quiet)
        result = trainer.run(resume=args.resume)
        model = trainer.engine.model
        sums = torch.tensor([_checksum(model)], dtype=torch.float64,
                            device=next(model.parameters()).device)
        gathered = [torch.zeros_like(sums) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, sums)
        if dist.get_rank() == 0:
            write_json_atomic(result.out / "ddp.json", {
                "world_size": dist.get_world_size(), "backend": dist.get_backend(), "status": result.status,
                "weight_checksums": [float(s.item()) for s in gathered]})
        # Tear down together: a rank that destroys its gloo group while rank 0 still writes can abort at exit
        # ("terminate called without an active exception", about 1 run in 5 here without this barrier).
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
