"""The torch step engine of the Trainer (fdaref.backends.torch.engine): device batches equal the host
loader's, a run on each engine, bit-exact resume on the torch engine, checkpoints the reference reads."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fdaref import autodiff as ad  # noqa: E402
from fdaref.data import BatchLoader, make_splits  # noqa: E402
from fdaref.data.synthetic import synthetic_dataset  # noqa: E402
from fdaref.train import TrainConfig, Trainer, TrainingDiverged, load_checkpoint, load_trained, read_jsonl  # noqa: E402
from fdaref.train.factory import default_engine, engine_names  # noqa: E402

from fdaref.backends.torch import backend as TB  # noqa: E402
from fdaref.backends.torch.engine import DeviceData  # noqa: E402

TIMING = ("images_per_s", "train_time_s", "eval_time_s")


def _splits():
    return make_splits(synthetic_dataset(64, seed=1), synthetic_dataset(24, seed=2), seed=0, val_fraction=0.25)


def _cfg(out: Path, **kw) -> TrainConfig:
    base = dict(model="tiny", dataset="mnist", epochs=2, batch_size=16, lr=0.1, seed=0, out=str(out),
                backend="torch", engine="torch")
    base.update(kw)
    return TrainConfig(**base)


def _run(out: Path, resume: bool = False, stop: int | None = None, **kw):
    return Trainer(_cfg(out, **kw), progress=False, splits=_splits(), stop_after_steps=stop,
                   log=lambda s: None).run(resume=resume)


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("torch_engine")
    assert _run(out).status == "complete"
    return out


@pytest.mark.parametrize("augment", (True, False))
def test_device_batches_equal_host_loader(augment: bool) -> None:
    s = _splits()
    loader = BatchLoader(s.train, 16, s.mean, s.std, seed=3, shuffle=True, augment=augment, drop_last=True)
    data = DeviceData(loader, torch.device("cpu"), torch.float32)
    host = list(loader.epoch(2, start_batch=1))
    dev = list(data.epoch(2, 1))
    assert len(host) == len(dev) == len(loader) - 1
    for (x, y), (xd, yd) in zip(host, dev):
        assert xd.dtype == torch.float32 and yd.dtype == torch.int64
        assert np.array_equal(x, xd.numpy()) and np.array_equal(y, yd.numpy())


def test_default_engine_is_the_backends_fastest_and_fdaref_stays() -> None:
    from fdaref.backends.torch.engine import COMPILE_MIN_STEPS
    assert set(engine_names(TB)) == {"torch", "torch-compile", "fdaref"}
    assert default_engine(TB, 100) == "torch"                      # short runs: no compile to repay
    assert default_engine(TB, COMPILE_MIN_STEPS) == "torch-compile"
    assert engine_names(object()) == ("fdaref",) and default_engine(object(), 10**6) == "fdaref"


def test_each_engine_trains_and_writes_the_same_outputs(torch_run: Path, tmp_path: Path) -> None:
    assert _run(tmp_path, engine="fdaref").status == "complete"
    ours, ref = read_jsonl(torch_run / "metrics.jsonl"), read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in ours] == [r["epoch"] for r in ref] == [0, 1]
    for a, b in zip(ours, ref):
        assert set(a) == set(b)
        assert (a["n"], a["alpha"], a["lr"]) == (b["n"], b["alpha"], b["lr"])    # same SEMANTICS 6 schedule and lr
        # same data, same initial weights, float32 on both: the first epoch's mean loss agrees closely
    assert ours[0]["train_loss"] == pytest.approx(ref[0]["train_loss"], rel=1e-3)
    s = json.loads((torch_run / "summary.json").read_text())
    assert s["status"] == "complete" and s["backend"]["engine"] == "torch"
    assert json.loads((tmp_path / "summary.json").read_text())["backend"]["engine"] == "fdaref"
    ck_t, ck_f = load_checkpoint(torch_run / "checkpoint.npz"), load_checkpoint(tmp_path / "checkpoint.npz")
    assert list(ck_t["model"]) == list(ck_f["model"])                           # the reference's names
    assert ck_t["optimizer"]["steps"] == ck_f["optimizer"]["steps"] == 2 * 3
    for st, sf in zip(ck_t["optimizer"]["state"], ck_f["optimizer"]["state"]):
        assert set(st) == set(sf) == {"momentum"}
        assert st["momentum"].shape == sf["momentum"].shape


@pytest.mark.parametrize("stops", [(2,), (3,), (1, 3)])
def test_torch_engine_resume_is_bit_exact(torch_run: Path, tmp_path: Path, stops: tuple[int, ...]) -> None:
    assert _run(tmp_path, stop=stops[0]).status == "interrupted"
    for more in stops[1:]:
        assert _run(tmp_path, resume=True, stop=more).status == "interrupted"
    assert _run(tmp_path, resume=True).status == "complete"
    a, b = load_checkpoint(torch_run / "checkpoint.npz"), load_checkpoint(tmp_path / "checkpoint.npz")
    for k in a["model"]:
        assert np.array_equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"], b["optimizer"]["state"]):
        assert np.array_equal(sa["momentum"], sb["momentum"])
    strip = lambda rs: [{k: v for k, v in r.items() if k not in TIMING} for r in rs]  # noqa: E731
    assert strip(read_jsonl(tmp_path / "metrics.jsonl")) == strip(read_jsonl(torch_run / "metrics.jsonl"))


def test_adam_state_round_trips_through_the_reference_format(tmp_path: Path) -> None:
    full = tmp_path / "full"
    assert _run(full, optimizer="adam", lr=1e-3).status == "complete"
    part = tmp_path / "part"
    assert _run(part, optimizer="adam", lr=1e-3, stop=4).status == "interrupted"
    ck = load_checkpoint(part / "checkpoint.npz")
    assert all(set(s) == {"m", "v"} for s in ck["optimizer"]["state"]) and ck["optimizer"]["steps"] == 4
    assert _run(part, resume=True, optimizer="adam", lr=1e-3).status == "complete"
    a, b = load_checkpoint(full / "checkpoint.npz"), load_checkpoint(part / "checkpoint.npz")
    for k in a["model"]:
        assert np.array_equal(a["model"][k], b["model"][k]), k


def test_reference_model_reads_the_torch_checkpoint(torch_run: Path) -> None:
    """The reference model (numpy) rebuilt from the torch engine's checkpoint predicts what the torch model
    predicts: the same logits within float32 tolerance on the test images."""
    run = load_trained(torch_run / "checkpoint.npz", backend="numpy")
    s = _splits()
    x = BatchLoader(s.test, 24, run.mean, run.std).epoch(0).__next__()[0]
    with ad.no_grad():
        ref_logits = run.model(ad.Tensor.from_numpy(x)).numpy()
    trainer = Trainer(_cfg(torch_run / "again"), progress=False, splits=_splits(), log=lambda s: None)
    trainer._setup()
    trainer.engine.load_model_state(load_checkpoint(torch_run / "checkpoint.npz")["model"])
    model = trainer.engine.model.eval()
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(torch_logits, ref_logits, rtol=1e-4, atol=1e-4)
    assert np.array_equal(torch_logits.argmax(1), ref_logits.argmax(1))


def test_nan_loss_stops_the_torch_engine(tmp_path: Path) -> None:
    t = Trainer(_cfg(tmp_path, lr=1e30), progress=False, splits=_splits(), log=lambda s: None)
    with pytest.raises(TrainingDiverged, match=r"epoch 1/2, batch \d/3"):
        t.run()
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


def test_unknown_engine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="engine: backend 'torch' offers torch, torch-compile, fdaref, not 'jax'"):
        _run(tmp_path, engine="jax")


class _PoisonedBuffer(Trainer):
    """Sets one batch-norm running variance to NaN after the first step of epoch 2: the training loss stays
    finite (training uses batch statistics), so only the engine's all-finite check can catch it."""

    def _step(self, x, y, lr):
        super()._step(x, y, lr)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 4:
            if self.engine.name == "torch":
                self.engine.model[1].running_var[0] = float("nan")
            else:
                bn = self.engine.model[1].running_var
                bad = bn.numpy().copy()
                bad[0] = np.nan
                bn.data = bn.ops.from_numpy(bad, "cpu")


@pytest.mark.parametrize("engine", ("torch", "fdaref"))
def test_non_finite_buffer_stops_at_the_epoch_end(tmp_path: Path, engine: str) -> None:
    t = _PoisonedBuffer(_cfg(tmp_path, engine=engine), progress=False, splits=_splits(), log=lambda s: None)
    with pytest.raises(TrainingDiverged, match=r"1 non-finite values in the model's parameters / buffers: "
                                               r"1.running_var \(1\) at epoch 2/2 .*after epoch 1\) is kept"):
        t.run()
    ck = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ck["position"]["epoch"] == 1 and np.isfinite(ck["model"]["1.running_var"]).all()
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"
