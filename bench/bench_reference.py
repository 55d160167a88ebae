"""Speed of the NumPy backend (the fast kernels, ``backends/numpy``) and of the literal reference, measured
side by side in one run.

1. fda closed form vs the series (Eq. 10) at n = 18 on 10^6 float64 elements: the numpy backend's kernel
   (target >= 5x) and, for information, the literal reference's closed form.
2. One training step (forward + backward + SGD) of binary resnet20, batch 128, 1x28x28, on the numpy backend
   (float64 and float32) vs the same architecture as a float model in PyTorch on the CPU (target: within 3x).
3. For information: the same step on the literal reference (``fdaref.reference.REFERENCE``) vs the numpy
   backend, at ``--reference-batch`` (the oracle is written to be read, not to be fast).

Threads: NumPy is a single-threaded program here (its elementwise work runs on one core, and the Makefile
pins its BLAS to one thread), so by default torch gets one thread too and the ratio compares the two
implementations, not their thread counts. ``--threads 2`` gives torch both cores of the 2-core box.

    OPENBLAS_NUM_THREADS=1 python bench/bench_reference.py [--threads 1] [--batch 128] [--repeats 9]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from timing import interleaved, report  # noqa: E402


def numpy_backend():
    from fdaref.backend_loader import load_backend
    return load_backend("numpy")


def bench_fda(rows: list[dict]) -> None:
    from fdaref.estimators import fda, fda_series
    fast = numpy_backend()
    params = {"n": 18, "omega": 0.1, "clip": None}
    # N(0, 10): |omega x| reaches past pi/2, so the general (range-reduced) path is what is timed
    x = np.random.default_rng(0).normal(0, 10, 10**6)
    t = interleaved({"closed": lambda: fast.surrogate(x, "fda", params), "series": lambda: fda_series(x, 18, 0.1),
                     "reference_closed": lambda: fda(x, 18, 0.1)})
    ratio = t["series"] / t["closed"]
    rows.append({"name": "numpy backend: fda closed form vs series, n=18, 1e6 float64 (speed-up)", "figure": ratio,
                 "target": ">= 5", "ok": ratio >= 5, "seconds": t})
    rows.append({"name": "literal reference: fda closed form vs series, n=18, 1e6 float64 (speed-up)",
                 "figure": t["series"] / t["reference_closed"], "target": "information", "ok": True, "seconds": t})


def fdaref_step(ops, batch: int, dtype: type):
    """One SGD step of binary resnet20 on the op table ``ops`` (a closure over its model and batch)."""
    from fdaref.autodiff import Tensor
    from fdaref.functions import cross_entropy
    from fdaref.nn.models import resnet20
    from fdaref.optim import SGD

    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(batch, 1, 28, 28)).astype(dtype)
    y_np = rng.integers(0, 10, batch)
    model = resnet20(in_channels=1, num_classes=10, seed=0, dtype=dtype).to(ops)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = Tensor.from_numpy(x_np, ops)

    def step() -> None:
        loss = cross_entropy(model(x), y_np)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step, x_np, y_np


def bench_step(rows: list[dict], batch: int, dtype: type, repeats: int) -> None:
    import torch

    numpy_step, x_np, y_np = fdaref_step(numpy_backend(), batch, dtype)

    tmodel = torch_float_resnet20()
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    tx, ty = torch.tensor(x_np, dtype=torch.float32), torch.tensor(y_np)

    def torch_step() -> None:
        loss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
        topt.zero_grad()
        loss.backward()
        topt.step()

    t = interleaved({"numpy_backend": numpy_step, "torch_float": torch_step}, repeats=repeats)
    ratio = t["numpy_backend"] / t["torch_float"]
    rows.append({"name": f"numpy backend binary resnet20 step ({np.dtype(dtype).name}) / torch float32 resnet20 "
                         f"step (batch {batch})",
                 "figure": ratio, "target": "<= 3", "ok": ratio <= 3, "seconds": t})


def bench_literal_reference(rows: list[dict], batch: int, dtype: type, repeats: int) -> None:
    from fdaref.reference import REFERENCE
    reference_step, _, _ = fdaref_step(REFERENCE, batch, dtype)
    numpy_step, _, _ = fdaref_step(numpy_backend(), batch, dtype)
    t = interleaved({"reference": reference_step, "numpy_backend": numpy_step}, repeats=repeats)
    rows.append({"name": f"literal reference binary resnet20 step ({np.dtype(dtype).name}) / numpy backend step "
                         f"(batch {batch})",
                 "figure": t["reference"] / t["numpy_backend"], "target": "information", "ok": True, "seconds": t})


def torch_float_resnet20():
    """The same architecture as SEMANTICS 8 (option-A shortcuts, PReLU, conv -> PReLU -> BN) in plain float torch."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.a1, self.b1 = nn.PReLU(), nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.a2, self.b2 = nn.PReLU(), nn.BatchNorm2d(cout)
            self.stride, self.pad = stride, cout - cin

        def forward(self, x):
            out = self.b1(self.a1(self.c1(x)))
            out = self.b2(self.a2(self.c2(out)))
            short = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
            if self.pad:
                short = torch.nn.functional.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
            return out + short

    layers = [nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(Block(cin, cout, stride if i == 0 else 1))
            cin = cout
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, as the reference; NumPy's BLAS: OPENBLAS_NUM_THREADS)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=9, help="timed steps of each (medians are compared)")
    parser.add_argument("--reference-batch", type=int, default=32, help="batch of the literal reference's step")
    parser.add_argument("--out", default="bench/results/reference_cpu.json")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    bench_fda(rows)
    for dtype in (np.float64, np.float32):
        bench_step(rows, args.batch, dtype, args.repeats)
    for dtype in (np.float64, np.float32):
        bench_literal_reference(rows, args.reference_batch, dtype, max(3, args.repeats // 3))
    report("fdaref numpy backend and literal reference speed", rows, args.out, threads=args.threads,
           numpy=np.__version__, torch=torch.__version__)


if __name__ == "__main__":
    main()
