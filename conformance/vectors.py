"""Golden vectors: the suite's cases as files, for implementations in any language (see VECTORS.md).

``export_vectors(dir, dtype)`` writes ``vectors.npz`` (inputs, expected outputs, allowed absolute errors)
and ``manifest.json`` (ops, parameters, keys, tolerances); ``check_results(dir, results.npz)`` compares an
implementation's outputs, stored under ``<case id>/<output name>``, with them.
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings

from fdaref.optable import OP_NAMES

from .case import Case, as_outputs, plain
from .compare import compare_output
from .records import RECORDS
from .report import SUITE_VERSION
from .strategies import ALL_OPTIONS
from .tolerances import Tol, magnitudes

FORMAT = "fdaref-golden-vectors/1"


def collect_cases(op: str, dtype: str, random_cases: int) -> list[Case]:
    """The edge cases of ``op`` plus ``random_cases`` derandomized Hypothesis examples."""
    record = RECORDS[op]
    cases = list(record.edges(dtype, ALL_OPTIONS))
    drawn: list[Case] = []
    if random_cases:
        @settings(max_examples=random_cases, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), phases=(Phase.generate,))
        @given(record.strategy(dtype, ALL_OPTIONS))
        def collect(case: Case) -> None:
            if len(drawn) < random_cases:
                drawn.append(case)
        collect()
    for c in drawn:
        c.label = "random"
    return cases + drawn


def export_vectors(directory: str, dtype: str = "float32", random_cases: int = 5,
                   ops: Optional[list[str]] = None) -> dict[str, Any]:
    """Write ``directory/vectors.npz`` and ``directory/manifest.json``; returns the manifest."""
    os.makedirs(directory, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    entries = []
    for op in ops or OP_NAMES:
        record = RECORDS[op]
        tol = record.tolerance(dtype)
        for i, case in enumerate(collect_cases(op, dtype, random_cases)):
            cid = f"{op}-{i:03d}"
            ref_args = case.reference_args()
            outs = as_outputs(record.reference()(*ref_args, **case.kwargs))
            mags = magnitudes(tol, case, ref_args, outs)
            inputs = []
            for name, a in case.arrays:
                if a is None:
                    inputs.append({"name": name, "key": None})
                    continue
                key = f"{cid}/in/{name}"
                arrays[key] = np.asarray(a)
                inputs.append({"name": name, "key": key, "dtype": a.dtype.name, "shape": list(a.shape)})
            outputs = []
            for j, (name, out, mag) in enumerate(zip(record.outputs, outs, mags)):
                if out is None:
                    outputs.append({"name": name, "key": None})
                    continue
                key = f"{cid}/out/{name}"
                out = np.asarray(out)
                arrays[key] = out
                entry = {"name": name, "key": key, "dtype": record.expected_dtype(j, dtype), "shape": list(out.shape),
                         "exact": tol.exact, "rtol": tol.rtol, "rule": tol.rule}
                if not tol.exact:
                    allowed = np.broadcast_to(tol.atol * np.asarray(mag, np.float64), out.shape).astype(np.float64)
                    arrays[f"{cid}/allowed/{name}"] = allowed
                    entry["allowed_key"] = f"{cid}/allowed/{name}"
                outputs.append(entry)
            entries.append({"id": cid, "op": op, "label": case.label, "inputs": inputs, "kwargs": plain(case.kwargs),
                            "outputs": outputs})
    manifest = {"format": FORMAT, "suite_version": SUITE_VERSION, "dtype": dtype,
                "comparison": "|result - expected| <= allowed + rtol * |expected| elementwise; exact outputs bit-equal; "
                              "NaN matches NaN",
                "bit_packing": "bit j of word w holds element 64*w + j of the packed axis; a set bit means -1",
                "cases": entries}
    np.savez_compressed(os.path.join(directory, "vectors.npz"), **arrays)
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1)
    return manifest


def check_results(directory: str, results_path: str) -> tuple[bool, list[str]]:
    """Compare ``results_path`` (NPZ, one array per case output named ``<case id>/<output name>``) with the
    vectors in ``directory``. Returns (all ok, one line per problem or per checked output)."""
    with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    vec = np.load(os.path.join(directory, "vectors.npz"))
    res = np.load(results_path)
    lines, ok, checked = [], True, 0
    for case in manifest["cases"]:
        for out in case["outputs"]:
            if out["key"] is None:
                continue
            key = f"{case['id']}/{out['name']}"
            if key not in res.files:
                ok = False
                lines.append(f"MISSING {key} ({case['op']}: {case['label']})")
                continue
            expected = vec[out["key"]]
            if out["exact"]:
                tol, mag = Tol(0.0, 0.0, "exact"), None
            else:
                tol, mag = Tol(1.0, float(out["rtol"]), "allowed"), vec[out["allowed_key"]]
            d = compare_output(out["name"], res[key], expected, tol, mag, out["dtype"])
            checked += 1
            if not d.ok:
                ok = False
                lines.append(f"FAIL {key} ({case['op']}: {case['label']})\n  " + d.summary().replace("\n", "\n  "))
    lines.append(f"{checked} outputs checked, {'all ok' if ok else 'FAILURES above'}")
    return ok, lines


def compute_results(directory: str, backend: Any, out_path: str, device: str = "cpu") -> None:
    """Run ``backend`` on every vector and save its outputs in the RESULTS format (an example producer)."""
    with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    vec = np.load(os.path.join(directory, "vectors.npz"))
    out: dict[str, np.ndarray] = {}
    for case in manifest["cases"]:
        args = [None if i["key"] is None else backend.from_numpy(vec[i["key"]], device) for i in case["inputs"]]
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in case["kwargs"].items()}
        for spec, val in zip(case["outputs"], as_outputs(getattr(backend, case["op"])(*args, **kwargs))):
            if val is not None:
                out[f"{case['id']}/{spec['name']}"] = np.asarray(backend.to_numpy(val))
    np.savez_compressed(out_path, **out)
