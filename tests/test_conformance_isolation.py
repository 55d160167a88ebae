"""Isolation: an op that exits, hangs or crashes fails its own case, the run goes on and the JSON report is
written; bad --report and unloadable backends are one line; --seed replays a random profile exactly."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("hypothesis")

from fdaref.cli.main import main  # noqa: E402
from fdaref.conformance import broken  # noqa: E402
from fdaref.conformance.isolation import Limits  # noqa: E402
from fdaref.conformance.runner import run_suite  # noqa: E402

FAST = Limits(case=1.0, warmup=1.0, layer=5.0)


def test_sys_exit_inside_an_op_is_that_case_failure():
    report = run_suite(broken.ExitingOp(), dtype="float32", profile="quick", ops=["relu_forward", "relu_backward"],
                       layers=False, limits=FAST)
    status = report.op_status()
    assert status["relu_forward"] == "error" and status["relu_backward"] == "pass"
    assert "sys.exit(7)" in report.failures()[0].traceback


def test_a_hanging_op_times_out_and_the_run_goes_on():
    report = run_suite(broken.HangingOp(), dtype="float32", profile="quick", ops=["relu_backward", "relu_forward"],
                       layers=False, limits=FAST)
    status = report.op_status()
    assert status["relu_backward"] == "error" and status["relu_forward"] == "pass"
    assert "time limit of 1 s" in report.failures()[0].render()
    assert report.seconds < 30  # the property stops after the first timeout instead of shrinking on it


def test_cli_writes_the_report_after_an_exit_in_an_op(tmp_path, capsys):
    path = tmp_path / "r.json"
    rc = main(["conform", "--backend", "fdaref.conformance.broken:ExitingOp", "--profile", "quick",
               "--ops", "relu_forward,relu_backward", "--report", str(path)])
    assert rc == 1
    data = json.loads(path.read_text())
    assert data["summary"]["ok"] is False and data["ops"]["relu_backward"] == "pass"


def test_cli_survives_a_crashing_op(tmp_path):
    (tmp_path / "crashing_backend.py").write_text(textwrap.dedent("""
        import os, signal
        from fdaref.conformance.broken import _Wrapper

        class Crashing(_Wrapper):
            def relu_forward(self, x):
                os.kill(os.getpid(), signal.SIGSEGV)
    """))
    report = tmp_path / "r.json"
    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "fdaref.cli.main", "conform", "--backend", "crashing_backend:Crashing",
                          "--profile", "quick", "--ops", "relu_forward,relu_backward", "--report", str(report)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 1, out.stderr
    data = json.loads(report.read_text())
    crashed = [c for c in data["cases"] if c["outcome"] == "error"]
    assert crashed and all("signal 11" in c["message"] for c in crashed)
    assert data["ops"]["relu_backward"] == "pass"  # the run went on in a new worker


def test_unwritable_report_is_one_line_before_the_run(tmp_path, capsys):
    rc = main(["conform", "--backend", "numpy", "--report", str(tmp_path / "no" / "such" / "dir" / "r.json")])
    captured = capsys.readouterr()
    assert rc == 2 and "cannot write" in captured.err and "Traceback" not in captured.err
    assert "pass" not in captured.out  # nothing ran


def test_backend_that_cannot_load_is_one_line(tmp_path, capsys):
    (tmp_path / "raising_factory.py").write_text("def make():\n    raise RuntimeError('no licence server')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert main(["conform", "--backend", "raising_factory:make"]) == 2
    finally:
        sys.path.remove(str(tmp_path))
    assert main(["conform", "--backend", ":"]) == 2
    err = capsys.readouterr().err
    assert "no licence server" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line]) == 2


def test_thorough_prints_its_seed_and_seed_replays_it(tmp_path, capsys):
    args = ["conform", "--backend", "numpy", "--profile", "thorough", "--ops", "surrogate"]
    assert main(args + ["--report", str(tmp_path / "a.json")]) == 0
    printed = capsys.readouterr().out
    seed = int(printed.split("replay with --seed ")[1].split(")")[0])
    assert main(args + ["--seed", str(seed), "--report", str(tmp_path / "b.json")]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a["seed"] == b["seed"] == seed

    def drawn(d):
        return [(c["check"], c["shapes"], c["kwargs"], c["margin"]) for c in d["cases"]]
    assert drawn(a) == drawn(b)
