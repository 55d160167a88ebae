"""``fdaref conform``, ``run_matrix``, the third-party example and the pytest helpers."""
from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("hypothesis")

from fdaref.cli.main import main  # noqa: E402
from fdaref.conformance.pytest_plugin import check_op, conformance_params  # noqa: E402

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "third_party_backend")


def test_conform_cli_exit_codes(tmp_path, capsys):
    assert main(["conform", "--backend", "numpy", "--profile", "quick", "--ops", "relu_forward,pack_signs",
                 "--report", str(tmp_path / "r.json")]) == 0
    assert (tmp_path / "r.json").exists()
    assert main(["conform", "--backend", "fdaref.conformance.broken:PackBitsReversed", "--profile", "quick",
                 "--ops", "pack_signs"]) == 1
    assert "pack_signs" in capsys.readouterr().out


def test_conform_cli_unknown_and_unavailable_backend(capsys):
    assert main(["conform", "--backend", "no_such_backend_xyz"]) == 2
    assert main(["conform", "--backend", "no_such_module_xyz:thing"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot run here" in err


def test_third_party_backend_passes(monkeypatch):
    monkeypatch.syspath_prepend(os.path.abspath(EXAMPLE))
    from fdaref.conformance.runner import run_suite
    report = run_suite("tiny_backend:backend", dtype="float32", profile="quick")
    assert report.ok(), report.render()


@pytest.mark.parametrize("op", conformance_params()[:3])
def test_check_op_helper(op):
    check_op("numpy", op, profile="quick")


def test_run_matrix_prints_table(capsys):
    from fdaref.conformance import run_matrix
    table = run_matrix(["numpy"], profile="quick", print_table=True)
    assert table["rows"]["sign"]["numpy/cpu"] == "pass"
    assert "numpy/cpu" in capsys.readouterr().out
