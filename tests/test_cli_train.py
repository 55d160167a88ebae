"""Smoke runs of fdaref train / evaluate / plot / ablation / demo on a tiny model and synthetic IDX data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fdaref.cli.main import main
from fdaref.data.synthetic import write_synthetic_idx
from fdaref.train import load_checkpoint

PNG = b"\x89PNG\r\n\x1a\n"
FAST = ["--model", "tiny", "--dataset", "mnist", "--batch-size", "16", "--dtype", "float64", "--backend", "numpy"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_idx(tmp_path_factory.mktemp("mnist"), n_train=80, n_test=24)


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *FAST, "--data-dir", str(data_dir), "--subset", "48", "--epochs", "2", "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_train_outputs(trained: Path, capsys: pytest.CaptureFixture) -> None:
    for name in ("metrics.jsonl", "checkpoint.npz", "summary.json"):
        assert (trained / name).is_file(), name
    lines = (trained / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["epoch"] == 1
    s = json.loads((trained / "summary.json").read_text())
    assert s["config"]["model"] == "tiny" and s["sizes"]["test"] == 24 and s["sizes"]["train"] == 44


def test_evaluate_checkpoint(trained: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(trained / "checkpoint.npz")]) == 0
    text = capsys.readouterr().out
    acc = json.loads((trained / "summary.json").read_text())["test_acc"]
    assert f"test accuracy {100 * acc:.2f}% on 24 images" in text
    assert "<- predicted" in text and "rows: true class" in text
    assert main(["evaluate", "--checkpoint", str(trained / "checkpoint.npz"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["accuracy"] == pytest.approx(acc) and len(res["confusion"]) == 10


def test_evaluate_errors(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.npz")]) == 2
    assert "none.npz: checkpoint not found" in capsys.readouterr().err
    assert main(["evaluate"]) == 2
    assert "give --checkpoint" in capsys.readouterr().err


def test_resume_cli(trained: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["train", "--out", str(trained), "--resume", "--quiet"]) == 0  # already complete
    assert "already done" in capsys.readouterr().err
    assert main(["train", "--out", str(trained), "--resume", "--lr", "0.5", "--quiet"]) == 2
    assert "lr: checkpoint 0.1, now 0.5" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    (["--epochs", "x"], "--epochs: expected an integer >= 1, got 'x'"),
    (["--model", "resnet50"], "invalid choice: 'resnet50'"),
    (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["--lr", "-1"], "--lr: expected a finite number > 0"),
    (["--subset", "0"], "--subset: expected an integer >= 1"),
])
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "cifar"
    assert main(["train", "--dataset", "cifar10", "--data-dir", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "data_batch_1" in err
    assert main(["train", "--dataset", "fashion-mnist", "--data-dir", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
    assert main(["train", *FAST, "--backend", "nonesuch", "--data-dir", str(missing), "--out", str(tmp_path)]) == 2
    assert "unknown backend 'nonesuch'" in capsys.readouterr().err


def test_plots(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "est.png"
    assert main(["plot", "estimators", "--out", str(out), "--n", "1,9"]) == 0
    assert out.read_bytes()[:8] == PNG
    assert main(["plot", "curves", "--run", str(trained)]) == 0
    assert (trained / "curves.png").read_bytes()[:8] == PNG
    assert main(["plot", "curves", "--run", str(tmp_path)]) == 2


def test_ablation_smoke(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["ablation", *FAST, "--data-dir", str(data_dir), "--subset", "32", "--test-subset", "16", "--epochs", "1",
            "--seeds", "2", "--variants", "ste,fda+noise", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    table = (tmp_path / "table.md").read_text()
    assert "| ste | ste | no |" in table and "| fda+noise | fda | yes | sin |" in table and "±" in table
    assert "84.44" in table and "86.20" in table and "fdaref ablation" in table
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert len(results) == 4 and all(r["status"] == "complete" for r in results)
    assert results[0]["test_acc"] != results[1]["test_acc"] or results[0]["curve"] != results[2]["curve"]
    capsys.readouterr()
    assert main(argv) == 0  # finished runs are reused, not retrained
    assert "== ste" not in capsys.readouterr().err


def test_demo_smoke(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The banner says what the preset really is (release: STE, no noise module, layer scale, sign(0) = 0)."""
    assert main(["demo", *FAST, "--data-dir", str(data_dir), "--subset", "32", "--test-subset", "16", "--epochs", "1",
                 "--preset", "release", "--out", str(tmp_path), "--quiet", "--no-conformance"]) == 0
    out = capsys.readouterr().out
    assert "(release preset: ste, no noise module, layer scale, sign(0) = 0)" in out
    assert "TEST ACCURACY" in out and str(tmp_path / "checkpoint.npz") in out and "curves.png" in out
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    assert load_checkpoint(tmp_path / "checkpoint.npz")["options"]["estimator"] == "ste"


def test_fastest_backend() -> None:
    from fdaref.cli.demo import fastest_backend
    assert fastest_backend("cpu") in ("torch", "numba", "numpy")
