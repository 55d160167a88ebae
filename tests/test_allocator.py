"""fdaref.allocator.keep_freed_memory: a training-like pattern of MB-sized buffers stops faulting pages in
again every step once it is on (each run in a fresh process: the setting is process-wide)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from fdaref.allocator import keep_freed_memory
    print(keep_freed_memory() if sys.argv[1] == "1" else "default")
    def step():   # six 4 MB activations, freed together at the end of the step
        blocks = [np.ones(1_000_000, np.float32) for _ in range(6)]
        del blocks
    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(on: bool) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, "1" if on else "0"], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_stops_the_page_faults():
    _, faults_default = _faults(False)
    applied, faults_kept = _faults(True)
    assert applied == "True"
    # 20 steps x 24 MB = 120,000 pages of 4 KiB if every step faults its memory in again
    assert faults_default > 20_000, faults_default
    assert faults_kept < faults_default / 20, (faults_kept, faults_default)


def test_turned_off_by_the_environment(monkeypatch):
    from fdaref.allocator import keep_freed_memory
    monkeypatch.setenv("FDAREF_MALLOPT", "0")
    assert keep_freed_memory() is False
