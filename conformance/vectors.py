"""Golden vectors: the suite's cases as plain files, for implementations in any language (see VECTORS.md).

Default format (``fmt="bin"``): ``DIR/manifest.json`` describes every case (op, parameters, each op's
contract in words, tolerances) and locates each array in ``DIR/vectors.bin`` by byte offset and length;
arrays are raw little-endian C-order values, nothing compressed. ``fmt="npz"`` stores the same arrays in
``DIR/vectors.npz`` under the same keys instead.

RESULTS use the vectors' own key of each output, ``<case id>/out/<name>``: either a directory holding one raw
file per output, ``RESULTS/<case id>/out/<name>.bin`` (little-endian, C-order, the output's ``result_dtype``
and ``shape``), or an NPZ file with those keys. :func:`check_results` compares them; :func:`compute_results`
is a worked producer that runs any op table.
"""
from __future__ import annotations

import difflib
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings

from fdaref.atomic import write_bytes_atomic, write_json_atomic
from fdaref.errors import InputError
from fdaref.optable import CHECKED_OPS

from .case import Case, as_outputs, plain
from .compare import compare_output, tolerance_floor
from .records import RECORDS
from .report import SUITE_VERSION
from .strategies import ALL_OPTIONS
from .tolerances import Tol, magnitudes
from .vector_contracts import CONTRACTS, CONVENTIONS

FORMAT = "fdaref-golden-vectors/4"
FORMATS = ("bin", "npz")
BLOB, NPZ, MANIFEST = "vectors.bin", "vectors.npz", "manifest.json"
ALIGN = 8  # every array starts at a multiple of 8 bytes in vectors.bin
COMPARISON = ("elementwise |result - expected| <= allowed + rtol * |expected| (allowed: the per-element array "
              "of the output); exact outputs must be equal (packed words bit for bit); NaN matches NaN only; "
              "a result must have its output's result_dtype and shape")
RESULTS_LAYOUT = ("RESULTS is a directory with one file per output, RESULTS/<key>.bin, <key> = the output's key "
                  "'<case id>/out/<name>': raw little-endian C-order values of result_dtype and shape (nothing "
                  "else in the file); or an NPZ file with those keys. A training loop's schedules go under "
                  "'schedules/<preset>/<E>/n' (int64) and 'schedules/<preset>/<E>/alpha' (float64), E values each")
SCHEDULES = "schedules"   # the schedule tables' entry in check_results' tally, beside the ops


# The vectors cover SEMANTICS 2's six estimators only: an estimator someone registered in this process (or
# fda_series, the same gradient as fda by its literal series) is not part of the contract other languages implement.
SPEC_ESTIMATORS = ("ste", "clipped_ste", "approx_sign", "sign_swish", "tanh", "fda")
VECTOR_OPTIONS = replace(ALL_OPTIONS, estimators=SPEC_ESTIMATORS)


def collect_cases(op: str, dtype: str, random_cases: int) -> list[Case]:
    """The edge cases of ``op`` plus ``random_cases`` derandomized Hypothesis examples."""
    record = RECORDS[op]
    cases = list(record.edges(dtype, VECTOR_OPTIONS))
    drawn: list[Case] = []
    if random_cases:
        @settings(max_examples=random_cases, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), phases=(Phase.generate,))
        @given(record.strategy(dtype, VECTOR_OPTIONS))
        def collect(case: Case) -> None:
            if len(drawn) < random_cases:
                drawn.append(case)
        collect()
    for c in drawn:
        c.label = "random"
    return cases + drawn


def check_ops(ops: Optional[Iterable[str]], available: Iterable[str] = CHECKED_OPS) -> list[str]:
    """``ops`` validated against ``available`` (all of them when None); InputError names an unknown one."""
    available = list(available)
    if ops is None:
        return available
    chosen = [o.strip() for o in ops if o.strip()]
    for op in chosen:
        if op not in available:
            near = difflib.get_close_matches(op, available, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise InputError(f"unknown op {op!r}{hint}; expected some of: {', '.join(available)}")
    if not chosen:
        raise InputError("--ops is empty; expected a comma-separated list of op names")
    return chosen


def c_order_le(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-order little-endian array (0-d stays 0-d, unlike np.ascontiguousarray)."""
    a = np.asarray(a)
    return np.array(a, dtype=a.dtype.newbyteorder("<"), order="C", copy=None)


class _ArrayStore:
    """Collects the arrays of an export: C-order little-endian bytes at aligned offsets (or NPZ members)."""

    def __init__(self, fmt: str):
        self.fmt, self.chunks, self.size, self.members = fmt, [], 0, {}

    def add(self, key: str, a: np.ndarray) -> dict[str, Any]:
        a = c_order_le(a)
        desc: dict[str, Any] = {"key": key, "dtype": a.dtype.name, "shape": list(a.shape)}
        if self.fmt == "npz":
            self.members[key] = a
            return desc
        data = a.tobytes(order="C")
        desc.update(offset=self.size, nbytes=len(data))
        pad = (-len(data)) % ALIGN
        self.chunks.append(data + b"\0" * pad)
        self.size += len(data) + pad
        return desc

    def write(self, directory: Path) -> str:
        if self.fmt == "npz":
            buf = io.BytesIO()
            np.savez(buf, **self.members)
            write_bytes_atomic(directory / NPZ, buf.getvalue())
            return NPZ
        write_bytes_atomic(directory / BLOB, b"".join(self.chunks))
        return BLOB


def make_dir(path: Path) -> None:
    """``os.makedirs`` whose failure is one InputError naming the directory."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create the directory ({exc.strerror or type(exc).__name__})") from None


@np.errstate(all="ignore")   # the cases' NaN, inf and subnormals are deliberate (as in the runner)
def export_vectors(directory: str, dtype: str = "float32", random_cases: int = 5,
                   ops: Optional[Iterable[str]] = None, fmt: str = "bin") -> dict[str, Any]:
    """Write ``directory/manifest.json`` and ``vectors.bin`` (or ``vectors.npz``); returns the manifest."""
    if fmt not in FORMATS:
        raise InputError(f"unknown vectors format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype {dtype!r}: expected float32 or float64")
    chosen = check_ops(ops)
    out_dir = Path(directory)
    make_dir(out_dir)
    store = _ArrayStore(fmt)
    entries, contracts = [], {}
    for op in chosen:
        record = RECORDS[op]
        tol = record.tolerance(dtype)
        contracts[op] = dict(CONTRACTS[op], input_order=[], output_order=list(record.outputs),
                             tolerance=tol.to_dict())
        for i, case in enumerate(collect_cases(op, dtype, random_cases)):
            cid = f"{op}-{i:03d}"
            contracts[op]["input_order"] = list(case.names)
            ref_args = case.reference_args()
            outs = as_outputs(record.reference()(*ref_args, **case.reference_kwargs()))
            mags = magnitudes(tol, case, ref_args, outs)
            inputs = [{"name": name, "key": None} if a is None else
                      dict(name=name, **store.add(f"{cid}/in/{name}", np.asarray(a))) for name, a in case.arrays]
            outputs = []
            for j, (name, out, mag) in enumerate(zip(record.outputs, outs, mags)):
                if out is None:
                    outputs.append({"name": name, "key": None})
                    continue
                out = np.asarray(out)
                entry = dict(name=name, **store.add(f"{cid}/out/{name}", out),
                             result_dtype=record.expected_dtype(j, dtype), exact=tol.exact, rtol=tol.rtol,
                             rule=tol.rule, allowed=None)
                if not tol.exact:
                    mag = np.asarray(mag, np.float64)
                    allowed = tol.atol * mag
                    if tol.floor:   # SEMANTICS 9's underflow floor lives in the array: the check adds none
                        allowed = np.maximum(allowed, tolerance_floor(entry["result_dtype"], mag))
                    allowed = np.broadcast_to(allowed, out.shape).astype(np.float64)
                    entry["allowed"] = store.add(f"{cid}/allowed/{name}", allowed)
                outputs.append(entry)
            entries.append({"id": cid, "op": op, "label": case.label, "inputs": inputs,
                            "kwargs": plain(case.kwargs), "outputs": outputs})
    data_file = store.write(out_dir)
    manifest = {"format": FORMAT, "suite_version": SUITE_VERSION, "dtype": dtype,
                "schedules": schedule_tables(), "schedule_tolerance": schedule_tolerance(),
                "storage": {"kind": fmt, "file": data_file, "byte_order": "little", "array_order": "C",
                            "alignment": ALIGN if fmt == "bin" else None},
                "comparison": COMPARISON, "results": RESULTS_LAYOUT, "conventions": CONVENTIONS,
                "ops": contracts, "cases": entries}
    write_json_atomic(out_dir / MANIFEST, manifest)
    return manifest


def schedule_tables() -> dict[str, dict[str, dict[str, list]]]:
    """SEMANTICS 6 for a port's training loop (no op computes it): per preset and run length E of
    :data:`.adapters.schedules.SCHEDULE_EPOCHS`, n_e (presets whose estimator has an n) and alpha_e for
    e = 0 .. E - 1."""
    from fdaref.presets import PRESETS, get_preset

    from .adapters.schedules import SCHEDULE_EPOCHS
    tables: dict[str, dict[str, dict[str, list]]] = {}
    for name in PRESETS:
        p = get_preset(name)
        tables[name] = {str(e): {**({"n": [p.n_at(i, e) for i in range(e)]} if p.uses_n else {}),
                                 "alpha": [p.alpha_at(i, e) for i in range(e)]} for e in SCHEDULE_EPOCHS}
    return tables


def schedule_tolerance() -> dict[str, Any]:
    """How a port's schedules are compared: n exactly, alpha to ALPHA_RTOL of the preset's alpha_0 (absolute,
    per preset) and exactly 0 where the table's is 0 (alpha == 0 turns the module off), as
    :func:`.adapters.check_schedule` compares them."""
    from fdaref.presets import PRESETS

    from .adapters.schedules import alpha_atol
    return {"n": 0.0, "alpha": {name: alpha_atol(name) for name in PRESETS}}


def schedule_outputs(manifest: dict[str, Any]) -> list[tuple[dict[str, Any], np.ndarray, Optional[np.ndarray]]]:
    """The manifest's schedule tables as outputs to check: (spec like a case output's, expected values,
    allowed absolute error per element or None for the exact n)."""
    out = []
    atol = manifest.get("schedule_tolerance", {}).get("alpha", {})
    for preset, runs in manifest.get("schedules", {}).items():
        for epochs, table in runs.items():
            for name, values in table.items():
                exact = name == "n"
                spec = {"key": f"{SCHEDULES}/{preset}/{epochs}/{name}", "name": f"{name}_e", "shape": [len(values)],
                        "result_dtype": "int64" if exact else "float64", "exact": exact, "rtol": 0.0}
                expected = np.asarray(values, np.int64 if exact else np.float64)
                allowed = None if exact else np.where(expected == 0, 0.0, float(atol[preset]))
                out.append((spec, expected, allowed))
    return out


# ---------------------------------------------------------------------------------------------------
# Reading

class Vectors:
    """An exported vector set: ``manifest`` and ``array(desc)`` for any array descriptor of it."""

    def __init__(self, directory: str):
        d = Path(directory)
        if not d.is_dir():
            raise InputError(f"{d}: no such directory (expected the output of `fdaref vectors export`)")
        mpath = d / MANIFEST
        try:
            self.manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{mpath}: missing (expected the manifest written by `fdaref vectors export`)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{mpath}: not a readable JSON manifest ({exc})") from None
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
            found = self.manifest.get("format") if isinstance(self.manifest, dict) else type(self.manifest).__name__
            raise InputError(f"{mpath}: format {found!r}, expected {FORMAT!r} (re-export with this fdaref)")
        _check_manifest(self.manifest, mpath)
        storage = self.manifest["storage"]
        self.kind = storage.get("kind")
        dpath = d / str(storage.get("file"))
        try:
            if self.kind == "npz":
                self._npz = np.load(dpath, allow_pickle=False)
            else:
                self._blob = dpath.read_bytes()
        except Exception as exc:  # noqa: BLE001 - any unreadable data file is one line
            raise InputError(f"{dpath}: cannot read the vectors' data ({exc})") from None
        self.path = dpath

    @property
    def cases(self) -> list[dict[str, Any]]:
        return self.manifest["cases"]

    def array(self, desc: dict[str, Any]) -> np.ndarray:
        try:
            dt, shape = np.dtype(desc["dtype"]).newbyteorder("<"), tuple(int(n) for n in desc["shape"])
        except (TypeError, ValueError) as exc:
            raise InputError(f"{self.path}: array {desc['key']!r} has no valid dtype and shape ({exc}); the "
                             "vectors are corrupt") from None
        if self.kind == "npz":
            try:
                return np.asarray(self._npz[desc["key"]])
            except KeyError:
                raise InputError(f"{self.path}: has no array {desc['key']!r}; the vectors are corrupt") from None
        start, n = int(desc["offset"]), int(desc["nbytes"])
        if start + n > len(self._blob) or n != dt.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise InputError(f"{self.path}: array {desc['key']!r} (offset {start}, {n} bytes) does not fit; "
                             "the vectors are corrupt or truncated")
        return np.frombuffer(self._blob, dtype=dt, count=n // dt.itemsize, offset=start).reshape(shape)


def _check_manifest(manifest: dict[str, Any], mpath: Path) -> None:
    """InputError naming the first place where ``manifest`` lacks what the readers use (every case's op,
    inputs, kwargs and outputs; every array's descriptor), so a corrupt manifest is one line, not a KeyError."""
    def bad(where: str, expected: str) -> InputError:
        return InputError(f"{mpath}: corrupt manifest: {where} should be {expected} "
                          "(re-export with `fdaref vectors export`)")

    def check_array(desc: Any, where: str) -> None:
        if not isinstance(desc, dict) or not isinstance(desc.get("dtype"), str) \
                or not isinstance(desc.get("shape"), list) or not isinstance(desc.get("key"), str):
            raise bad(where, "an array descriptor with key, dtype and shape")
        if manifest["storage"].get("kind") != "npz" and not all(isinstance(desc.get(k), int)
                                                               for k in ("offset", "nbytes")):
            raise bad(where, "an array descriptor with an integer offset and nbytes")

    if not isinstance(manifest.get("storage"), dict):
        raise bad('"storage"', "an object with kind and file")
    schedules, atol = manifest.get("schedules", {}), manifest.get("schedule_tolerance", {}).get("alpha")
    if not isinstance(schedules, dict) or not all(
            isinstance(runs, dict) and all(isinstance(t, dict) and all(
                isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in t.values())
                for t in runs.values()) for runs in schedules.values()):
        raise bad('"schedules"', "an object of presets, of run lengths, of lists of numbers")
    if schedules and not (isinstance(atol, dict) and all(isinstance(atol.get(p), (int, float)) for p in schedules)):
        raise bad('"schedule_tolerance"', "an object with alpha: a number per preset of the schedules")
    cases = manifest.get("cases")
    if not isinstance(cases, list):
        raise bad('"cases"', "a list of cases")
    for i, case in enumerate(cases):
        where = f"case {i}"
        if not isinstance(case, dict) or not isinstance(case.get("op"), str) or not isinstance(case.get("id"), str):
            raise bad(where, "an object with an id and an op")
        if not isinstance(case.get("kwargs"), dict):
            raise bad(f"{where} ({case['id']}) kwargs", "an object")
        for part in ("inputs", "outputs"):
            if not isinstance(case.get(part), list) or not all(isinstance(a, dict) and "key" in a for a in case[part]):
                raise bad(f"{where} ({case['id']}) {part}", "a list of array entries")
        for a in case["inputs"]:
            if a["key"] is not None:
                check_array(a, f"{where} ({case['id']}) input {a.get('name')!r}")
        for o in case["outputs"]:
            if o["key"] is None:
                continue
            w = f"{where} ({case['id']}) output {o.get('name')!r}"
            check_array(o, w)
            if not isinstance(o.get("result_dtype"), str) or not isinstance(o.get("exact"), bool) \
                    or not isinstance(o.get("rtol"), (int, float)):
                raise bad(w, "an output with result_dtype, exact and rtol")
            if not o["exact"]:
                check_array(o.get("allowed"), f"{w} allowed")


def _load_results(path: str) -> dict[str, Any]:
    """key -> ndarray (NPZ) or raw bytes (directory of .bin files)."""
    p = Path(path)
    if p.is_dir():
        out: dict[str, Any] = {}
        for f in sorted(p.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                key = f.relative_to(p).as_posix()
                out[key[:-4] if key.endswith(".bin") else key] = f
        return out
    if not p.exists():
        raise InputError(f"{p}: no such file or directory (expected a results directory or an NPZ file)")
    try:
        npz = np.load(p, allow_pickle=False)
        return {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - garbage of any kind is one line
        raise InputError(f"{p}: not an NPZ file or a results directory (NumPy cannot read it as NPZ: "
                         f"{type(exc).__name__})") from None


def _raw_result(value: Any, spec: dict[str, Any]) -> tuple[Optional[np.ndarray], str]:
    """A result from a .bin file as an array of the output's result_dtype and shape, or the problem."""
    if not isinstance(value, Path):   # an NPZ member: its own dtype, in either byte order
        a = np.asarray(value)
        return (a.astype(a.dtype.newbyteorder("=")) if a.dtype.byteorder not in "=|" else a), ""
    dt, shape = np.dtype(spec["result_dtype"]).newbyteorder("<"), tuple(spec["shape"])
    try:
        data = value.read_bytes()
    except OSError as exc:
        return None, f"cannot read {value} ({exc.strerror})"
    want = dt.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(data) != want:
        return None, (f"{value} has {len(data)} bytes; expected shape {list(shape)} of {spec['result_dtype']} "
                      f"= {want} bytes")
    return np.frombuffer(data, dtype=dt).reshape(shape), ""


# ---------------------------------------------------------------------------------------------------
# Checking

def bit_differences(got: np.ndarray, expected: np.ndarray, limit: int = 5) -> list[str]:
    """For packed uint64 words: the differing words and, in each, the differing bit positions."""
    got, expected = got.astype(np.uint64), expected.astype(np.uint64)
    bad = np.argwhere(got != expected)
    lines = [f"{len(bad)} of {got.size} words differ (bit j of word w on the last axis is element 64*w + j of "
             "the packed axis; a set bit means -1)"]
    for idx in bad[:limit]:
        i = tuple(int(v) for v in idx)
        g, e = int(got[i]), int(expected[i])
        bits = [b for b in range(64) if (g ^ e) >> b & 1]
        shown = ", ".join(map(str, bits[:12])) + (", ..." if len(bits) > 12 else "")
        lines.append(f"word {i}: bits {shown} differ (got {g:#018x}, expected {e:#018x})")
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more words")
    return lines


@dataclass
class OpTally:
    ok: int = 0
    failed: int = 0
    missing: int = 0

    def status(self) -> str:
        return "failed" if self.failed else ("missing" if not self.ok else ("partial" if self.missing else "ok"))


@dataclass
class CheckReport:
    """The outcome of :func:`check_results`: failures, warnings and one tally per op."""

    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    per_op: dict[str, OpTally] = field(default_factory=dict)
    require_all: bool = False

    @property
    def checked(self) -> int:
        return sum(t.ok + t.failed for t in self.per_op.values())

    @property
    def missing(self) -> int:
        return sum(t.missing for t in self.per_op.values())

    @property
    def ok(self) -> bool:
        """Nothing checked failed, something was checked, and (with require_all) nothing is missing."""
        return (not any(t.failed for t in self.per_op.values()) and self.checked > 0
                and not (self.require_all and self.missing))

    def lines(self) -> list[str]:
        out = list(self.failures) + [f"warning: {w}" for w in self.warnings]
        width = max((len(op) for op in self.per_op), default=0)
        for op, t in self.per_op.items():
            out.append(f"  {op:<{width}}  {t.status():<7}  {t.ok} ok, {t.failed} failed, {t.missing} missing")
        failed = sum(t.failed for t in self.per_op.values())
        tail = f"{self.checked} outputs checked: {self.checked - failed} ok, {failed} failed"
        if self.missing:
            absent = [op for op, t in self.per_op.items() if t.missing]
            tail += (f"; {self.missing} outputs of {len(absent)} ops missing "
                     + ("(--require-all: that fails)" if self.require_all else "(not checked; --require-all fails on them)"))
        if self.checked == 0:
            tail += "; nothing was checked (no result has a vector output's key)"
        out.append(tail)
        return out


def check_results(directory: str, results_path: str, ops: Optional[Iterable[str]] = None,
                  require_all: bool = False) -> CheckReport:
    """Compare the RESULTS at ``results_path`` with the vectors in ``directory`` (only ``ops`` if given;
    ``schedules`` names the schedule tables)."""
    vec = Vectors(directory)
    wanted = [(case["op"], case["label"] or "random", spec, None) for case in vec.cases
              for spec in case["outputs"] if spec["key"] is not None]
    wanted += [(SCHEDULES, "SEMANTICS 6", spec, (expected, allowed))
               for spec, expected, allowed in schedule_outputs(vec.manifest)]
    chosen = check_ops(ops, list(dict.fromkeys(op for op, *_ in wanted)))
    results = _load_results(results_path)
    report = CheckReport(per_op={op: OpTally() for op in chosen}, require_all=require_all)
    for op, label, spec, values in wanted:
        if op not in report.per_op:
            continue
        tally = report.per_op[op]
        if spec["key"] not in results:
            tally.missing += 1
            continue
        if values is None:   # a case output: expected values and allowed errors are arrays of the vectors
            values = vec.array(spec), None if spec["exact"] else vec.array(spec["allowed"])
        problem = _check_one(spec, results[spec["key"]], *values)
        if problem:
            tally.failed += 1
            report.failures.append(f"FAIL {spec['key']} ({op}: {label})\n  " + problem.replace("\n", "\n  "))
        else:
            tally.ok += 1
    valid = {spec["key"] for _, _, spec, _ in wanted}
    _unknown_keys(report, [k for k in results if k not in valid], sorted(valid))
    return report


def _check_one(spec: dict[str, Any], value: Any, expected: np.ndarray, allowed: Optional[np.ndarray]) -> str:
    """"" if the result is within ``allowed`` (absolute, per element; None: exact) of ``expected``, else what
    is wrong."""
    got, problem = _raw_result(value, spec)
    if problem:
        return problem
    if spec["exact"] and expected.dtype.kind == "u" and got.shape == expected.shape and got.dtype == expected.dtype:
        return "" if np.array_equal(got, expected) else "\n".join(bit_differences(got, expected))
    if spec["exact"]:
        tol, mag = Tol(0.0, 0.0, "exact"), None
    else:
        tol, mag = Tol(1.0, float(spec["rtol"]), "allowed", floor=False), allowed   # the floor is in allowed
    d = compare_output(spec["name"], got, expected, tol, mag, spec["result_dtype"])
    return "" if d.ok else d.summary()


def _unknown_keys(report: CheckReport, unknown: list[str], valid: list[str], limit: int = 10) -> None:
    for key in unknown[:limit]:
        near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
        report.warnings.append(f"unknown result key {key!r} ignored" +
                               (f" (nearest valid key: {near[0]!r})" if near else ""))
    if len(unknown) > limit:
        report.warnings.append(f"... and {len(unknown) - limit} more unknown result keys")
    if any(k.count("/") == 1 for k in unknown):
        report.warnings.append("results are keyed like the vectors' outputs, '<case id>/out/<name>' "
                               "(e.g. 'sign-000/out/y'), not '<case id>/<name>'")


# ---------------------------------------------------------------------------------------------------
# A worked producer

@np.errstate(all="ignore")   # as export_vectors
def compute_results(directory: str, backend: Any, out_path: str, device: str = "cpu",
                    ops: Optional[Iterable[str]] = None) -> int:
    """Run ``backend`` on the vectors (only ``ops`` if given) and write RESULTS to ``out_path``: an NPZ file
    when it ends in ``.npz``, else a directory of raw ``.bin`` files. Returns the number of outputs written."""
    devices = tuple(getattr(backend, "devices", ("cpu",)))
    if device not in devices:
        raise InputError(f"device {device!r}: backend {getattr(backend, 'name', backend)!r} runs on "
                         f"{', '.join(devices)}")
    vec = Vectors(directory)
    chosen = set(check_ops(ops, list(dict.fromkeys(c["op"] for c in vec.cases))))
    out: dict[str, np.ndarray] = {}
    for case in vec.cases:
        if case["op"] not in chosen:
            continue
        args = [None if i["key"] is None else backend.from_numpy(vec.array(i).copy(), device) for i in case["inputs"]]
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in case["kwargs"].items()}
        for spec, val in zip(case["outputs"], as_outputs(getattr(backend, case["op"])(*args, **kwargs))):
            if val is not None and spec["key"] is not None:
                out[spec["key"]] = np.asarray(backend.to_numpy(val))
    target = Path(out_path)
    if target.suffix == ".npz":
        make_dir(target.parent)
        buf = io.BytesIO()
        np.savez(buf, **out)
        write_bytes_atomic(target, buf.getvalue())
        return len(out)
    for key, a in out.items():
        f = target / (key + ".bin")
        make_dir(f.parent)
        write_bytes_atomic(f, c_order_le(a).tobytes())
    return len(out)

