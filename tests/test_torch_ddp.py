"""torchrun + DistributedDataParallel through fdaref's one Trainer (the torch engine), on the CPU with gloo."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from fdaref.train import load_checkpoint, read_jsonl  # noqa: E402

pytestmark = pytest.mark.slow
FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch built without gloo")
@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST is not installed (make setup installs it)")
def test_torchrun_two_processes_gloo(tmp_path: Path):
    """2 processes train 2 short epochs through the Trainer; DDP keeps their weights identical; rank 0 writes
    the run directory once (metrics of both epochs, the SEMANTICS 6 schedule, a checkpoint of every step)."""
    out = tmp_path / "run"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    cmd = launcher + ["--standalone", "--nproc_per_node", "2", "-m", "fdaref.backends.torch.ddp",
                      "--model", "tiny", "--dataset", "fashion-mnist", "--data-dir", str(FASHION), "--subset", "40",
                      "--test-subset", "16", "--val-fraction", "0", "--batch-size", "8", "--epochs", "2",
                      "--threads", "1", "--quiet", "--out", str(out)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads((out / "ddp.json").read_text())
    assert summary["world_size"] == 2 and summary["backend"] == "gloo" and summary["status"] == "complete"
    a, b = summary["weight_checksums"]
    assert a == b  # gradients were all-reduced: both replicas hold the same weights
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [0, 1]           # written once, by rank 0
    assert [r["n"] for r in records] == [9, 18]              # the SEMANTICS 6 schedule ran
    ck = load_checkpoint(out / "checkpoint.npz")
    assert ck["optimizer"]["steps"] == 2 * (40 // 8)         # one step per global batch
    assert json.loads((out / "summary.json").read_text())["backend"]["engine"] == "torch"


def test_ddp_refuses_without_torchrun(monkeypatch, tmp_path: Path):
    from fdaref.backends.torch import ddp
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(SystemExit, match="torchrun"):
        ddp.main(["--epochs", "1", "--out", str(tmp_path)])
