"""The built wheel holds every module of the tree, under the installed names (backends/ -> fdaref.backends,
conformance/ -> fdaref.conformance, cli/ -> fdaref.cli), and names the `conform` extra."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALLED_AS = {"fdaref": "fdaref", "backends": "fdaref/backends", "conformance": "fdaref/conformance", "cli": "fdaref/cli"}


def tree_modules() -> set[str]:
    """Every .py file under the four roots, as its path inside the wheel."""
    out = set()
    for folder, installed in INSTALLED_AS.items():
        for path in (REPO / folder).rglob("*.py"):
            if "__pycache__" not in path.parts:
                out.add(f"{installed}/{path.relative_to(REPO / folder).as_posix()}")
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(dist), str(REPO)], check=True, capture_output=True)
    (whl,) = dist.glob("fdaref-*.whl")
    return zipfile.ZipFile(whl)


def test_wheel_holds_exactly_the_tree(wheel):
    in_wheel = {n for n in wheel.namelist() if n.endswith(".py")}
    assert tree_modules() - in_wheel == set(), "modules of the tree missing from the wheel"
    assert in_wheel - tree_modules() == set(), "modules in the wheel that the tree does not have"
    for must in ("fdaref/functional/conv.py", "fdaref/train/loop.py", "fdaref/backends/numpy/__init__.py"):
        assert must in in_wheel


def test_wheel_metadata_names_the_conform_extra_and_the_backends(wheel):
    meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    text = wheel.read(meta).decode()
    assert "Provides-Extra: conform" in text
    assert "Requires-Dist: hypothesis; extra == \"conform\"" in text
    eps = wheel.read(next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))).decode()
    assert "numpy = fdaref.backends.numpy:backend" in eps
