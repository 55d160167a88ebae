"""Speed of the torch backend, measured side by side in one run (ratios are taken within the run).

(a) FDA backward, g * fda'(x) at n = 18 on 10^7 elements: the naive form (n+1 cosine tensors summed, written
    here as the baseline) against the fused closed form (eager, and through torch.compile with --compile);
    on the CPU the eager figure is the numba loop (cpu_loops), timed also with the loops off.
(b) binary resnet20 with FDA + the noise module, batch 128, 1x28x28 (--input): training images/s of the
    step engine ``fdaref train --backend torch`` uses by default, against ``--engine fdaref``, the same
    architecture in float (eager and, with --compile, torch.compile on both sides), and a naive baseline
    layer (BiBench-style: the sign's backward sums a list of n+1 cosine tensors, the noise module runs
    through autograd); peak GPU memory against the float model (CUDA only).
(c) CPU only: the float32 activation quantizer (noise module, eta sin, fda) forward + backward on a
    (batch, 16, 28, 28) tensor: the fused numba pass, NCHW and channels-last, against the loops off.

    python bench/bench_torch.py                      # CPU, writes bench/results/torch_cpu.json
    python bench/bench_torch.py --device cuda        # the same on a GPU -> bench/results/torch_cuda.json

Every run asks glibc to keep freed memory as ``fdaref train`` does (``--no-keep-freed-memory``: the default
allocator; that setting is process-wide, so its effect is the difference of two runs).
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

from fdaref.allocator import keep_freed_memory
from fdaref.backends.torch import fda_grad, fda_grad_compiled
from fdaref.backends.torch import backend as TB
from fdaref.backends.torch import cpu_loops
from fdaref.backends.torch import modules as M

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import cpu_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timeit(fn: Callable[[], Any], device: str, repeat: int, warmup: int = 2) -> float:
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


def bench_quantizer(batch: int, repeat: int) -> dict[str, Any]:
    """The float32 activation quantizer (noise module, eta sin, fda) of the op table, forward + backward on a
    resnet20 stage-1 tensor (batch, 16, 28, 28), CPU: the fused numba pass (NCHW and channels-last) against
    the same calls with the loops off (FDAREF_TORCH_LOOPS=0: the blocked torch kernels)."""
    gen = torch.Generator().manual_seed(0)
    t = torch.randn(batch, 16, 28, 28, generator=gen) * 3
    g = torch.randn(batch, 16, 28, 28, generator=gen)
    w1, w2 = torch.randn(16, 1, generator=gen) / 4, torch.randn(1, 16, generator=gen) / 4
    kw = dict(alpha=0.07, layout="activation", eta_kind="sin", a=0.1)
    params = {"n": 13, "omega": 0.1, "clip": None}

    def run(x: torch.Tensor, gx: torch.Tensor) -> None:
        z, h = TB.quantize_forward_saving(x, w1, w2, zero=-1.0, training=True, **kw)
        TB.quantize_backward_saved(gx, x, h, w1, w2, estimator="fda", params=params, **kw)

    tl, gl = (v.contiguous(memory_format=torch.channels_last) for v in (t, g))
    out: dict[str, Any] = {"shape": [batch, 16, 28, 28], "dtype": "float32"}
    out["fused_nchw_s"] = timeit(lambda: run(t, g), "cpu", repeat)
    out["fused_channels_last_s"] = timeit(lambda: run(tl, gl), "cpu", repeat)
    os.environ["FDAREF_TORCH_LOOPS"] = "0"
    try:
        out["torch_kernels_s"] = timeit(lambda: run(t, g), "cpu", repeat)
    finally:
        del os.environ["FDAREF_TORCH_LOOPS"]
    out["ns_per_element_fused"] = out["fused_nchw_s"] / t.numel() * 1e9
    out["ns_per_element_torch_kernels"] = out["torch_kernels_s"] / t.numel() * 1e9
    out["fused_vs_torch_kernels"] = out["torch_kernels_s"] / out["fused_nchw_s"]
    return out


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
    if not device.startswith("cuda") and cpu_loops.enabled():   # the same call with the numba loops off
        os.environ["FDAREF_TORCH_LOOPS"] = "0"
        try:
            out["fused_eager_torch_kernels_s"] = timeit(lambda: fda_grad(x, n, 0.1, g=g), device, repeat)
        finally:
            del os.environ["FDAREF_TORCH_LOOPS"]
        out["numba_loops_vs_torch_kernels"] = out["fused_eager_torch_kernels_s"] / out["fused_eager_s"]
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
        if self.training and self.alpha_value != 0 and self.noise is not None:
            z = z + self.alpha_value * rows_noise(self.noise, t, self.layout)
        return z


ALPHA = 0.05  # n = 18 is the last epoch's, where alpha is 0: keep the module's work in with a small alpha


def _expensive_point_torch(model: torch.nn.Module, naive: bool = False) -> None:
    """n = 18 (the most expensive point of the schedule) and alpha = ALPHA in every quantizer."""
    M.FDASchedule(model, 2).on_epoch_start(1)
    for layer in M.fda_layers(model):
        for q in (layer.w_quant, layer.a_quant):
            q.alpha.fill_(ALPHA)
            q.alpha_value = ALPHA
            if naive:
                q.__class__ = NaiveQuantizer


def _engine(name: str | None, device: str, shape: tuple[int, int, int]) -> Any:
    """The step engine ``fdaref train --backend torch [--engine name]`` builds for binary resnet20."""
    from fdaref.data import DatasetInfo
    from fdaref.nn import binary_layers
    from fdaref.train import TrainConfig
    from fdaref.train.factory import build_backend, build_engine
    cfg = TrainConfig(model="resnet20", dataset="fashion-mnist", backend="torch", device=device, engine=name,
                      lr=0.01, out="unused").resolved()
    info = DatasetInfo("bench", tuple(str(i) for i in range(10)), shape[0], shape[1], shape[2])
    engine = build_engine(cfg, info, build_backend(cfg))
    engine.set_schedule(1, 2)
    if name == "fdaref":
        for layer in binary_layers(engine.model):
            layer.alpha = ALPHA
    else:
        _expensive_point_torch(engine.model)
    return engine


def bench_training(device: str, batch: int, steps: int, shape: tuple[int, int, int], compile_: bool
                   ) -> dict[str, Any]:
    """Training steps of binary resnet20 (FDA + noise module) on each path against the same architecture in
    float, timed round-robin (one step of each in turn, so load that comes and goes on a shared machine
    hits all alike); the median step gives images/s.

    - ``cli``: ``--engine torch``, torch autograd through fdaref's torch modules, the default of runs
      shorter than COMPILE_MIN_STEPS; ``cli_compiled``: ``--engine torch-compile``, the default of longer
      runs; ``fdaref_engine``: ``--engine fdaref`` (fdaref's autodiff over the op table).
    - ``float`` / ``float_compiled``: the float model with torch.optim.SGD, eager / torch.compile.
    - ``naive``: a BiBench-style baseline layer (n+1 cosine tensors, autograd noise module).
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    xd, yd = x.to(device), y.to(device)
    xn, yn = x.numpy(), y.numpy()
    out: dict[str, Any] = {"model": "resnet20", "batch": batch, "input": list(shape), "steps": steps}

    def plain(model: torch.nn.Module, compiled: bool) -> Callable[[], None]:
        model = model.to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        fn = torch.compile(model) if compiled else model

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(fn(xd), yd).backward()
            opt.step()
        return step

    def engine_step(engine: Any, host: bool) -> Callable[[], None]:
        return (lambda: engine.train_step(xn, yn, 0.01)) if host else (lambda: engine.train_step(xd, yd, 0.01))

    naive = M.resnet20(shape[0], seed=0)
    _expensive_point_torch(naive, naive=True)
    steps_of: dict[str, Callable[[], None]] = {
        "float": plain(M.resnet20(shape[0], binary=False, seed=0), False),
        "cli": engine_step(_engine(None, device, shape), False),
        "fdaref_engine": engine_step(_engine("fdaref", device, shape), True),
        "naive": plain(naive, False),
    }
    if compile_:
        steps_of["float_compiled"] = plain(M.resnet20(shape[0], binary=False, seed=0), True)
        steps_of["cli_compiled"] = engine_step(_engine("torch-compile", device, shape), False)
    for kind, step in steps_of.items():  # warm-up (compiles), and on CUDA the peak memory of one step alone
        t0 = time.perf_counter()
        step()
        _sync(device)
        out[f"{kind}_first_step_s"] = time.perf_counter() - t0
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            step()
            torch.cuda.synchronize()
            out[f"{kind}_peak_mem_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    times: dict[str, list[float]] = {k: [] for k in steps_of}
    for _ in range(steps):
        for kind, step in steps_of.items():
            t0 = time.perf_counter()
            step()
            _sync(device)
            times[kind].append(time.perf_counter() - t0)
    for kind in steps_of:
        out[f"{kind}_images_per_s"] = batch / sorted(times[kind])[len(times[kind]) // 2]
    ratio = lambda a, b: out[f"{a}_images_per_s"] / out[f"{b}_images_per_s"]  # noqa: E731
    out["cli_vs_fdaref_engine"] = ratio("cli", "fdaref_engine")
    out["cli_vs_float"] = ratio("cli", "float")
    out["cli_vs_naive"] = ratio("cli", "naive")
    out["targets"] = {"cli_vs_fdaref_engine": ">= 1.8", "cli_vs_float": ">= 0.7 (CPU), >= 0.6 (CUDA)",
                      "cli_vs_naive": ">= 2 (CUDA)"}
    if compile_:  # the default of runs from COMPILE_MIN_STEPS steps on (the full Fashion-MNIST run)
        out["compiled_vs_float_compiled"] = ratio("cli_compiled", "float_compiled")
        out["compiled_vs_fdaref_engine"] = ratio("cli_compiled", "fdaref_engine")
        out["compiled_vs_float"] = ratio("cli_compiled", "float")
        out["targets"]["compiled_vs_float_compiled"] = ">= 0.8 (CPU)"
    if device.startswith("cuda"):
        out["cli_mem_vs_float"] = out["cli_peak_mem_mib"] / out["float_peak_mem_mib"]
        out["targets"]["cli_mem_vs_float"] = "<= 1.5"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--numel", type=int, default=10**7)
    p.add_argument("--n", type=int, default=18)
    p.add_argument("--repeat", type=int, default=None, help="timed repeats of (a) (default: cpu 5, cuda 50)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--input", default="1,28,28", help="C,H,W of the training images (default Fashion-MNIST)")
    p.add_argument("--steps", type=int, default=None, help="timed training steps (default: cpu 3, cuda 30)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the torch.compile kernel and the compiled training paths")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                   help="glibc keeps freed memory in the process, as `fdaref train` asks (fdaref/allocator.py); "
                        "process-wide, so compare two runs")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/torch_<device>.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    kept = keep_freed_memory() if args.keep_freed_memory else False   # as `fdaref train`; every model alike
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("no CUDA device here", file=sys.stderr)
        return 2
    if cuda:  # the benchmark measures the IEEE float32 path the conformance suite checks
        torch.backends.cudnn.benchmark = True
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({cpu_model()}, {args.threads} threads)",
        "torch": torch.__version__, "python": platform.python_version(), "keep_freed_memory": kept,
        "command": " ".join(([f"FDAREF_TORCH_COMPILE={os.environ['FDAREF_TORCH_COMPILE']}"]
                             if "FDAREF_TORCH_COMPILE" in os.environ else [])
                            + ["python", "bench/bench_torch.py"] + (argv if argv is not None else sys.argv[1:])),
    }
    # (b) runs before (a): torch.compile in (a) leaves inductor's compile workers behind, and on a small CPU
    # they slow the op-heavy FDA step far more than the float one (2 threads, 2 cores: fda 22 vs 54 images/s
    # after / without a compile in the same process), which would measure the compiler, not the models.
    if not args.skip_training:
        shape = tuple(int(v) for v in args.input.split(","))
        result["training"] = bench_training(args.device, args.batch, args.steps or (30 if cuda else 3), shape,
                                            args.compile)
        print(json.dumps(result["training"], indent=1), flush=True)
    result["fda_backward"] = bench_surrogate(args.device, args.numel, args.n, args.repeat or (50 if cuda else 5),
                                             args.compile)
    print(json.dumps(result["fda_backward"], indent=1), flush=True)
    if not cuda and cpu_loops.enabled():
        result["quantizer"] = bench_quantizer(args.batch, args.repeat or 10)
        print(json.dumps(result["quantizer"], indent=1), flush=True)
    path = Path(args.out) if args.out else RESULTS / f"torch_{'cuda' if cuda else 'cpu'}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
