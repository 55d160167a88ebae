"""Nothing lost: an output already there is refused (one line naming it and --overwrite, exit 2, the file
byte-identical) unless --overwrite, a failed command writes nothing, and an empty path is refused instead of
meaning the current directory or the default."""
from __future__ import annotations

from pathlib import Path

import pytest

from fdaref.cli.main import main

from test_cli_errors import FAST, _train_argv, argparse_error, data_dir, finished, one_line_error, snapshot  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n"


def refused(capsys: pytest.CaptureFixture, command: str, argv: list[str], path: Path) -> None:
    """``argv`` exits 2 with one line naming ``path`` and --overwrite, and ``path`` is left as it was."""
    before = path.read_bytes() if path.is_file() else None
    capsys.readouterr()
    assert main(argv) == 2
    err = one_line_error(capsys, command)
    assert f"{path} already exists; replace it with --overwrite" in err or f"{path} is not empty" in err, err
    if before is not None:
        assert path.read_bytes() == before


def test_export_refuses_an_existing_file(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "model.npz"
    out.write_bytes(b"mine")
    argv = ["export", "--checkpoint", str(finished / "checkpoint.npz"), "--out", str(out)]
    refused(capsys, "export", argv, out)
    assert main(argv + ["--overwrite"]) == 0
    assert out.read_bytes()[:2] == b"PK"


def test_plot_refuses_an_existing_png(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"my figure")
    refused(capsys, "plot", ["plot", "estimators", "--out", str(mine)], mine)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes((finished / "metrics.jsonl").read_bytes())
    (run / "curves.png").write_bytes(b"my curves")
    refused(capsys, "plot", ["plot", "curves", "--run", str(run)], run / "curves.png")
    assert main(["plot", "curves", "--run", str(run), "--overwrite"]) == 0
    assert (run / "curves.png").read_bytes()[:8] == PNG


@pytest.fixture()
def conform_ready() -> None:
    pytest.importorskip("hypothesis")


def test_conform_refuses_an_existing_report(conform_ready: None, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    report = tmp_path / "rep.json"
    report.write_text('{"mine": true}\n')
    argv = ["conform", "--backend", "numpy", "--profile", "quick", "--ops", "relu_forward", "--report", str(report)]
    refused(capsys, "conform", argv, report)
    assert main(argv + ["--overwrite"]) == 0
    assert '"mine"' not in report.read_text()


@pytest.mark.parametrize("bad", [["--backend", "no_such_backend_xyz"], ["--backend", ":"],
                                 ["--backend", "numpy", "--ops", "bogus"]])
def test_conform_failure_writes_no_report(bad: list[str], conform_ready: None, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    """Before, a placeholder {"status": "running"} was written first: it replaced the user's report (with
    --overwrite) or stayed behind as a new file."""
    report = tmp_path / "rep.json"
    assert main(["conform", *bad, "--profile", "quick", "--report", str(report)]) == 2
    one_line_error(capsys, "conform")
    assert not report.exists()
    report.write_text('{"mine": true}\n')
    assert main(["conform", *bad, "--profile", "quick", "--report", str(report), "--overwrite"]) == 2
    assert report.read_text() == '{"mine": true}\n'


def test_conform_report_place_checked_without_writing(conform_ready: None, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    argv = ["conform", "--backend", "numpy", "--ops", "sign", "--report"]
    assert main(argv + [str(tmp_path / "no" / "dir" / "r.json")]) == 2
    assert "no such directory" in one_line_error(capsys, "conform")
    assert main(argv + [str(tmp_path)]) == 2
    assert "is a directory, expected a file path" in one_line_error(capsys, "conform")
    assert list(tmp_path.iterdir()) == []


def test_vectors_refuse_existing_vectors_and_results(conform_ready: None, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    vec = tmp_path / "vec"
    export = ["vectors", "export", str(vec), "--random", "0", "--ops", "sign"]
    assert main(export) == 0
    refused(capsys, "vectors", export, vec / "manifest.json")
    before = snapshot(vec)
    assert main(export + ["--format", "npz"]) == 2   # manifest.json would be replaced
    assert snapshot(vec) == before
    assert main(export + ["--overwrite"]) == 0
    res = tmp_path / "res"
    assert main(["vectors", "compute", str(vec), str(res)]) == 0
    kept = snapshot(res)
    refused(capsys, "vectors", ["vectors", "compute", str(vec), str(res)], res)
    assert snapshot(res) == kept
    npz = tmp_path / "res.npz"
    npz.write_bytes(b"mine")
    refused(capsys, "vectors", ["vectors", "compute", str(vec), str(npz)], npz)
    assert main(["vectors", "compute", str(vec), str(npz), "--overwrite"]) == 0
    assert npz.read_bytes()[:2] == b"PK"


def test_ablation_refuses_another_commands_table(data_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    base = ["ablation", *FAST, "--data-dir", str(data_dir), "--subset", "32", "--test-subset", "16", "--seeds", "1",
            "--epochs", "1", "--out", str(tmp_path)]
    assert main(base + ["--variants", "ste"]) == 0
    before = snapshot(tmp_path)
    refused(capsys, "ablation", base + ["--variants", "fda"], tmp_path / "table.md")
    assert snapshot(tmp_path) == before                       # nothing trained either
    assert main(base + ["--variants", "ste"]) == 0            # the same command brings its own table up to date
    assert main(base + ["--variants", "fda", "--overwrite"]) == 0
    assert "| fda |" in (tmp_path / "table.md").read_text()


@pytest.mark.parametrize("argv", [
    ["train", "--out", ""], ["demo", "--out", ""], ["ablation", "--out", ""], ["train", "--data-dir", ""],
    ["export", "--checkpoint", "ck.npz", "--out", ""], ["vectors", "export", ""], ["vectors", "compute", "v", ""],
    ["plot", "estimators", "--out", ""], ["plot", "curves", "--run", ""], ["evaluate", "--checkpoint", ""],
    ["conform", "--backend", "numpy", "--ops", ""], ["conform", "--backend", "numpy", "--preset", ""],
    ["conform", "--backend", "numpy", "--report", ""],
])
def test_empty_strings_are_refused(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    if argv[0] in ("conform", "vectors"):
        pytest.importorskip("hypothesis")
    monkeypatch.chdir(tmp_path)
    err = argparse_error(capsys, argv)
    assert "expected a non-empty value" in err or "invalid choice: ''" in err
    assert list(tmp_path.iterdir()) == []
