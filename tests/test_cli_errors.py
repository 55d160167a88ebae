"""Each case of issue 14 driven through the CLI: the exit status, the one-line message, and that no file that
existed before changed. Tiny model, synthetic IDX data: fast."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fdaref.cli.main import main
from fdaref.data.synthetic import write_synthetic_idx
from fdaref.train import Trainer, TrainConfig, load_checkpoint, save_checkpoint

FAST = ["--model", "tiny", "--dataset", "mnist", "--batch-size", "16", "--dtype", "float64", "--backend", "numpy",
        "--quiet"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_idx(tmp_path_factory.mktemp("mnist"), n_train=80, n_test=24)


def _train_argv(data_dir: Path, out: Path, *more: str) -> list[str]:
    return ["train", *FAST, "--data-dir", str(data_dir), "--subset", "48", "--epochs", "2", "--out", str(out), *more]


@pytest.fixture(scope="module")
def finished(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished")
    assert main(_train_argv(data_dir, out)) == 0
    return out


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (what "no earlier file changed" compares)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line_error(capsys: pytest.CaptureFixture, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fdaref {command}: error: "), err
    assert "\n" not in err and "Traceback" not in err, err
    return err


# -- 1. ablation: a run is reused only under the settings it was trained with; not into results/ -----------------

def test_ablation_refuses_a_run_trained_with_other_settings(data_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    base = ["ablation", *FAST, "--data-dir", str(data_dir), "--subset", "32", "--test-subset", "16", "--seeds", "1",
            "--variants", "ste", "--out", str(tmp_path)]
    assert main(base + ["--epochs", "1", "--lr", "0.1"]) == 0
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(base + ["--epochs", "3", "--lr", "0.01"]) == 2
    err = one_line_error(capsys, "ablation")
    assert "holds a run with other settings" in err and "epochs: stored 1, requested 3" in err
    assert "lr: stored 0.1, requested 0.01" in err and "--overwrite" in err
    assert snapshot(tmp_path) == before
    assert main(base + ["--epochs", "3", "--lr", "0.01", "--overwrite"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["epochs"] == 3 and results["config"]["lr"] == 0.01
    assert [len(r["curve"]) for r in results["results"]] == [3]     # the numbers are the 3-epoch run's
    run = tmp_path / "runs" / "ste" / "seed0"
    assert load_checkpoint(run / "checkpoint.npz")["config"]["epochs"] == 3
    assert "3 epochs" in (tmp_path / "table.md").read_text()


def test_ablation_default_out_is_not_results(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["ablation", *FAST, "--data-dir", str(data_dir), "--subset", "32", "--test-subset", "16",
                 "--epochs", "1", "--seeds", "1", "--variants", "ste"]) == 0
    assert (tmp_path / "runs" / "ablation" / "table.md").is_file()
    assert not (tmp_path / "results").exists()


# -- 2. a run directory is a record -----------------------------------------------------------------------------

def test_train_refuses_a_directory_holding_a_run(finished: Path, data_dir: Path, capsys: pytest.CaptureFixture,
                                                 tmp_path: Path) -> None:
    before = snapshot(finished)
    capsys.readouterr()
    assert main(_train_argv(data_dir, finished)) == 2
    err = one_line_error(capsys, "train")
    assert f"--out {finished} already holds a run (checkpoint.npz, metrics.jsonl, summary.json)" in err
    assert "--resume" in err and "--overwrite" in err
    assert main(_train_argv(data_dir, finished, "--resume", "--overwrite")) == 2
    assert "give one of them" in one_line_error(capsys, "train")
    assert snapshot(finished) == before
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, data in before.items():
        (copy / name).write_bytes(data)
    (copy / "notes.txt").write_text("mine")
    assert main(_train_argv(data_dir, copy, "--epochs", "1", "--overwrite")) == 0
    assert len((copy / "metrics.jsonl").read_text().splitlines()) == 1   # a new 1-epoch run replaced it
    assert (copy / "notes.txt").read_text() == "mine"                      # only run files are replaced


def test_default_out_is_a_fresh_directory(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["train", *FAST, "--data-dir", str(data_dir), "--subset", "32", "--epochs", "1"]
    assert main(argv) == 0
    assert main(argv) == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("train-") for r in runs)
    assert all((r / "summary.json").is_file() for r in runs)
    assert f"writing the run into runs{os.sep}{runs[1].name}" in capsys.readouterr().err
    assert main(["train", "--resume"]) == 2
    assert "--resume needs --out RUN_DIR" in one_line_error(capsys, "train")


# -- 3. kill windows (the full kill-at-each-write test is tests/test_cli_kill_resume.py) -----------------------

def test_resume_of_a_finished_run_writes_the_missing_summary(finished: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name, data in snapshot(finished).items():
        (run / name).write_bytes(data)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()
    (run / ".checkpoint.npz.4242.tmp").write_bytes(b"half a checkpoint")
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"all 2 epochs already done; wrote the missing {run / 'summary.json'}" in captured.err
    assert "resuming" not in captured.err and "epoch 3/2" not in captured.err
    again = json.loads((run / "summary.json").read_text())
    assert again["test_acc"] == summary["test_acc"] and again["confusion_matrix"] == summary["confusion_matrix"]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.npz", "metrics.jsonl", "summary.json"]
    assert f"metrics: {run / 'metrics.jsonl'}" in captured.out


# -- 4. one line instead of a traceback --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def packed(finished: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("packed") / "model.npz"
    assert main(["export", "--checkpoint", str(finished / "checkpoint.npz"), "--out", str(out)]) == 0
    return out


def test_evaluate_packed_bad_files(packed: Path, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(packed.read_bytes()[:200])
    before = snapshot(tmp_path), snapshot(finished)
    cases = [(tmp_path / "missing.npz", "missing.npz: packed model not found (write one with `fdaref export"),
             (truncated, "truncated.npz: unreadable packed model"),
             (finished / "checkpoint.npz", "checkpoint.npz: a training checkpoint, not a packed model")]
    for path, message in cases:
        capsys.readouterr()
        assert main(["evaluate", "--packed", str(path)]) == 2
        assert message in one_line_error(capsys, "evaluate")
    assert (snapshot(tmp_path), snapshot(finished)) == before


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_train_out_not_a_directory(where: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "taken"
    f.write_text("not a directory")
    out = f if where == "a file" else f / "run"
    assert main(_train_argv(data_dir, out)) == 2
    err = one_line_error(capsys, "train")
    assert (f"--out {out}: is a file" if where == "a file" else f"--out {out}: is under {f}, which is a file") in err
    assert snapshot(tmp_path) == {"taken": b"not a directory"}


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only directories")
def test_train_out_read_only(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(_train_argv(data_dir, ro / "run")) == 2
        assert f"--out {ro / 'run'}: {ro} is not writable" in one_line_error(capsys, "train")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc, where nobody (root neither) can write")
def test_train_out_where_the_os_refuses(data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """Root ignores permission bits, so this is an unwritable place for every user, root included."""
    out = Path("/proc/self/fdaref-run")
    assert main(_train_argv(data_dir, out)) == 2
    assert f"--out {out}: /proc/self is not writable" in one_line_error(capsys, "train")


def test_export_out_errors(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ck = finished / "checkpoint.npz"
    before = snapshot(finished), snapshot(tmp_path)
    assert main(["export", "--checkpoint", str(ck), "--out", str(tmp_path)]) == 2
    assert f"{tmp_path}: cannot write (is a directory, expected a file path)" in one_line_error(capsys, "export")
    assert main(["export", "--checkpoint", str(ck), "--out", str(ck)]) == 2
    assert "is the checkpoint itself" in one_line_error(capsys, "export")
    assert (snapshot(finished), snapshot(tmp_path)) == before


def test_plot_out_unwritable(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "taken"
    f.write_text("x")
    assert main(["plot", "estimators", "--out", str(f / "est.png")]) == 2
    assert f"{f / 'est.png'}: cannot create its directory {f}" in one_line_error(capsys, "plot")
    assert main(["plot", "estimators", "--out", str(tmp_path)]) == 2
    assert "is a directory, expected a file path" in one_line_error(capsys, "plot")
    assert snapshot(tmp_path) == {"taken": b"x"}


@pytest.fixture()
def raising_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "raising_backend_mod.py").write_text(
        "def factory():\n    raise RuntimeError('no accelerator in this machine')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "raising_backend_mod:factory"


def test_backend_factory_that_raises(raising_backend: str, finished: Path, data_dir: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    before = snapshot(finished)
    message = f"backend {raising_backend!r}: its factory raised RuntimeError: no accelerator in this machine"
    assert main(_train_argv(data_dir, tmp_path / "run", "--backend", raising_backend)) == 2
    assert message in one_line_error(capsys, "train")
    assert not (tmp_path / "run").exists()
    assert main(["evaluate", "--checkpoint", str(finished / "checkpoint.npz"), "--backend", raising_backend]) == 2
    assert message in one_line_error(capsys, "evaluate")
    assert snapshot(finished) == before


# -- 5. divergence seen in the parameters and buffers, not only in the loss -----------------------------------------

def test_non_finite_buffer_stops_the_run(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A broken BN running_var with a finite training loss (what Adam at lr 50 does): exit 3, checkpoint kept."""
    out = tmp_path / "run"
    cfg = TrainConfig(model="tiny", dataset="mnist", data_dir=str(data_dir), subset=48, batch_size=16, epochs=2,
                      dtype="float64", backend="numpy", out=str(out))
    steps_per_epoch = 2   # 48 images, 10% held out for validation, batch 16, last partial batch dropped
    assert Trainer(cfg, progress=False, log=lambda s: None, stop_after_steps=steps_per_epoch).run().status == "interrupted"
    ck = load_checkpoint(out / "checkpoint.npz")
    var = ck["model"]["1.running_var"]
    var[:3] = np.inf
    save_checkpoint(out / "checkpoint.npz", ck)
    before = snapshot(out)
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "training stopped: 3 non-finite values in the model's parameters / buffers: 1.running_var (3)" in err
    assert f"the last good checkpoint {out / 'checkpoint.npz'} (after epoch 1) is kept" in err
    assert "Traceback" not in err
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k != "summary.json"} == before
    assert json.loads(after["summary.json"])["status"] == "diverged"


# -- 6. honest numbers ---------------------------------------------------------------------------------------------

def test_help_shows_each_commands_defaults(capsys: pytest.CaptureFixture) -> None:
    def help_of(command: str) -> str:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        return " ".join(capsys.readouterr().out.split())
    demo, train, ablation = help_of("demo"), help_of("train"), help_of("ablation")
    assert "epochs (default 4)" in demo and "(default 32)" in demo and "default adam" in demo
    assert "(default 9000)" in demo and "default off" in demo and "(default 0.002)" in demo
    assert "default 100" not in demo and "default numpy" not in demo and "default sgd" not in demo
    assert "fashion-mnist 100" in train and "default sgd" in train and "(default numpy)" in train
    assert "default layer" in ablation and "(default runs/ablation" in ablation
    for text in (demo, train):
        assert "release: ste, no noise module, layer scale, sign(0) = 0" in text


def test_version(capsys: pytest.CaptureFixture) -> None:
    from importlib.metadata import version
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"fdaref {version('fdaref')}"


def test_evaluate_says_where_a_mid_epoch_checkpoint_is(data_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    cfg = TrainConfig(model="tiny", dataset="mnist", data_dir=str(data_dir), subset=72, batch_size=16, epochs=2,
                      dtype="float64", backend="numpy", out=str(tmp_path))
    Trainer(cfg, progress=False, log=lambda s: None, stop_after_steps=5).run()  # 4 steps per epoch: epoch 2, batch 1
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "checkpoint.npz")]) == 0
    out = capsys.readouterr().out
    assert "saved during epoch 2/2 (after batch 1/4)" in out and "after epoch 1/2" not in out


def test_library_notices_reach_the_cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """fdaref logs (never prints); the CLI shows INFO notices such as numba's first-compile one as one line."""
    import logging
    import fdaref.cli.info as info

    def run(args):
        logging.getLogger("fdaref.backends.numba").info("numba: compiling the kernels on first use")
        return 0
    monkeypatch.setattr(info, "run", run)
    assert main(["info"]) == 0   # the parser binds info.run when it is built, after the patch
    assert "fdaref: numba: compiling the kernels on first use" in capsys.readouterr().err


def test_numba_first_compile_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    caplog: pytest.LogCaptureFixture) -> None:
    nb = pytest.importorskip("fdaref.backends.numba")
    import numba.core.config
    monkeypatch.setattr(numba.core.config, "CACHE_DIR", str(tmp_path))   # an empty cache: kernels compile
    with caplog.at_level("INFO", logger="fdaref"):
        nb.notice_first_compile()
    assert "compiling the kernels on first use" in caplog.text
    for module in nb._KERNEL_MODULES:
        (tmp_path / "numba_0" / f"{module}.kernel-1.py311.nbi").parent.mkdir(exist_ok=True)
        (tmp_path / "numba_0" / f"{module}.kernel-1.py311.nbi").write_bytes(b"")
    caplog.clear()
    with caplog.at_level("INFO", logger="fdaref"):
        nb.notice_first_compile()
    assert caplog.text == ""


# -- the audit of the CLI's bad-input paths: one line, exit 2, nothing replaced -------------------------------------

def argparse_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """The error line argparse prints for ``argv`` (exit 2, usage then one ``error:`` line, no traceback)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].count("error:") == 1, err
    return err.strip().splitlines()[-1]


def rewrite_archive(src: Path, dst: Path, edit) -> Path:
    """Copy the fdaref archive ``src`` to ``dst`` with ``edit(meta, arrays)`` applied (it may return a new meta)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(bytes(z["__meta__"]).decode())
    new = edit(meta, arrays)
    meta = meta if new is None else new
    np.savez(dst, **arrays, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    return dst


def _model_key(meta: dict, arrays: dict, name: str) -> str:
    """The npz member of the checkpoint's model tensor ``name``."""
    state = dict(meta["state"]["__dict__"])
    return dict(state["model"]["__dict__"])[name]["__array__"]


def _drop_entry(name: str):
    def edit(meta, arrays):
        meta["state"]["__dict__"] = [kv for kv in meta["state"]["__dict__"] if kv[0] != name]
    return edit


def _pop_array(pick):
    def edit(meta, arrays):
        del arrays[next(k for k in arrays if pick(k))]
    return edit


def _edit_weight(fn):
    def edit(meta, arrays):
        key = _model_key(meta, arrays, "0.weight")
        arrays[key] = fn(arrays[key])
    return edit


CORRUPT_CHECKPOINTS = {
    "no state": (lambda meta, arrays: {"format": meta["format"]}, 'has no "state"'),
    "meta a list": (lambda meta, arrays: [1, 2], "is not a JSON object"),
    "an array member missing": (_pop_array(lambda k: k == "a0"), "the array 'a0' at"),
    "no config": (_drop_entry("config"), "no config entry"),
    "no model": (_drop_entry("model"), "no model entry"),
    "state a string": (lambda meta, arrays: {"format": meta["format"], "state": "hello"}, "its state is a str"),
    "wrong weight shape": (_edit_weight(lambda w: w.reshape(-1)[:3]), "tensor 0.weight is float64 [3], expected"),
    "int64 weights": (_edit_weight(lambda w: w.astype(np.int64)), "tensor 0.weight is int64"),
    "float16 weights": (_edit_weight(lambda w: w.astype(np.float16)), "tensor 0.weight is float16"),
    "NaN weights": (_edit_weight(lambda w: np.full_like(w, np.nan)), "tensor 0.weight has"),
    "NaN normalisation": (lambda meta, arrays: arrays.update(
        {dict(dict(meta["state"]["__dict__"])["data"]["__dict__"])["std"]["__array__"]: np.array([np.nan])}),
        "should be finite with std > 0"),
}


@pytest.mark.parametrize("command", ["evaluate", "export", "resume"])
@pytest.mark.parametrize("case", CORRUPT_CHECKPOINTS)
def test_corrupt_checkpoint_is_one_line(case: str, command: str, finished: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    edit, message = CORRUPT_CHECKPOINTS[case]
    if command == "resume" and case == "NaN weights":
        pytest.skip("a resumed run's non-finite weights are the divergence guard's (test_non_finite_buffer_...)")
    run = tmp_path / "run"
    run.mkdir()
    ck = rewrite_archive(finished / "checkpoint.npz", run / "checkpoint.npz", edit)
    before = snapshot(tmp_path)
    capsys.readouterr()
    argv = {"evaluate": ["evaluate", "--checkpoint", str(ck)],
            "export": ["export", "--checkpoint", str(ck), "--out", str(tmp_path / "packed.npz")],
            "resume": ["train", "--out", str(run), "--resume", "--quiet"]}[command]
    assert main(argv) == 2
    err = one_line_error(capsys, "train" if command == "resume" else command)
    assert message in err and str(ck) in err
    assert snapshot(tmp_path) == before


CORRUPT_PACKED = {
    "no binary_layers": (lambda meta, arrays: meta.pop("binary_layers") and None, "no binary_layers"),
    "no config": (lambda meta, arrays: meta.pop("config") and None, "no config"),
    "no dtype": (lambda meta, arrays: meta.pop("dtype") and None, "no dtype"),
    "a float weight missing": (_pop_array(lambda k: k.startswith("float.")), "float layers: the model state does not fit"),
    "bits missing": (_pop_array(lambda k: k.endswith(".weight_bits")), ".weight_bits are missing"),
    "a bogus dataset": (lambda meta, arrays: meta.update(dataset="nosuch"), "unknown dataset 'nosuch'"),
    "NaN mean": (lambda meta, arrays: meta.update(mean=[float("nan")]), "should be finite with std > 0"),
}


@pytest.mark.parametrize("case", CORRUPT_PACKED)
def test_corrupt_packed_model_is_one_line(case: str, packed: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    edit, message = CORRUPT_PACKED[case]
    bad = rewrite_archive(packed, tmp_path / "bad.npz", edit)
    capsys.readouterr()
    assert main(["evaluate", "--packed", str(bad)]) == 2
    assert message in one_line_error(capsys, "evaluate")


@pytest.mark.parametrize("flags", [["--backend", "torch"], ["--device", "cuda"]])
def test_evaluate_packed_refuses_flags_it_would_ignore(flags: list[str], packed: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "--packed", str(packed), *flags]) == 2
    err = one_line_error(capsys, "evaluate")
    assert f"{flags[0]} would be ignored" in err


@pytest.fixture()
def bad_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fdaref_raises_on_import.py").write_text("raise RuntimeError('no licence server')\n")
    (tmp_path / "fdaref_bad_syntax.py").write_text("def broken(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))


BAD_SPECS = {":": "expected package.module:object", ".x:y": "TypeError",
             "fdaref_raises_on_import:ops": "RuntimeError: no licence server",
             "fdaref_bad_syntax:ops": "SyntaxError"}


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_backend_spec_that_cannot_be_imported(spec: str, bad_modules: None, finished: Path, data_dir: Path,
                                              tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    golden = tmp_path / "golden"
    golden.mkdir()
    runs = {"train": _train_argv(data_dir, tmp_path / "run", "--backend", spec),
            "evaluate": ["evaluate", "--checkpoint", str(finished / "checkpoint.npz"), "--backend", spec],
            "demo": ["demo", "--backend", spec, "--out", str(tmp_path / "demo"), "--no-conformance"]}
    for command, argv in runs.items():
        capsys.readouterr()
        assert main(argv) == 2
        err = one_line_error(capsys, command)
        assert f"backend {spec!r}" in err and BAD_SPECS[spec] in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fdaref_bad_syntax.py", "fdaref_raises_on_import.py",
                                                          "golden"]


def test_vectors_compute_backend_spec_that_cannot_be_imported(bad_modules: None, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("hypothesis")
    assert main(["vectors", "export", str(tmp_path / "v"), "--random", "0", "--ops", "sign"]) == 0
    for spec in BAD_SPECS:
        capsys.readouterr()
        assert main(["vectors", "compute", str(tmp_path / "v"), str(tmp_path / "r"), "--backend", spec]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err and f"backend {spec!r}" in err
    assert not (tmp_path / "r").exists()


def test_conform_torch_layer_on_cuda_without_a_device(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("hypothesis")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: the layer check runs there (tests/test_torch_gpu.py)")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "examples" / "torch_layer"))
    assert main(["conform", "--torch-layer", "check_layer:make_layer", "--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in one_line_error(capsys, "conform")


@pytest.mark.parametrize("argv, message", [
    (["--torch-layer", ".x:y"], "importing '.x' raised TypeError"),
    (["--torch-layer", "os:path"], "expected a layer factory"),
    (["--torch-layer", "check_layer:make_layer", "--torch-mapping", "os:sep"], "expected a fdaref.conformance"),
    (["--torch-layer", "check_layer:make_layer", "--backend", "numpy"], "--backend would be ignored"),
    (["--torch-layer", "check_layer:make_layer", "--ops", "sign", "--seed", "3"], "--ops, --seed would be"),
    (["--backend", "numpy", "--torch-mapping", "os:sep"], "--torch-mapping apply only with --torch-layer"),
])
def test_conform_torch_layer_specs(argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("hypothesis")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "examples" / "torch_layer"))
    assert main(["conform", *argv]) == 2
    assert message in one_line_error(capsys, "conform")


def test_corrupt_vector_manifests(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("hypothesis")
    good = tmp_path / "v"
    assert main(["vectors", "export", str(good), "--random", "0", "--ops", "sign"]) == 0
    manifest = json.loads((good / "manifest.json").read_text())
    edits = {"no cases": lambda m: m.pop("cases"), "cases a string": lambda m: m.update(cases="abc"),
             "a case without op": lambda m: m.update(cases=[{}]),
             "an output without dtype": lambda m: m["cases"][0]["outputs"][0].pop("dtype")}
    for name, edit in edits.items():
        m = json.loads(json.dumps(manifest))
        edit(m)
        (good / "manifest.json").write_text(json.dumps(m))
        for action in ("check", "compute"):
            capsys.readouterr()
            assert main(["vectors", action, str(good), str(tmp_path / "res")]) == 2, name
            err = capsys.readouterr().err.strip()
            assert "\n" not in err and "Traceback" not in err and "corrupt manifest" in err, (name, err)
    assert not (tmp_path / "res").exists()


def test_vectors_argument_checks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("hypothesis")
    assert "--random: expected an integer >= 0, got -1" in argparse_error(
        capsys, ["vectors", "export", str(tmp_path / "v"), "--random", "-1"])
    assert "invalid choice: 'bogus'" in argparse_error(
        capsys, ["vectors", "compute", str(tmp_path / "v"), str(tmp_path / "r"), "--device", "bogus"])
    assert main(["vectors", "export", str(tmp_path / "v"), "--random", "0", "--ops", "sign"]) == 0
    capsys.readouterr()
    assert main(["vectors", "compute", str(tmp_path / "v"), str(tmp_path / "r"), "--device", "cuda"]) == 2
    assert "device 'cuda': backend 'numpy' runs on cpu" in one_line_error(capsys, "vectors")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("content", [b"[1, 2]\n", b"{}\n", b'{"epoch": "one", "train_loss": 1, "train_acc": 0, '
                                     b'"test_acc": 0}\n', b"\x89PNG\r\n\x1a\n\xff\xfe binary"])
def test_corrupt_metrics_file(content: bytes, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(content)
    assert main(["plot", "curves", "--run", str(run)]) == 2
    assert str(run / "metrics.jsonl") in one_line_error(capsys, "plot")
    assert sorted(p.name for p in run.iterdir()) == ["metrics.jsonl"]


@pytest.mark.parametrize("what", ["metrics.jsonl", "summary.json"])
def test_ablation_reusing_a_corrupt_run(what: str, data_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    argv = ["ablation", *FAST, "--data-dir", str(data_dir), "--subset", "32", "--test-subset", "16", "--seeds", "1",
            "--epochs", "1", "--variants", "ste", "--out", str(tmp_path)]
    assert main(argv) == 0
    (tmp_path / "runs" / "ste" / "seed0" / what).write_text("[1, 2]\n")
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    assert str(tmp_path / "runs" / "ste" / "seed0" / what) in one_line_error(capsys, "ablation")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("flag, value, message", [
    ("--case-timeout", "inf", "expected a finite number > 0"), ("--case-timeout", "1e12", "expected at most 86400"),
    ("--case-timeout", "-1", "expected a finite number > 0"), ("--case-timeout", "0", "expected a finite number > 0"),
    ("--case-timeout", "nan", "expected a finite number > 0"), ("--warmup-timeout", "-5", "expected a finite number"),
    ("--layer-timeout", "0", "expected a finite number > 0"), ("--preset", "bogus", "invalid choice: 'bogus'"),
])
def test_conform_limits_and_preset(flag: str, value: str, message: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("hypothesis")
    err = argparse_error(capsys, ["conform", "--backend", "numpy", "--ops", "sign", flag, value,
                                  "--report", str(tmp_path / "r.json")])
    assert flag in err and message in err
    assert list(tmp_path.iterdir()) == []


def test_limits_refuse_what_the_os_timers_cannot_take() -> None:
    from fdaref.conformance.isolation import Limits
    from fdaref.errors import InputError
    for bad in (float("inf"), 1e12, 0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="time limit case: expected a number of seconds"):
            Limits(case=bad)


@pytest.mark.parametrize("flag, message", [("--subset", "the mnist training set has only 80"),
                                           ("--test-subset", "the mnist test set has only 24")])
def test_subset_larger_than_the_data_set(flag: str, message: str, data_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    argv = ["train", *FAST, "--data-dir", str(data_dir), "--epochs", "1", "--out", str(tmp_path / "run"), flag, "1000"]
    assert main(argv) == 2
    assert message in one_line_error(capsys, "train")
    assert not (tmp_path / "run").exists()


def test_momentum_without_sgd(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(_train_argv(data_dir, tmp_path / "run", "--optimizer", "adam", "--momentum", "0.5")) == 2
    assert "--momentum applies to --optimizer sgd only; this run's optimizer is adam" in one_line_error(capsys, "train")
    assert main(["demo", "--momentum", "0.5", "--out", str(tmp_path / "demo"), "--no-conformance"]) == 2
    assert "optimizer is adam" in one_line_error(capsys, "demo")   # the demo's own default optimizer
    assert list(tmp_path.iterdir()) == []


def test_plot_estimators_refuses_run(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["plot", "estimators", "--run", str(finished), "--out", str(tmp_path / "e.png")]) == 2
    assert "plot estimators does not use --run" in one_line_error(capsys, "plot")
    assert main(["plot", "curves", "--run", str(finished), "--omega", "0.2", "--out", str(tmp_path / "c.png")]) == 2
    assert "plot curves does not use --omega" in one_line_error(capsys, "plot")
    assert list(tmp_path.iterdir()) == []


def test_broken_pipe_exits_quietly() -> None:
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "fdaref.cli.main", "info"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()   # the reader went away before the first line, like `| head -0`
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and err == "", err


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe\x00binary"])
def test_resume_refuses_a_corrupt_summary(content: bytes, finished: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name, data in snapshot(finished).items():
        (run / name).write_bytes(data)
    (run / "summary.json").write_bytes(content)
    before = snapshot(run)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 2
    err = one_line_error(capsys, "train")
    assert f"{run / 'summary.json'}: unreadable summary" in err and "Move it away" in err
    assert snapshot(run) == before


def test_non_finite_evaluation_loss_stops_the_run(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    """Finite weights can still give infinite logits (lr 1e30): a NaN test loss is divergence, not a result."""
    from fdaref.train import engine as engines
    real = engines.FdarefEngine.evaluate

    def nan_loss(self, loader):
        res = real(self, loader)
        res.loss = float("nan")
        return res
    monkeypatch.setattr(engines.FdarefEngine, "evaluate", nan_loss)
    out = tmp_path / "run"
    assert main(_train_argv(data_dir, out, "--engine", "fdaref")) == 3
    err = capsys.readouterr().err
    assert "training stopped: the validation loss is nan at epoch 1/2" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]   # no epoch record, no checkpoint
    assert json.loads((out / "summary.json").read_text())["status"] == "diverged"
