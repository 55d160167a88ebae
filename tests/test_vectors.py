"""Golden vectors: export, check a correct and a broken implementation's RESULTS."""
from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")

from fdaref.cli.main import main  # noqa: E402


def test_export_check_roundtrip(tmp_path, capsys):
    d, good, bad = tmp_path / "vec", tmp_path / "good.npz", tmp_path / "bad.npz"
    assert main(["vectors", "export", str(d), "--random", "2"]) == 0
    assert (d / "vectors.npz").exists() and (d / "manifest.json").exists()
    assert main(["vectors", "compute", str(d), str(good), "--backend", "numpy"]) == 0
    assert main(["vectors", "check", str(d), str(good)]) == 0
    assert main(["vectors", "compute", str(d), str(bad), "--backend", "fdaref.conformance.broken:FdaNTerms"]) == 0
    assert main(["vectors", "check", str(d), str(bad)]) == 1
    assert "FAIL surrogate-" in capsys.readouterr().out
