"""The numba kernels are cached on disk (cache=True, NUMBA_CACHE_DIR): a second process loads them instead of
compiling, so it starts fast; warmup() compiles or loads everything up front."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")
pytestmark = pytest.mark.usefixtures("numba_precompiled")   # conftest.py: the kernels compile in the background

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, time
t0 = time.perf_counter()
from fdaref.backends.numba import warmup
from fdaref.backends.numba import _bitpack, _elementwise, _layers, _noise_act
seconds = warmup()
hits = misses = 0
for mod in (_bitpack, _elementwise, _layers, _noise_act):
    for name in dir(mod):
        disp = getattr(mod, name)
        stats = getattr(disp, "stats", None)
        if stats is not None and hasattr(stats, "cache_hits"):
            hits += sum(stats.cache_hits.values())
            misses += sum(stats.cache_misses.values())
print(json.dumps({"warmup_s": seconds, "total_s": time.perf_counter() - t0, "hits": hits, "misses": misses}))
"""


def _probe(cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("FDAREF_NUMBA_NOCACHE", None)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_every_kernel_from_the_cache():
    cache_dir = os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    _probe(cache_dir)                       # fills the cache if this is the first run
    second = _probe(cache_dir)
    assert second["misses"] == 0, f"kernels compiled again in a second process: {second}"
    assert second["hits"] > 20, second
    assert any(Path(cache_dir).rglob("*.nbi")), f"no numba index files under {cache_dir}"


def test_warmup_returns_seconds():
    from fdaref.backends.numba import warmup
    assert warmup(("float64",)) >= 0.0
