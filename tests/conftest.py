"""Numba compiles each kernel once per machine into its on-disk cache; from a fresh clone that is minutes of
one core on a 2-core VM. A background process fills the cache when the session starts, on the other core,
while the test files before the numba ones run; those then load the kernels instead of compiling them."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

_precompile: Optional[subprocess.Popen] = None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _precompile
    if importlib.util.find_spec("numba") is None or os.environ.get("FDAREF_NUMBA_NOCACHE"):
        return
    script = Path(__file__).with_name("numba_precompile.py")
    _precompile = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))


@pytest.fixture(scope="session")
def numba_precompiled() -> None:
    """Wait for the background compile (its failures show in the tests, which make the same calls)."""
    if _precompile is not None:
        _precompile.wait()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _precompile is not None and _precompile.poll() is None:
        _precompile.kill()
        _precompile.wait()
