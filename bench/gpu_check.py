"""One command for a CUDA GPU: every GPU check of fdaref in at most 8 minutes, one JSON summary.

    python bench/gpu_check.py --out DIR [--data-dir /path/to/fashion-mnist]     # on one CUDA GPU
    python bench/gpu_check.py --device cpu --smoke --out DIR                     # the same steps, toy sizes

Steps, in order, each in its own process with its own time limit (the limits add up to less than the
8-minute budget; a step also never runs past what is left of it):

1. ``gpu_tests``: the tests marked ``gpu`` (pytest -m gpu).
2. ``conform_{torch,cupy}_{float32,float64}``: ``fdaref conform`` on the device, TF32 off
   (NVIDIA_TF32_OVERRIDE=0; the conformance context turns it off too).
3. ``bench_torch``: bench/bench_torch.py (training images/s against float and the naive layer, peak memory,
   the fused FDA backward); its JSON lands in DIR.
4. ``bench_cupy``: bench/bench_cupy.py (kernel figures, an epoch against torch); JSON in DIR.
5. ``train``: ``fdaref train`` of binary resnet20 (FDA + noise module, paper preset and schedules) on all
   60,000 Fashion-MNIST images, then ``fdaref plot curves``; passes at >= 90% test accuracy.

A failed step does not stop the others. DIR/gpu_check.json holds every step's status (ok, failed,
timeout, skipped), seconds, figures and the tail of its output; each step's full output is in DIR/<step>.log.
Exit status 0 when no step failed. Uses only what the GPU machine has (torch, cupy, numba, hypothesis,
pytest, matplotlib) and the package installed with ``pip install -e . --no-deps --no-build-isolation``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from fdaref.atomic import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 470          # all steps together: under 8 minutes with the start-up and the summary
TARGET_ACC = 0.90
PY = sys.executable


@dataclass
class Step:
    name: str
    argv: list[str]
    limit_s: float
    figures: Callable[[Path, str], dict[str, Any]] = lambda out, text: {}
    needs: Optional[str] = None                 # a module that must be importable (else: skipped)
    needs_device: bool = False                  # skipped where ``needs`` sees no CUDA device (cupy)
    passes: Callable[[dict[str, Any]], Optional[str]] = lambda figures: None   # a failure reason, or None
    env: dict[str, str] = field(default_factory=dict)


def _pytest_counts(_: Path, text: str) -> dict[str, Any]:
    return {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", text)}


def _json_figures(path: Path, keys: tuple[str, ...]) -> Callable[[Path, str], dict[str, Any]]:
    def read(_: Path, __: str) -> dict[str, Any]:
        if not path.is_file():
            return {}
        data = json.loads(path.read_text())
        flat: dict[str, Any] = {}
        for section in (data, *(v for v in data.values() if isinstance(v, dict))):
            flat.update({k: v for k, v in section.items() if k in keys})
        if "results" in data:  # bench/timing.py's report format
            flat.update({row["name"]: row["figure"] for row in data["results"]})
        return flat
    return read


def _conform_figures(path: Path) -> Callable[[Path, str], dict[str, Any]]:
    def read(_: Path, text: str) -> dict[str, Any]:
        figures: dict[str, Any] = {"report": str(path)} if path.is_file() else {}
        for count, word in re.findall(r"(\d+) (pass|fail|error|skip)\w*", text):
            figures[word] = int(count)
        return figures
    return read


def _missing(module: str, device: bool) -> Optional[str]:
    """Why a step that needs ``module`` (and, with ``device``, its CUDA device) cannot run here, or None."""
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed here"
    if device and module == "cupy":
        import cupy
        if not cupy.is_available():
            return "cupy sees no CUDA device here"
    return None


def _train_figures(run: Path) -> Callable[[Path, str], dict[str, Any]]:
    def read(_: Path, __: str) -> dict[str, Any]:
        summary = run / "summary.json"
        if not summary.is_file():
            return {}
        s = json.loads(summary.read_text())
        curve = [r.get("test_acc") for r in _jsonl(run / "metrics.jsonl")]
        return {"test_acc": s.get("test_acc"), "epochs": s.get("epochs"), "images_per_s": s.get("images_per_s"),
                "train_time_s": s.get("train_time_s"), "test_acc_per_epoch": curve,
                "curves": str(run / "curves.png") if (run / "curves.png").is_file() else None}
    return read


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _accuracy_target(figures: dict[str, Any]) -> Optional[str]:
    acc = figures.get("test_acc")
    if acc is None:
        return "no test accuracy in summary.json"
    return None if acc >= TARGET_ACC else f"test accuracy {acc:.4f} < {TARGET_ACC}"


def steps_for(device: str, smoke: bool, out: Path, data_dir: Path) -> list[Step]:
    """The steps, at full size on ``cuda`` or at toy sizes (``smoke``) for a check of the script itself."""
    fdaref = [PY, "-m", "fdaref.cli.main"]
    no_tf32 = {"NVIDIA_TF32_OVERRIDE": "0"}
    steps = [Step("gpu_tests", [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                                *(["tests/test_torch_gpu.py"] if smoke else ["tests"])],
                  20 if smoke else 75, _pytest_counts, needs="pytest",
                  passes=lambda f: "tests failed" if f.get("failed") or f.get("error") or f.get("errors") else None)]
    for backend in ("torch", "cupy"):
        for dtype in ("float32", "float64"):
            report = out / f"conform_{backend}_{dtype}.json"
            ops = ["--ops", "sign"] if smoke else []
            dev = "cpu" if smoke and backend == "torch" else "cuda"
            steps.append(Step(f"conform_{backend}_{dtype}",
                              [*fdaref, "conform", "--backend", backend, "--device", dev, "--dtype", dtype,
                               "--profile", "quick", "--report", str(report), *ops],
                              15 if smoke else 25, _conform_figures(report), needs=backend,
                              needs_device=backend == "cupy", env=no_tf32))
    torch_json = out / f"torch_{device}.json"
    small = ["--batch", "4", "--steps", "1", "--numel", "10000", "--repeat", "1", "--no-compile", "--threads", "1",
             "--input", "1,16,16"] if smoke else []
    steps.append(Step("bench_torch", [PY, "bench/bench_torch.py", "--device", device, "--out", str(torch_json),
                                      *small], 60 if smoke else 70,
                      _json_figures(torch_json, ("cli_vs_float", "cli_vs_naive", "cli_vs_fdaref_engine",
                                                 "cli_mem_vs_float", "speedup", "cli_images_per_s",
                                                 "float_images_per_s")), needs="torch"))
    cupy_json = out / "cupy_cuda.json"
    steps.append(Step("bench_cupy", [PY, "bench/bench_cupy.py", "--out", str(cupy_json),
                                     *(["--size", "10000", "--repeats", "1", "--skip-epoch"] if smoke else [])],
                      20 if smoke else 45, _json_figures(cupy_json, ()), needs="cupy", needs_device=True))
    run = out / "train"
    size = (["--model", "tiny", "--subset", "128", "--test-subset", "64", "--epochs", "1", "--batch-size", "32"]
            if smoke else ["--model", "resnet20", "--epochs", "12", "--batch-size", "128"])  # CPU: 12 -> 90.2%
    # eager: a compile of minutes would eat the step's budget on a GPU that has not been measured yet
    train = [*fdaref, "train", "--backend", "torch", "--engine", "torch", "--device", device,
             "--dataset", "fashion-mnist", "--data-dir", str(data_dir), "--preset", "paper",
             "--optimizer", "adam", "--lr", "2e-3",
             "--val-fraction", "0", "--quiet", "--out", str(run), "--overwrite", *size]   # DIR is this script's
    plot = [*fdaref, "plot", "curves", "--run", str(run)]
    steps.append(Step("train", ["sh", "-c", " ".join(map(_quote, train)) + " && " + " ".join(map(_quote, plot))],
                      60 if smoke else 200, _train_figures(run), needs="torch",
                      passes=None if smoke else _accuracy_target))
    if smoke:
        steps[-1].passes = lambda f: None if f.get("test_acc") is not None else "no test accuracy"
    return steps


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w./=:,-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def run_step(step: Step, out: Path, deadline: float) -> dict[str, Any]:
    """Run one step in its own process within min(its limit, what is left of the budget)."""
    record: dict[str, Any] = {"name": step.name, "command": " ".join(map(_quote, step.argv))}
    missing = _missing(step.needs, step.needs_device) if step.needs else None
    if missing:
        return {**record, "status": "skipped", "reason": missing, "seconds": 0.0}
    limit = min(step.limit_s, deadline - time.monotonic())
    if limit <= 1:
        return {**record, "status": "skipped", "reason": "no time left in the 8-minute budget", "seconds": 0.0}
    record["limit_s"] = round(limit, 1)
    env = {**os.environ, **step.env}
    t0 = time.monotonic()
    try:
        proc = subprocess.run(step.argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
        text, code = proc.stdout + proc.stderr, proc.returncode
        status = "ok" if code == 0 else "failed"
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        text += (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        code, status = None, "timeout"
    record["seconds"] = round(time.monotonic() - t0, 2)
    write_text_atomic(out / f"{step.name}.log", text)
    record["exit_code"] = code
    try:
        record["figures"] = step.figures(out, text)
    except (OSError, ValueError, KeyError) as exc:   # a half-written JSON after a timeout
        record["figures"] = {"error": f"{type(exc).__name__}: {exc}"}
    if status == "ok":
        reason = step.passes(record["figures"])
        if reason:
            status, record["reason"] = "failed", reason
    record["status"] = status
    record["output_tail"] = text[-1500:]
    return record


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="directory for gpu_check.json, logs and bench JSONs")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cuda (default), or cpu with --smoke")
    p.add_argument("--smoke", action="store_true", help="toy sizes: checks that every step runs (CPU, seconds)")
    p.add_argument("--data-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"),
                   help="Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)")
    p.add_argument("--only", default=None, help="comma-separated step names to run (default: all)")
    args = p.parse_args(argv)
    if args.device == "cpu" and not args.smoke:
        p.error("--device cpu runs the toy sizes only: add --smoke")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    steps = steps_for(args.device, args.smoke, out, args.data_dir.resolve())
    if args.only:
        wanted = set(args.only.split(","))
        steps = [s for s in steps if s.name in wanted]
    start = time.monotonic()
    deadline = start + BUDGET_S
    records = []
    for step in steps:
        record = run_step(step, out, deadline)
        records.append(record)
        print(f"{record['status']:>8}  {step.name:<22} {record['seconds']:7.1f}s  "
              f"{json.dumps(record.get('figures', record.get('reason', '')))[:160]}", flush=True)
    summary = {"device": args.device, "smoke": args.smoke, "python": platform.python_version(),
               "machine": platform.platform(), "budget_s": BUDGET_S,
               "total_s": round(time.monotonic() - start, 2),
               "ok": all(r["status"] in ("ok", "skipped") for r in records), "steps": records}
    write_json_atomic(out / "gpu_check.json", summary)
    print(f"{'all steps passed' if summary['ok'] else 'some steps FAILED'} in {summary['total_s']:.0f}s; "
          f"summary: {out / 'gpu_check.json'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
