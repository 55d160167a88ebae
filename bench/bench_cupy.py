"""Speed figures of the CuPy backend on one CUDA GPU, measured side by side in one run.

1. Fused FDA surrogate (closed form, one kernel) on 10^7 float32 elements vs a device-to-device copy of
   the same array (target: at least 0.5x the copy's speed, i.e. copy_time / fda_time >= 0.5).
2. The same kernel vs the literal Eq. 10 written as CuPy array operations, summing n+1 = 19 cosine arrays
   at n = 18 (target: >= 5x faster).
3. One training epoch of binary resnet20 (paper preset, float32, batch 128, synthetic 3x32x32 data) through
   fdaref's engine with the cupy backend vs the torch backend on the same GPU (target: cupy within 2x).

    python bench/bench_cupy.py [--images 50000] [--batch 128] [--out bench/results/cupy_cuda.json]

Without a CUDA device (cupy.is_available() is False) it prints why and exits with status 0, writing
nothing. Item 3 is skipped (and reported) when the torch backend or the engine cannot run on the GPU.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from timing import interleaved, report  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "cupy_cuda.json"


def gpu_or_reason() -> str | None:
    """None when the CuPy backend can run here, else the reason (one line)."""
    from fdaref.backend_loader import BackendUnavailable, load_backend
    try:
        load_backend("cupy")
    except BackendUnavailable as exc:
        return str(exc)
    return None


def bench_kernels(rows: list[dict], size: int, repeats: int) -> None:
    import cupy

    from fdaref.backend_loader import load_backend
    be = load_backend("cupy")
    sync = cupy.cuda.Stream.null.synchronize
    x = cupy.asarray(np.random.default_rng(0).normal(0, 3, size).astype(np.float32))
    out = cupy.empty_like(x)
    params = {"n": 18, "omega": 0.1, "clip": None}
    omega, n = 0.1, 18

    def fused() -> object:
        return be.surrogate(x, "fda", params)

    def copy() -> object:
        cupy.copyto(out, x)  # device-to-device copy of the same number of bytes read and written
        return out

    def series() -> object:  # Eq. 10 literally, as array operations: n+1 cosine arrays summed
        t = x * np.float32(omega)
        total = cupy.zeros_like(x)
        for i in range(n + 1):
            total += cupy.cos(np.float32(2 * i + 1) * t)
        return total * np.float32(4 * omega / math.pi)

    t = interleaved({"fused": fused, "copy": copy, "series": series}, repeats=repeats, warmup=3, sync=sync)
    vs_copy = t["copy"] / t["fused"]
    vs_series = t["series"] / t["fused"]
    gbps = 2 * x.nbytes / t["copy"] / 1e9
    rows.append({"name": f"fused fda vs device copy, {size:.0e} float32 (fraction of copy speed)",
                 "figure": vs_copy, "target": ">= 0.5", "ok": vs_copy >= 0.5, "seconds": t,
                 "copy_GBps": gbps})
    rows.append({"name": f"fused fda vs n+1=19 cosine arrays (Eq. 10 as CuPy ops), {size:.0e} float32",
                 "figure": vs_series, "target": ">= 5", "ok": vs_series >= 5, "seconds": t})


def _epoch_runner(backend_name: str, images: int, batch: int):
    """A function that runs one epoch of resnet20 training on ``backend_name`` / cuda (data pre-generated)."""
    from fdaref.autodiff import Tensor
    from fdaref.functions import cross_entropy
    from fdaref.backend_loader import load_backend
    from fdaref.nn.models import resnet20
    from fdaref.optim import SGD

    ops = load_backend(backend_name)
    model = resnet20(in_channels=3, num_classes=10, seed=0, dtype=np.float32).to(ops, "cuda")
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    steps = max(1, images // batch)
    xs = rng.normal(size=(min(steps, 8), batch, 3, 32, 32)).astype(np.float32)  # cycled: bounded host memory
    ys = rng.integers(0, 10, size=(min(steps, 8), batch))

    def step(i: int) -> object:
        x = Tensor.from_numpy(xs[i % len(xs)], ops, "cuda")
        y = ops.from_numpy(ys[i % len(ys)], "cuda")
        loss = cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    def epoch() -> None:
        loss = None
        for i in range(steps):
            loss = step(i)
        float(loss.numpy())  # one host sync at the end, like a real epoch's logging

    return epoch, step, steps


def bench_epoch(rows: list[dict], images: int, batch: int) -> None:
    import cupy
    try:
        import torch
        torch_sync = torch.cuda.synchronize
        torch.backends.cuda.matmul.allow_tf32 = False  # the same arithmetic as the cupy backend's FP32 GEMMs
        torch.backends.cudnn.allow_tf32 = False
    except Exception as exc:
        rows.append({"name": "resnet20 epoch cupy vs torch", "figure": float("nan"), "target": "<= 2",
                     "ok": False, "skipped": f"torch unavailable: {exc}"})
        return

    def sync() -> None:
        cupy.cuda.Stream.null.synchronize()
        torch_sync()

    runners = {}
    for name in ("cupy", "torch"):
        try:
            epoch, step, steps = _epoch_runner(name, images, batch)
            for i in range(3):  # warm-up: kernel compilation, cuBLAS / cuDNN plans, memory pools
                step(i)
            sync()
            runners[name] = epoch
        except Exception as exc:  # the other backend or the engine not ready on this machine
            rows.append({"name": "resnet20 epoch cupy vs torch", "figure": float("nan"), "target": "<= 2",
                         "ok": False, "skipped": f"{name} backend cannot train on cuda: {type(exc).__name__}: {exc}"})
            return
    t = interleaved(runners, repeats=2, warmup=0, sync=sync)
    ratio = t["cupy"] / t["torch"]
    rows.append({"name": f"resnet20 epoch ({steps} steps of {batch}, float32), cupy time / torch time",
                 "figure": ratio, "target": "<= 2", "ok": ratio <= 2, "seconds": t,
                 "images_per_s": {k: steps * batch / v for k, v in t.items()}})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=10**7, help="elements for the kernel figures (default 1e7)")
    p.add_argument("--repeats", type=int, default=21, help="timed repeats per kernel candidate (default 21)")
    p.add_argument("--images", type=int, default=50000, help="images per training epoch (default 50000)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--skip-epoch", action="store_true", help="only the kernel figures")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)

    reason = gpu_or_reason()
    if reason is not None:
        print(f"bench_cupy: skipped, the cupy backend cannot run here: {reason}", file=sys.stderr)
        return 0
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    gpu = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    rows: list[dict] = []
    started = time.perf_counter()
    bench_kernels(rows, args.size, args.repeats)
    if not args.skip_epoch:
        bench_epoch(rows, args.images, args.batch)
    report(f"CuPy backend on {gpu}", rows, args.out, gpu=gpu, cupy=cupy.__version__,
           wall_s=time.perf_counter() - started)
    return 0 if all(r.get("ok", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
