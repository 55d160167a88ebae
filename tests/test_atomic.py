"""The one atomic writer and the CLI's one-line errors."""
import json
import os
import subprocess
import sys

import pytest

from fdaref.atomic import remove_stale_temps, write_json_atomic
from fdaref.errors import InputError


def test_json_round_trip_with_non_finite_values(tmp_path):
    path = write_json_atomic(tmp_path / "a.json", {"nan": float("nan"), "inf": float("inf"), "x": [1, 2.5]})
    assert json.loads(path.read_text()) == {"nan": None, "inf": "inf", "x": [1, 2.5]}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]   # no temporary file left behind


def test_old_file_survives_a_failed_write(tmp_path):
    path = tmp_path / "a.json"
    write_json_atomic(path, {"v": 1})

    class Boom:
        pass
    with pytest.raises(TypeError):
        write_json_atomic(path, {"v": Boom()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("where", ["directory", "under_a_file", "missing_parent"])
def test_unwritable_paths_raise_input_error_naming_the_path(tmp_path, where):
    (tmp_path / "file").write_text("x")
    target = {"directory": tmp_path, "under_a_file": tmp_path / "file" / "a.json",
              "missing_parent": tmp_path / "nope" / "a.json"}[where]
    with pytest.raises(InputError, match=str(target)):
        write_json_atomic(target, {})


def test_remove_stale_temps_removes_only_temporaries(tmp_path):
    (tmp_path / ".checkpoint.npz.123.tmp").write_bytes(b"x" * 10)
    (tmp_path / "keep.json").write_text("{}")
    removed = remove_stale_temps(tmp_path)
    assert [p.name for p in removed] == [".checkpoint.npz.123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]


def test_cli_version():
    out = subprocess.run([sys.executable, "-m", "fdaref.cli.main", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().startswith("fdaref ")
    import fdaref
    assert out.stdout.split()[1] == fdaref.__version__
