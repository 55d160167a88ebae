"""The torchrun + DistributedDataParallel launch path of the torch-native models, on the CPU with gloo."""
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

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch built without gloo")
def test_torchrun_two_processes_gloo(tmp_path: Path):
    """2 processes train 2 short epochs; DDP keeps their weights identical; rank 0 writes the summary."""
    out = tmp_path / "ddp.json"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    cmd = launcher + ["--standalone", "--nproc_per_node", "2", "-m", "fdaref.backends.torch.ddp",
                      "--synthetic-size", "32", "--image-size", "8", "--batch-size", "4", "--epochs", "2",
                      "--steps-per-epoch", "2", "--threads", "1", "--out", str(out)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads(out.read_text())
    assert summary["world_size"] == 2 and summary["backend"] == "gloo"
    assert [h["epoch"] for h in summary["history"]] == [0, 1]
    assert summary["history"][0]["n"] == 9 and summary["history"][1]["n"] == 18  # the SEMANTICS 6 schedule ran
    a, b = summary["weight_checksums"]
    assert a == b  # gradients were all-reduced: both replicas hold the same weights


def test_ddp_refuses_without_torchrun(monkeypatch):
    from fdaref.backends.torch import ddp
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(SystemExit, match="torchrun"):
        ddp.main(["--epochs", "1"])
