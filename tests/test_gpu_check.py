"""bench/gpu_check.py at toy sizes on the CPU (--device cpu --smoke): every step of the GPU check runs (or
skips for a clear reason) and lands in one JSON summary, so the script is known to work before a GPU sees it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
FASHION = Path("/usr/share/datasets/fashion-mnist")
STEPS = ["gpu_tests", "conform_torch_float32", "conform_torch_float64", "conform_cupy_float32",
         "conform_cupy_float64", "bench_torch", "bench_cupy", "train"]


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST is not installed (make setup installs it)")
def test_gpu_check_smoke_runs_every_step(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", "cpu", "--smoke", "--out",
                           str(tmp_path), "--data-dir", str(FASHION)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary["ok"] is True and summary["smoke"] is True
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == STEPS
    for s in summary["steps"]:
        assert s["status"] in ("ok", "skipped"), s
        assert s["status"] == "skipped" or (tmp_path / f"{s['name']}.log").is_file()
    assert steps["conform_torch_float32"]["figures"]["pass"] > 0
    assert steps["gpu_tests"]["figures"].get("failed", 0) == 0
    bench = json.loads((tmp_path / "torch_cpu.json").read_text())["training"]
    assert bench["cli_images_per_s"] > 0 and bench["fdaref_engine_images_per_s"] > 0
    train = steps["train"]["figures"]
    assert 0 <= train["test_acc"] <= 1 and train["epochs"] == 1 and train["curves"].endswith("curves.png")


def test_gpu_check_refuses_cpu_without_smoke(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", "cpu", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--smoke" in proc.stderr
