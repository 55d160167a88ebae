"""A kill at ANY instant of `fdaref train` leaves a run that `--resume` completes into exactly what an
uninterrupted run writes (numpy and torch backends).

Every file fdaref writes ends with ``os.replace(temp, final)`` (fdaref.atomic). A driver process counts those
renames into the run directory and dies with ``os._exit`` just before the k-th one (its temp file written, the
rename not done), for every k. Dying before rename k leaves the state after k - 1 writes plus a stale temp file,
so k = 1 .. K covers every state a kill can leave. The test then resumes (or, when no checkpoint exists yet,
starts again, which the run directory must allow) and compares everything the run wrote with the
uninterrupted run: model and optimizer arrays, position, history, metrics.jsonl, summary.json, and the file
list (no temp file left). SIGTERM in the middle of an epoch is driven the same way.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fdaref.cli.main import main
from fdaref.data.synthetic import write_synthetic_idx
from fdaref.train import load_checkpoint
from run_compare import bit_exact

DRIVER = r"""
import os, signal, sys
run_dir = os.path.abspath(sys.argv[1])
kill_at = int(os.environ.get("KILL_AT_WRITE", "0"))
names = []
real_replace = os.replace

def replace(src, dst, *args, **kwargs):
    if os.path.dirname(os.path.abspath(dst)) == run_dir:
        names.append(os.path.basename(dst))
        if len(names) == kill_at:
            os._exit(137)                       # killed: temp written, rename not done
        with open(os.environ["WRITES_LOG"], "a") as log:
            log.write(os.path.basename(dst) + "\n")
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
term_at = int(os.environ.get("SIGTERM_AT_STEP", "0"))
if term_at:
    from fdaref.train.loop import Trainer
    real_step, steps = Trainer._step, []
    def step(self, *args):
        real_step(self, *args)
        steps.append(1)
        if len(steps) == term_at:
            os.kill(os.getpid(), signal.SIGTERM)   # what `kill PID` or a job scheduler sends
    Trainer._step = step
from fdaref.cli.main import main
sys.exit(main(sys.argv[2:]))
"""

EPOCHS = 2
# Timing and location differ between any two runs; everything else must be identical.
VOLATILE = {"images_per_s", "train_time_s", "eval_time_s", "train_time", "wall_time_s_this_session", "out",
            "checkpoint", "metrics"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_idx(tmp_path_factory.mktemp("mnist"), n_train=80, n_test=24)


def _argv(backend: str, data_dir: Path, out: Path) -> list[str]:
    dtype = "float64" if backend == "numpy" else "float32"
    return ["train", "--model", "tiny", "--dataset", "mnist", "--data-dir", str(data_dir), "--subset", "72",
            "--batch-size", "16", "--epochs", str(EPOCHS), "--backend", backend, "--dtype", dtype,
            "--out", str(out), "--quiet"]


def _drive(argv: list[str], out: Path, log: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "WRITES_LOG": str(log), **env}
    return subprocess.run([sys.executable, "-c", DRIVER, str(out), *argv], env=environ, capture_output=True,
                          text=True, timeout=300)


def _strip(obj):
    return bit_exact(obj, VOLATILE)


def _everything(out: Path) -> dict:
    """All a run wrote, with timing and paths removed."""
    files = sorted(p.name for p in out.iterdir())
    ck = load_checkpoint(out / "checkpoint.npz")
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    return {"files": files, "checkpoint": _strip(ck), "metrics": _strip(metrics), "summary": _strip(summary)}


@pytest.fixture(scope="module", params=["numpy", "torch"])
def reference(request: pytest.FixtureRequest, data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    backend = request.param
    if backend == "torch":
        pytest.importorskip("torch")
    out = tmp_path_factory.mktemp(f"uninterrupted-{backend}")
    log = out.parent / f"writes-{backend}.log"
    done = _drive(_argv(backend, data_dir, out), out, log)
    assert done.returncode == 0, done.stderr
    return backend, _everything(out), log.read_text().split()


def test_write_order(reference) -> None:
    """The order the design promises: a write probe, then per epoch the checkpoint before the metrics derived
    from it, and the summary after the last checkpoint."""
    _, _, writes = reference
    assert writes == [".fdaref-write-test"] + ["checkpoint.npz", "metrics.jsonl"] * EPOCHS + ["summary.json"]


def test_kill_at_each_write_then_resume(reference, data_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    backend, want, writes = reference
    for k in range(1, len(writes) + 1):
        out = tmp_path / f"kill{k}"
        killed = _drive(_argv(backend, data_dir, out), out, tmp_path / f"log{k}", KILL_AT_WRITE=str(k))
        assert killed.returncode == 137, (k, killed.stderr)
        assert list(out.glob(".*.tmp")), f"kill before write {k} should leave its temp file"
        resume = (out / "checkpoint.npz").is_file()
        capsys.readouterr()
        assert main(_argv(backend, data_dir, out) + (["--resume"] if resume else [])) == 0, (k, capsys.readouterr())
        err = capsys.readouterr().err
        if writes[k - 1] == "summary.json":
            assert f"all {EPOCHS} epochs already done; wrote the missing {out / 'summary.json'}" in err
        if writes[k - 1] == "metrics.jsonl":
            assert f"rewrote {out / 'metrics.jsonl'} from the checkpoint's history" in err
        got = _everything(out)
        assert got["files"] == want["files"], k        # the stale temp file is gone
        assert got == want, f"kill before write {k} ({writes[k - 1]}) then resume differs from the uninterrupted run"


def test_sigterm_saves_and_resumes(reference, data_dir: Path, tmp_path: Path) -> None:
    backend, want, _ = reference
    out = tmp_path / "term"
    stopped = _drive(_argv(backend, data_dir, out), out, tmp_path / "log", SIGTERM_AT_STEP="2")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert "SIGTERM: finishing this batch and saving a checkpoint" in stopped.stderr
    pos = load_checkpoint(out / "checkpoint.npz")["position"]
    assert (pos["epoch"], pos["batch"]) == (0, 2)               # saved mid-epoch, where it stopped
    assert main(_argv(backend, data_dir, out) + ["--resume"]) == 0
    assert _everything(out) == want
