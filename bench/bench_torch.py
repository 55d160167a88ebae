"""Speed of the torch backend, measured side by side in one run (ratios are taken within the run).

(a) FDA backward, g * fda'(x) at n = 18 on 10^7 elements: the naive form (n+1 cosine tensors summed, written
    here as the baseline) against the fused closed form (eager, and through torch.compile with --compile).
(b) binary resnet20 with FDA + the noise module, batch 128, 3x32x32: training images/s against the same
    architecture in float, and against a naive baseline layer (BiBench-style: the sign's backward sums a list
    of n+1 cosine tensors, the noise module runs through autograd); peak GPU memory against the float model
    (CUDA only).

    python bench/bench_torch.py                      # CPU, writes bench/results/torch_cpu.json
    python bench/bench_torch.py --device cuda        # the same on a GPU -> bench/results/torch_cuda.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from fdaref.backends.torch import fda_grad, fda_grad_compiled
from fdaref.backends.torch import modules as M

RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timeit(fn: Callable[[], Any], device: str, repeat: int, warmup: int = 1) -> float:
    """Median seconds of ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


# -- (a) the surrogate ---------------------------------------------------------------------------------

def naive_fda_backward(g: torch.Tensor, x: torch.Tensor, n: int, omega: float) -> torch.Tensor:
    """The baseline: Eq. 10 literally, a list of n+1 cosine tensors summed, times g."""
    terms = [torch.cos((2 * i + 1) * omega * x) for i in range(n + 1)]
    return g * (4 * omega / math.pi) * sum(terms)


def bench_surrogate(device: str, numel: int, n: int, repeat: int, compile_: bool) -> dict[str, Any]:
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(numel, device=device, generator=gen) * 3
    g = torch.randn(numel, device=device, generator=gen)
    out: dict[str, Any] = {"numel": numel, "n": n, "omega": 0.1, "dtype": "float32"}
    out["naive_s"] = timeit(lambda: naive_fda_backward(g, x, n, 0.1), device, repeat)
    out["fused_eager_s"] = timeit(lambda: fda_grad(x, n, 0.1, g=g), device, repeat)
    out["speedup_eager"] = out["naive_s"] / out["fused_eager_s"]
    ref = naive_fda_backward(g.double(), x.double(), n, 0.1)
    peak = 4 * 0.1 / math.pi * (n + 1)
    out["max_err_eager_over_peak"] = float((fda_grad(x, n, 0.1, g=g).double() - ref).abs().max() / peak
                                           / g.abs().max())
    if compile_:
        t0 = time.perf_counter()
        try:
            fda_grad_compiled(x, n, 0.1, g=g)
            _sync(device)
            out["compile_s"] = time.perf_counter() - t0
            out["fused_compiled_s"] = timeit(lambda: fda_grad_compiled(x, n, 0.1, g=g), device, repeat)
            out["speedup_compiled"] = out["naive_s"] / out["fused_compiled_s"]
            out["max_err_compiled_over_peak"] = float(
                (fda_grad_compiled(x, n, 0.1, g=g).double() - ref).abs().max() / peak / g.abs().max())
        except Exception as exc:  # no compiler / triton here: report it, keep the eager figure
            out["compile_error"] = f"{type(exc).__name__}: {exc}"[:300]
    best = min(v for k, v in out.items() if k in ("fused_eager_s", "fused_compiled_s"))
    out["speedup"] = out["naive_s"] / best
    out["target"] = ">= 5x"
    return out


# -- (b) training throughput ------------------------------------------------------------------------------

class NaiveSign(torch.autograd.Function):
    """BiBench-style baseline: sign forward; backward g times a Python list of n+1 cosine tensors, summed."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, n: int, omega: float) -> torch.Tensor:
        ctx.save_for_backward(t)
        ctx.n, ctx.omega = n, omega
        return torch.sign(t)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        (t,) = ctx.saved_tensors
        return naive_fda_backward(g, t, ctx.n, ctx.omega), None, None


def rows_noise(noise: M.NoiseAdaptation, t: torch.Tensor, layout: str) -> torch.Tensor:
    """BiBench-style e(t) through autograd: activations permuted to (B H W, C) rows and back (written here
    so that the baseline stays what it was when the library's own module moved to the NCHW form)."""
    nchw = layout == "activation" and t.dim() == 4
    rows = t.permute(0, 2, 3, 1).reshape(-1, noise.d) if nchw else t.reshape(-1, noise.d)
    fc = torch.relu(rows @ noise.w1) @ noise.w2
    if nchw:
        b, c, h, w = t.shape
        fc = fc.reshape(b, h, w, c).permute(0, 3, 1, 2)
    else:
        fc = fc.reshape(t.shape)
    if noise.eta == "sin":
        return fc + noise.a * torch.sin(t)
    if noise.eta == "linear":
        return fc + noise.a * t
    return fc


class NaiveQuantizer(M.FDAQuantizer):
    """The naive baseline layer's quantizer: NaiveSign + alpha * e(t) through autograd (rows via permute)."""

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        z = NaiveSign.apply(t, int(self.params["n"]), float(self.params["omega"]))
        if self.training and self.alpha != 0 and self.noise is not None:
            z = z + self.alpha * rows_noise(self.noise, t, self.layout)
        return z


def _model(kind: str) -> torch.nn.Module:
    if kind == "float":
        return M.resnet20(binary=False, seed=0)
    model = M.resnet20(seed=0)
    M.FDASchedule(model, 2).on_epoch_start(1)  # n = 18, the most expensive point of the schedule
    for layer in M.fda_layers(model):          # alpha = 0 at the last epoch: keep the module's work in
        for q in (layer.w_quant, layer.a_quant):
            q.alpha = 0.05
            if kind == "naive":
                q.__class__ = NaiveQuantizer
    return model


def bench_training(device: str, batch: int, steps: int) -> dict[str, Any]:
    """Training steps of the three models, timed round-robin (one step of each in turn, so load that comes
    and goes on a shared machine hits all three alike); the median step gives images/s."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    out: dict[str, Any] = {"model": "resnet20", "batch": batch, "input": [3, 32, 32], "steps": steps}
    kinds = ("float", "fda", "naive")
    models = {k: _model(k).to(device).train() for k in kinds}
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in models.items()}

    def step(kind: str) -> None:
        opts[kind].zero_grad(set_to_none=True)
        F.cross_entropy(models[kind](x), y).backward()
        opts[kind].step()

    for kind in kinds:  # warm-up (and, on CUDA, the peak memory of one step of each model alone)
        step(kind)
        _sync(device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            step(kind)
            torch.cuda.synchronize()
            out[f"{kind}_peak_mem_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(steps):
        for kind in kinds:
            t0 = time.perf_counter()
            step(kind)
            _sync(device)
            times[kind].append(time.perf_counter() - t0)
    for kind in kinds:
        out[f"{kind}_images_per_s"] = batch / sorted(times[kind])[len(times[kind]) // 2]
    out["fda_vs_float"] = out["fda_images_per_s"] / out["float_images_per_s"]
    out["fda_vs_naive"] = out["fda_images_per_s"] / out["naive_images_per_s"]
    out["targets"] = {"fda_vs_float": ">= 0.6", "fda_vs_naive": ">= 2"}
    if device.startswith("cuda"):
        out["fda_mem_vs_float"] = out["fda_peak_mem_mib"] / out["float_peak_mem_mib"]
        out["targets"]["fda_mem_vs_float"] = "<= 1.5"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--numel", type=int, default=10**7)
    p.add_argument("--n", type=int, default=18)
    p.add_argument("--repeat", type=int, default=None, help="timed repeats of (a) (default: cpu 5, cuda 50)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=None, help="timed training steps (default: cpu 3, cuda 30)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the torch.compile kernel")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/torch_<device>.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("no CUDA device here", file=sys.stderr)
        return 2
    if cuda:  # the benchmark measures the IEEE float32 path the conformance suite checks
        torch.backends.cudnn.benchmark = True
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({platform.processor() or platform.machine()}, "
                                                                 f"{args.threads} threads)",
        "torch": torch.__version__, "python": platform.python_version(),
        "command": " ".join(([f"FDAREF_TORCH_COMPILE={os.environ['FDAREF_TORCH_COMPILE']}"]
                             if "FDAREF_TORCH_COMPILE" in os.environ else [])
                            + ["python", "bench/bench_torch.py"] + (argv if argv is not None else sys.argv[1:])),
    }
    # (b) runs before (a): torch.compile in (a) leaves inductor's compile workers behind, and on a small CPU
    # they slow the op-heavy FDA step far more than the float one (2 threads, 2 cores: fda 22 vs 54 images/s
    # after / without a compile in the same process), which would measure the compiler, not the models.
    if not args.skip_training:
        result["training"] = bench_training(args.device, args.batch, args.steps or (30 if cuda else 3))
        print(json.dumps(result["training"], indent=1), flush=True)
    result["fda_backward"] = bench_surrogate(args.device, args.numel, args.n, args.repeat or (50 if cuda else 5),
                                             args.compile)
    print(json.dumps(result["fda_backward"], indent=1), flush=True)
    path = Path(args.out) if args.out else RESULTS / f"torch_{'cuda' if cuda else 'cpu'}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
