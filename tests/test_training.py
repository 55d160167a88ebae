"""The training loop: bit-exact resume (mid-epoch and at epoch ends), NaN stop, atomic checkpoints,
Ctrl-C flag, config validation, progress bar. Tiny model, synthetic data: fast."""
from __future__ import annotations

import errno
import io
import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from fdaref.data import make_splits
from fdaref.errors import InputError
from fdaref.data.synthetic import synthetic_dataset
from fdaref.train import (CheckpointError, ProgressBar, ResumeError, TrainConfig, Trainer, TrainingDiverged,
                          load_checkpoint, read_jsonl, save_checkpoint)
from fdaref.train.interrupt import StopFlag
from run_compare import bit_exact

TIMING = ("images_per_s", "train_time_s", "eval_time_s")
# What differs between two runs of the same computation: timing and where the run lives.
VOLATILE = {*TIMING, "train_time", "wall_time_s_this_session", "out", "checkpoint", "metrics"}


def _splits(seed: int = 0):
    return make_splits(synthetic_dataset(64, seed=1), synthetic_dataset(24, seed=2), seed=seed, val_fraction=0.25)


def _cfg(out: Path, **kw) -> TrainConfig:
    base = dict(model="tiny", dataset="mnist", epochs=3, batch_size=16, lr=0.1, seed=0, out=str(out),
                backend="numpy", dtype="float64")
    base.update(kw)
    return TrainConfig(**base)


class _LRRecorder(Trainer):
    """Records the learning rate the optimizer holds each time it steps (what the update really used)."""
    used: list[float]

    def _setup(self) -> None:
        super()._setup()
        self.used = []
        optimizer = self.engine.optimizer   # the fdaref engine's fdaref.optim optimizer (numpy backend)
        step = optimizer.step

        def recorded_step() -> None:
            self.used.append(optimizer.lr)
            step()
        optimizer.step = recorded_step


def _trainer(out: Path, **kw) -> Trainer:
    stop = kw.pop("stop_after_steps", None)
    return _LRRecorder(_cfg(out, **kw), progress=False, splits=_splits(), stop_after_steps=stop, log=lambda s: None)


def _state(out: Path) -> dict:
    return load_checkpoint(out / "checkpoint.npz")


def _strip(obj):
    return bit_exact(obj, VOLATILE)


def _everything(out: Path) -> dict:
    """Everything a run wrote: the checkpoint (model, optimizer state, position, history), metrics, summary."""
    return {"files": sorted(p.name for p in out.iterdir()), "checkpoint": _strip(_state(out)),
            "metrics": _strip(read_jsonl(out / "metrics.jsonl")),
            "summary": _strip(json.loads((out / "summary.json").read_text()))}


def _strip_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    out = tmp_path_factory.mktemp("full")
    t = _trainer(out)
    assert t.run().status == "complete"
    return out, t.used


def test_full_run_outputs(full_run) -> None:
    full_run, _ = full_run
    recs = read_jsonl(full_run / "metrics.jsonl")
    assert [r["epoch"] for r in recs] == [0, 1, 2]
    for key in ("train_loss", "train_acc", "val_acc", "test_acc", "n", "alpha", "lr", "images_per_s",
                "train_time_s"):
        assert recs[0][key] is not None, key
    assert [r["n"] for r in recs] == [9, 13, 18]            # SEMANTICS 6 over 3 epochs
    assert recs[-1]["alpha"] == 0.0 and recs[0]["alpha"] > recs[1]["alpha"] > 0
    summary = json.loads((full_run / "summary.json").read_text())
    assert summary["status"] == "complete"
    cm = np.array(summary["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 24
    assert np.isclose(summary["test_acc"], np.trace(cm) / 24)
    assert recs[-1]["train_loss"] < recs[0]["train_loss"]  # it learns
    ck = _state(full_run)
    assert ck["position"]["epoch"] == 3 and ck["config"]["model"] == "tiny"
    assert ck["optimizer"]["steps"] == 3 * 3  # 48 training images, batch 16
    assert _strip_timing(ck["history"]["records"]) == _strip_timing(recs)  # metrics.jsonl is the checkpoint's
    assert not list(full_run.glob("*.tmp")) and not list(full_run.glob(".*tmp"))


def test_learning_rate_is_what_the_optimizer_used(full_run) -> None:
    """Per step: lr_s = 0.05 (1 + cos(pi s / 9)) (cosine from 0.1 to 0 over 3 epochs x 3 steps); the records
    hold the first and last of each epoch as the optimizer had them."""
    out, used = full_run
    assert used == pytest.approx([0.05 * (1 + math.cos(math.pi * s / 9)) for s in range(9)], rel=1e-15, abs=1e-17)
    recs = read_jsonl(out / "metrics.jsonl")
    assert [(r["lr_first"], r["lr"]) for r in recs] == [(used[3 * e], used[3 * e + 2]) for e in range(3)]


@pytest.mark.parametrize("stops", [(1,), (3,), (5, 3)])
def test_resume_is_bit_exact(full_run, tmp_path: Path, stops: tuple[int, ...]) -> None:
    """Interrupted mid-epoch (1; 5 then 3 more), exactly at an epoch end (3): everything the run writes is
    identical (arrays, optimizer state, position, history, metrics, summary), and so is the learning rate the
    optimizer used at every step."""
    full, full_lrs = full_run
    used: list[float] = []
    first = _trainer(tmp_path, stop_after_steps=stops[0])
    assert first.run().status == "interrupted"
    used += first.used
    for more in stops[1:]:
        t = _trainer(tmp_path, stop_after_steps=more)
        assert t.run(resume=True).status == "interrupted"
        used += t.used
    done = _trainer(tmp_path)
    assert done.run(resume=True).status == "complete"
    used += done.used
    assert used == full_lrs
    assert _everything(tmp_path) == _everything(full)


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    _trainer(tmp_path, stop_after_steps=1).run()
    with pytest.raises(ResumeError, match="lr: checkpoint 0.1, now 0.2"):
        Trainer(_cfg(tmp_path, lr=0.2), progress=False, splits=_splits(), log=lambda s: None).run(resume=True)
    with pytest.raises(ResumeError, match="no checkpoint"):
        Trainer(_cfg(tmp_path / "empty"), progress=False, splits=_splits()).run(resume=True)


class _NaNTrainer(Trainer):
    """Feeds NaN images from step ``nan_at`` on, so the engine computes a NaN loss (as a diverging run would)."""
    nan_at = 4

    def _step(self, x, y, lr):
        self.calls = getattr(self, "calls", 0) + 1
        return super()._step(np.full_like(x, np.nan) if self.calls > self.nan_at else x, y, lr)


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    t = _NaNTrainer(_cfg(tmp_path), progress=False, splits=_splits(), log=lambda s: None)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2/3, batch 2/3.*checkpoint.*after epoch 1"):
        t.run()
    ck = _state(tmp_path)
    assert ck["position"] == {**ck["position"], "epoch": 1, "batch": 0}
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 1


class _InfTrainer(Trainer):
    """Makes a batch-norm running variance infinite after step ``inf_at``; the loss stays finite (train-mode BN
    uses the batch statistics), as in a run whose buffers overflowed."""
    inf_at = 4

    def _step(self, x, y, lr):
        super()._step(x, y, lr)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == self.inf_at:
            bn = self.engine.model[1]
            bn.running_var.data = bn.running_var.data * np.inf


def test_non_finite_buffer_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    t = _InfTrainer(_cfg(tmp_path), progress=False, splits=_splits(), log=lambda s: None)
    with pytest.raises(TrainingDiverged, match=r"non-finite values in the model's parameters / buffers: "
                                               r"1.running_var \(16\) at epoch 2/3 \(lr [0-9.]+\); "
                                               r"the last good checkpoint .*\(after epoch 1\) is kept"):
        t.run()
    ck = _state(tmp_path)
    assert (ck["position"]["epoch"], ck["position"]["batch"]) == (1, 0)  # epoch 1's checkpoint, not a broken one
    assert all(np.isfinite(v).all() for v in ck["model"].values())
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 1


def test_non_finite_check_asks_the_engine_first() -> None:
    """The engine's all_finite() (on its device, no per-step sync) decides; the state is read back only to name
    what is broken."""
    from fdaref.train.divergence import check_finite_state

    class Engine:
        def __init__(self, ok, value):
            self.ok, self.value, self.reads = ok, value, 0

        def all_finite(self):
            return self.ok

        def model_state(self):
            self.reads += 1
            return {"w": np.array([1.0, self.value]), "steps": np.array([3])}
    fine = Engine(True, 2.0)
    assert check_finite_state(fine) is None and fine.reads == 0
    assert check_finite_state(Engine(False, np.nan)) == "1 non-finite values in the model's parameters / buffers: w (1)"
    assert check_finite_state(Engine(False, 1.0)) == "the accumulated training loss is not finite"


def test_real_nan_loss_before_any_checkpoint(tmp_path: Path) -> None:
    splits = _splits()
    splits.train.images = np.full(splits.train.images.shape, np.nan)  # the engine really computes a NaN loss
    t = Trainer(_cfg(tmp_path, epochs=1), progress=False, splits=splits, log=lambda s: None)
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written yet"):
        t.run()
    assert not (tmp_path / "checkpoint.npz").exists()


def test_checkpoint_round_trip_and_atomicity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "ck.npz"
    state = {"a": np.arange(3.0), "nested": {"b": [np.ones((2, 2), np.float32), 3, "x", None],
                                              "c": {1: 2.5}}, "flag": True, "f": float("nan")}
    save_checkpoint(p, state)
    back = load_checkpoint(p)
    assert np.array_equal(back["a"], state["a"]) and back["nested"]["b"][0].dtype == np.float32
    assert back["nested"]["b"][1:] == [3, "x", None] and back["nested"]["c"] == {1: 2.5}
    assert back["flag"] is True and np.isnan(back["f"])
    before = p.read_bytes()
    with pytest.raises(TypeError, match="cannot store object at /bad"):
        save_checkpoint(p, {"a": np.zeros(2), "bad": object()})

    def disk_full(fd):  # the temp file is half written when the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(InputError, match=r"ck.npz: cannot write \(No space left on device\)"):
        save_checkpoint(p, {"a": np.zeros(2)})
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]  # no temp file left behind


def test_checkpoint_errors_name_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'none.npz'}: checkpoint not found"):
        load_checkpoint(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.npz: unreadable checkpoint"):
        load_checkpoint(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", x=np.zeros(2))
    with pytest.raises(CheckpointError, match="not a fdaref checkpoint"):
        load_checkpoint(tmp_path / "plain.npz")


def test_stop_flag_on_sigterm() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopFlag(message="") as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop and stop.signum == signal.SIGTERM  # like Ctrl-C: only the flag
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_flag_on_sigint() -> None:
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs as a background job
    with StopFlag(message="") as stop:
        assert not stop
        os.kill(os.getpid(), signal.SIGINT)
        assert stop  # first Ctrl-C only raises the flag
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # the handler it found is back


@pytest.mark.parametrize("bad, match", [
    (dict(epochs=0), "epochs: expected an integer >= 1, got 0"),
    (dict(epochs=2.5), "epochs: expected an integer >= 1"),
    (dict(model="resnet50"), "model: expected one of resnet20, vgg_small, tiny"),
    (dict(dataset="imagenet"), "unknown dataset 'imagenet'; expected one of"),
    (dict(optimizer="rmsprop"), "optimizer: expected one of sgd, adam"),
    (dict(lr=-1.0), "lr: expected a number > 0"),
    (dict(batch_size=-3), "batch_size: expected an integer >= 1"),
    (dict(momentum=1.5), "momentum: expected a number in"),
    (dict(device="tpu"), "device: expected 'cpu' or 'cuda'"),
    (dict(estimator="magic"), "magic"),
])
def test_config_validation(tmp_path: Path, bad: dict, match: str) -> None:
    with pytest.raises((ValueError, KeyError), match=match):
        _cfg(tmp_path, **bad).resolved()


def test_config_defaults_follow_recipe(tmp_path: Path) -> None:
    c = TrainConfig(dataset="cifar10").resolved()
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == (400, 128, 0.1, 0.9, 1e-4)
    a = TrainConfig(optimizer="adam").resolved()
    assert (a.lr, a.weight_decay) == (1e-3, 0.0)
    o = TrainConfig(preset="release", noise=True, eta="linear").options()
    assert o.estimator == "ste" and o.noise and o.eta == "linear" and o.scale == "layer"


def test_progress_bar() -> None:
    buf = io.StringIO()
    with ProgressBar(4, "epoch 1/2", stream=buf) as bar:
        for _ in range(4):
            bar.update(1, loss=0.5)
    text = buf.getvalue()
    assert text.count("\n") == 1 and "epoch 1/2 |" in text and "4/4" in text and "loss=0.5" in text
    assert "#" * 24 in text
    quiet = io.StringIO()
    ProgressBar(3, stream=quiet, enabled=False).close()
    assert quiet.getvalue() == ""
