"""Speed of the numba backend, measured side by side in one run (ratios are taken within the run; candidates
are timed interleaved, see bench/timing.py).

(a) bit-packed binary conv2d (sign + pack of the activations + XNOR-popcount conv, weights packed once as in
    a deployed model) on resnet20's binary layer shapes (16/32/64 channels, 3x3, pad 1, 32x32/16x16/8x8 maps)
    at batch 1 and 16, against torch's float32 conv2d on the same shapes with the same number of threads
    (target >= 3x);
(b) the fused FDA surrogate on 10^7 float32 elements at n = 18 against a plain array copy of that size
    (target >= 0.5x the copy's speed) and against the NumPy series of Eq. 10 (target >= 5x);
(c) one resnet20 training step (forward, backward, SGD) with the numba backend against the NumPy reference
    (target >= 2x).

    NUMBA_CACHE_DIR=.numba_cache python bench/bench_numba.py            # writes bench/results/numba_cpu.json
    python bench/bench_numba.py --quick                                  # fewer repeats, skips (c)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

# Two OpenMP runtimes (numba's and torch's) share 2 cores here: spinning idle threads of one would steal the
# other's time slices and the figures would measure the scheduler. Must be set before either is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved, report  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

# resnet20's binary convs: (C_in, C_out, H = W of the input, stride)
RESNET20_BINARY = [(16, 16, 32, 1), (16, 32, 32, 2), (32, 32, 16, 1), (32, 64, 16, 2), (64, 64, 8, 1)]


def bench_packed_conv(nb: Any, threads: int, repeats: int) -> list[dict]:
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    rows = []
    rng = np.random.default_rng(0)
    for batch in (1, 16):
        for c_in, c_out, size, stride in RESNET20_BINARY:
            x = rng.standard_normal((batch, c_in, size, size)).astype(np.float32)
            w = rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32)
            wp = nb.pack_signs(w, axis=1, zero=-1.0)
            xt, wt = torch.from_numpy(x), torch.from_numpy(np.sign(w))
            geom = dict(channels=c_in, stride=(stride, stride), padding=(1, 1), dilation=(1, 1), pad_value=0.0)
            xp = nb.pack_signs(x, axis=1, zero=-1.0)

            # the deployed packed model's layer: weights prepared once (lane dtype, border table), then per call
            # sign + pack + XNOR conv in one compiled call
            layer = nb.prepare_xnor_conv2d(wp, **geom)

            def packed():
                return layer.sign_conv(x, zero=-1.0)

            def fused():      # the same through sign_xnor_conv2d: the weight tables rebuilt on every call
                return nb.sign_xnor_conv2d(x, wp, zero=-1.0, stride=(stride, stride), padding=(1, 1),
                                           dilation=(1, 1), pad_value=0.0)

            def op_table():   # the same through the op table: pack_signs, then xnor_conv2d
                return nb.xnor_conv2d(nb.pack_signs(x, axis=1, zero=-1.0), wp, **geom)

            def kernel_only():
                return nb.xnor_conv2d(xp, wp, **geom)

            def torch_conv():
                with torch.no_grad():
                    return F.conv2d(xt, wt, stride=stride, padding=1)

            want = F.conv2d(torch.from_numpy(np.where(x > 0, 1.0, -1.0).astype(np.float32)), wt, stride=stride,
                            padding=1).numpy()
            np.testing.assert_array_equal(packed(), want)          # exact, as SEMANTICS 9 demands
            np.testing.assert_array_equal(fused(), want)
            np.testing.assert_array_equal(op_table(), want)
            t = interleaved({"packed": packed, "fused": fused, "op_table": op_table, "kernel": kernel_only,
                             "torch": torch_conv}, repeats=repeats, warmup=3)
            name = f"packed binary conv {c_in}->{c_out} 3x3/s{stride} on {size}x{size}, batch {batch}"
            rows.append({"name": name + " vs torch float32 conv2d", "figure": t["torch"] / t["packed"],
                         "target": ">= 3x", "ok": t["torch"] / t["packed"] >= 3.0,
                         "fused_x": t["torch"] / t["fused"], "op_table_x": t["torch"] / t["op_table"],
                         "kernel_only_x": t["torch"] / t["kernel"], "packed_s": t["packed"], "fused_s": t["fused"],
                         "op_table_s": t["op_table"], "kernel_s": t["kernel"],
                         "torch_s": t["torch"]})
    return rows


def bench_fda(nb: Any, repeats: int, numel: int = 10 ** 7, n: int = 18) -> list[dict]:
    from fdaref.estimators import fda_series
    x = (np.random.default_rng(1).standard_normal(numel) * 10).astype(np.float32)
    params = {"n": n, "omega": 0.1}
    ref = fda_series(x[:100000].astype(np.float64), n=n)
    err = float(np.max(np.abs(nb.surrogate(x[:100000], "fda", params) - ref)) / (4 * 0.1 / np.pi * (n + 1)))
    t = interleaved({"fused": lambda: nb.surrogate(x, "fda", params), "copy": lambda: x.copy()},
                    repeats=repeats, warmup=2)
    ts = interleaved({"fused": lambda: nb.surrogate(x, "fda", params),
                      "series": lambda: fda_series(x, n=n)}, repeats=max(3, repeats // 3), warmup=1)
    return [
        {"name": f"fused FDA surrogate (n={n}) on 10^7 float32 vs a plain copy (speed ratio)",
         "figure": t["copy"] / t["fused"], "target": ">= 0.5x", "ok": t["copy"] / t["fused"] >= 0.5,
         "fused_s": t["fused"], "copy_s": t["copy"], "max_err_over_peak": err},
        {"name": f"fused FDA surrogate (n={n}) on 10^7 float32 vs the NumPy series",
         "figure": ts["series"] / ts["fused"], "target": ">= 5x", "ok": ts["series"] / ts["fused"] >= 5.0,
         "fused_s": ts["fused"], "series_s": ts["series"]},
    ]


def bench_train_step(nb: Any, batch: int, repeats: int) -> list[dict]:
    from fdaref import nn
    from fdaref.autodiff import Tensor
    from fdaref.functions import cross_entropy
    from fdaref.optim import SGD
    from fdaref.reference import REFERENCE
    rng = np.random.default_rng(2)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    steps = {}
    for name, ops in (("numba", nb), ("reference", REFERENCE)):
        model = nn.resnet20(3, 10, seed=0, dtype=np.float32).to(ops)
        nn.set_schedule(model, 1, 2)   # n = 18, alpha > 0 would be 0 at the last epoch: keep the module on
        for layer in nn.binary_layers(model):
            layer.alpha = 0.05
        opt = SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        xt, yt = ops.from_numpy(x), ops.from_numpy(y)

        def step(model=model, opt=opt, xt=xt, yt=yt, ops=ops):
            model.train()
            loss = cross_entropy(model(Tensor(xt, ops)), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
        steps[name] = step
    t = interleaved(steps, repeats=repeats, warmup=1)
    return [{"name": f"resnet20 training step (batch {batch}, FDA n=18 + noise module) numba vs reference",
             "figure": t["reference"] / t["numba"], "target": ">= 2x", "ok": t["reference"] / t["numba"] >= 2.0,
             "numba_s": t["numba"], "reference_s": t["reference"]}]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="numba and torch threads (default 2)")
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--batch", type=int, default=32, help="batch of the training step (default 32)")
    p.add_argument("--quick", action="store_true", help="fewer repeats, no training step")
    p.add_argument("--out", default=str(RESULTS / "numba_cpu.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))
    import numba
    from fdaref.backends.numba import backend as nb
    from fdaref.backends.numba import warmup
    numba.set_num_threads(args.threads)
    t0 = time.perf_counter()
    warm = warmup()
    repeats = 5 if args.quick else args.repeats
    rows = bench_packed_conv(nb, args.threads, repeats)
    rows += bench_fda(nb, repeats)
    if not args.quick:
        rows += bench_train_step(nb, args.batch, max(3, repeats // 2))
    report("numba backend (CPU), ratios side by side in one run", rows, args.out, threads=args.threads,
           numba=numba.__version__, warmup_s=warm, seconds=time.perf_counter() - t0,
           cpu_count=os.cpu_count(), load_avg=os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
