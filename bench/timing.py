"""Side-by-side timing for the benchmark scripts: the machines are noisy, so candidates are timed
interleaved (A, B, A, B, ...) in one run and compared by their medians; only ratios are reported."""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable


def cpu_model() -> str:
    """The CPU's model name and its widest vector unit (/proc/cpuinfo; the figures depend on both: a ratio
    measured on an AVX-512 core can differ from one on an AVX2 core by several percent), or the platform's
    machine name where there is no /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    name = fields.get("model name\t", fields.get("model name", "")).strip() or platform.machine()
    flags = set(fields.get("flags\t\t", fields.get("flags", "")).split())
    vector = next((v for v in ("avx512f", "avx2", "avx", "sse2", "asimd") if v in flags), "")
    return f"{name}, {vector}" if vector else name


def interleaved(candidates: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 1,
                sync: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Median seconds per call of each candidate, measured alternately."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
        sync()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def report(title: str, rows: list[dict], path: str | Path | None = None, **context: object) -> None:
    """Print ``rows`` (each with name, figure, target, ok) and save them as JSON with the machine context."""
    print(f"\n{title}")
    for row in rows:
        mark = "ok  " if row.get("ok", True) else "MISS"
        print(f"  [{mark}] {row['name']}: {row['figure']:.2f}x (target {row['target']})")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        payload = {"title": title, "machine": platform.platform(), "processor": cpu_model(),
                   "python": platform.python_version(), **context, "results": rows}
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"  saved {path}")
