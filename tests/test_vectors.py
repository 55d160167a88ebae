"""Golden vectors: the raw format, the op contracts, and `vectors check` on partial, wrong and garbage results."""
from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from fdaref.cli.main import main  # noqa: E402
from fdaref.conformance.records import RECORDS  # noqa: E402
from fdaref.conformance.vector_contracts import CONTRACTS  # noqa: E402

OPS = "sign,surrogate,pack_signs,quantize_forward"


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    d = tmp_path_factory.mktemp("vec") / "golden"
    assert main(["vectors", "export", str(d), "--random", "1"]) == 0
    return d


def _manifest(d):
    return json.loads((d / "manifest.json").read_text())


# A port's training-loop schedules, written here from SEMANTICS 6 literally (not from fdaref.presets).
def paper_n(e, E):
    return 18 if E == 1 else 9 + (9 * e) // (E - 1)


def bibench_n(e, E):
    return 9 + (9 * e) // E


def cosine_alpha(e, E):
    return 0.05 * (1 + math.cos(math.pi * (e + 1) / E))


PORT = {"paper": (paper_n, cosine_alpha), "bibench": (bibench_n, cosine_alpha), "release": (None, lambda e, E: 0.0)}


def write_schedules(res, manifest, port=PORT, n_dtype="<i8", alpha_precision=np.float64):
    """RESULTS/schedules/<preset>/<E>/{n,alpha}.bin as a port writes them: raw little-endian n as ``n_dtype``,
    alpha as float64 after rounding to ``alpha_precision`` (a port computing in float32)."""
    for preset, runs in manifest["schedules"].items():
        n_fn, alpha_fn = port[preset]
        for E in runs:
            d = res / "schedules" / preset / E
            d.mkdir(parents=True, exist_ok=True)
            E = int(E)
            if n_fn is not None:
                (d / "n.bin").write_bytes(np.array([n_fn(e, E) for e in range(E)], n_dtype).tobytes())
            alpha = np.array([alpha_fn(e, E) for e in range(E)], alpha_precision).astype("<f8")
            (d / "alpha.bin").write_bytes(alpha.tobytes())


def test_blob_is_raw_little_endian_c_order(golden):
    m = _manifest(golden)
    blob = (golden / "vectors.bin").read_bytes()
    descs = [a for c in m["cases"] for a in c["inputs"] + c["outputs"] + [o.get("allowed") for o in c["outputs"]]
             if a and a.get("key")]
    end = 0
    for a in sorted(descs, key=lambda a: a["offset"]):
        assert a["offset"] % 8 == 0 and a["offset"] >= end, a["key"]
        assert a["nbytes"] == np.dtype(a["dtype"]).itemsize * math.prod(a["shape"])
        end = a["offset"] + a["nbytes"]
    assert end <= len(blob)
    # Read one sign case with nothing but struct and check it against the sign rule itself (SEMANTICS 1).
    case = next(c for c in m["cases"] if c["op"] == "sign")
    x, y = case["inputs"][0], case["outputs"][0]
    fx = struct.unpack_from(f"<{x['nbytes'] // 4}f", blob, x["offset"])
    fy = struct.unpack_from(f"<{y['nbytes'] // 8}d", blob, y["offset"])
    zero = case["kwargs"]["zero"]
    for a, b in zip(fx, fy):
        want = math.nan if a != a else (1.0 if a > 0 else -1.0 if a < 0 else zero)
        assert (b != b and want != want) or b == want, (a, b)
    # A 2-D input is C-order: element [i, j] sits at i * cols + j.
    case = next(c for c in m["cases"] if c["op"] == "linear_forward")
    w = case["inputs"][1]
    rows, cols = w["shape"]
    flat = struct.unpack_from(f"<{rows * cols}f", blob, w["offset"])
    arr = np.frombuffer(blob, np.float32, rows * cols, w["offset"]).reshape(rows, cols)
    assert arr[rows - 1, 0] == flat[(rows - 1) * cols]


def test_every_op_has_a_contract_naming_its_inputs_and_outputs(golden):
    m = _manifest(golden)
    for case in m["cases"]:
        contract = m["ops"][case["op"]]
        assert [i["name"] for i in case["inputs"]] == list(contract["inputs"]) == contract["input_order"]
        assert list(contract["outputs"]) == list(RECORDS[case["op"]].outputs) == contract["output_order"]
        assert set(case["kwargs"]) <= set(contract["kwargs"]), case["id"]
    assert set(CONTRACTS) == set(RECORDS)
    assert "64*w + j" in m["conventions"]["bit_packing"]


def test_roundtrip_and_a_broken_backend(golden, tmp_path, capsys):
    good, bad = tmp_path / "good", tmp_path / "bad"
    assert main(["vectors", "compute", str(golden), str(good), "--backend", "numpy"]) == 0
    assert (good / "sign-000" / "out" / "y.bin").stat().st_size == 4 * _manifest(golden)["cases"][0]["outputs"][0]["shape"][0]
    assert main(["vectors", "check", str(golden), str(good), "--require-all"]) == 1   # no schedules yet
    write_schedules(good, _manifest(golden))
    assert main(["vectors", "check", str(golden), str(good), "--require-all"]) == 0
    assert main(["vectors", "compute", str(golden), str(bad), "--backend", "fdaref.conformance.broken:FdaNTerms"]) == 0
    capsys.readouterr()
    assert main(["vectors", "check", str(golden), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL surrogate-" in out and "0 failed" in out.split("sign ")[1].splitlines()[0]


def test_npz_format_and_npz_results(tmp_path):
    d, res = tmp_path / "v", tmp_path / "r.npz"
    assert main(["vectors", "export", str(d), "--random", "1", "--ops", "sign,xnor_linear", "--format", "npz"]) == 0
    assert (d / "vectors.npz").exists() and not (d / "vectors.bin").exists()
    assert main(["vectors", "compute", str(d), str(res)]) == 0
    assert main(["vectors", "check", str(d), str(res), "--ops", "sign,xnor_linear", "--require-all"]) == 0


def test_partial_results_select_ops_and_require_all(golden, tmp_path, capsys):
    res = tmp_path / "partial"
    assert main(["vectors", "compute", str(golden), str(res), "--ops", "sign"]) == 0
    capsys.readouterr()
    assert main(["vectors", "check", str(golden), str(res)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(l.split()[:2] == ["sign", "ok"] for l in lines)
    assert any(l.split()[:2] == ["surrogate", "missing"] for l in lines)
    assert main(["vectors", "check", str(golden), str(res), "--require-all"]) == 1
    assert main(["vectors", "check", str(golden), str(res), "--ops", "sign", "--require-all"]) == 0
    assert main(["vectors", "check", str(golden), str(res), "--ops", "surrogate"]) == 1  # nothing checked


def test_unknown_keys_are_warned_with_the_nearest_valid_key(golden, tmp_path, capsys):
    res = tmp_path / "legacy.npz"
    np.savez(res, **{"sign-000/y": np.zeros(13, np.float32)})
    assert main(["vectors", "check", str(golden), str(res)]) == 1
    out = capsys.readouterr().out
    assert "unknown result key 'sign-000/y'" in out and "nearest valid key: 'sign-000/out/y'" in out


def test_packed_words_report_the_differing_bits(golden, tmp_path, capsys):
    res = tmp_path / "rev"
    assert main(["vectors", "compute", str(golden), str(res), "--ops", "pack_signs",
                 "--backend", "fdaref.conformance.broken:PackBitsReversed"]) == 0
    capsys.readouterr()
    assert main(["vectors", "check", str(golden), str(res), "--ops", "pack_signs"]) == 1
    out = capsys.readouterr().out
    # a reversed bit order moves element 0 (bit 0) of a 1-channel word to bit 63
    assert "bits 0, 63 differ" in out and "e+18" not in out


def test_a_raw_result_of_the_wrong_dtype_names_the_expected_size(golden, tmp_path, capsys):
    m = _manifest(golden)
    y = m["cases"][0]["outputs"][0]
    f = tmp_path / "res" / "sign-000" / "out" / "y.bin"
    f.parent.mkdir(parents=True)
    f.write_bytes(np.zeros(y["shape"], np.float64).tobytes())
    assert main(["vectors", "check", str(golden), str(tmp_path / "res"), "--ops", "sign"]) == 1
    assert f"expected shape {y['shape']} of float32 = {4 * y['shape'][0]} bytes" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["vectors", "check", "{golden}", "{tmp}/garbage.npz"],
    ["vectors", "check", "{tmp}/no_such_dir", "{tmp}/garbage.npz"],
    ["vectors", "check", "{tmp}", "{tmp}/garbage.npz"],             # a directory without a manifest
    ["vectors", "check", "{golden}", "{tmp}/absent.npz"],
    ["vectors", "check", "{golden}", "{tmp}", "--ops", "sgn"],
    ["vectors", "export", "/proc/no/such/place"],
    ["vectors", "compute", "{golden}", "/proc/no/such/place", "--ops", "sign"],
])
def test_bad_input_is_one_line_exit_2(golden, tmp_path, capsys, argv):
    (tmp_path / "garbage.npz").write_bytes(b"this is not a zip file\n")
    argv = [a.format(golden=golden, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "error:" in err


C_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "c_vectors"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_c_consumer_passes_its_ops(tmp_path, capsys, dtype):
    """examples/c_vectors (C11 + libc + libm) reads the default format and passes sign, the six
    surrogates, pack_signs and quantize_forward, and the schedules, checked by `fdaref vectors check --ops ...
    --require-all`."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH: the C golden-vector consumer is not checked")
    exe = tmp_path / "c_vectors"
    subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Werror", "-pedantic", "-o", str(exe),
                    str(C_EXAMPLE / "consumer.c"), str(C_EXAMPLE / "vectors_io.c"), "-lm"], check=True)
    vec, res = tmp_path / "vec", tmp_path / "res"
    assert main(["vectors", "export", str(vec), "--dtype", dtype, "--random", "8", "--ops", OPS]) == 0
    run = subprocess.run([str(exe), str(vec), str(res)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    capsys.readouterr()
    assert main(["vectors", "check", str(vec), str(res), "--ops", OPS + ",schedules", "--require-all"]) == 0, \
        capsys.readouterr().out
    estimators = {c["kwargs"]["estimator"] for c in _manifest(vec)["cases"] if c["op"] == "surrogate"}
    assert estimators == {"ste", "clipped_ste", "approx_sign", "sign_swish", "tanh", "fda"}


def test_c_format_code_stays_small():
    code = [l for l in (C_EXAMPLE / "vectors_io.c").read_text().splitlines()
            if l.strip() and not l.strip().startswith(("/*", "*", "#include"))]
    assert len(code) <= 150, len(code)


def test_the_manifest_holds_the_schedules_of_semantics_6(golden):
    tables = _manifest(golden)["schedules"]
    paper = tables["paper"]["10"]
    assert paper["n"] == [9 + (9 * e) // 9 for e in range(10)]
    assert paper["alpha"][-1] == 0.0
    assert paper["alpha"][:-1] == pytest.approx([0.05 * (1 + math.cos(math.pi * (e + 1) / 10)) for e in range(9)],
                                               rel=1e-15)
    assert tables["bibench"]["3"]["n"] == [9, 12, 15] and tables["paper"]["1"]["n"] == [18]
    assert "n" not in tables["release"]["2"] and tables["release"]["2"]["alpha"] == [0.0, 0.0]


def test_a_ports_schedules_are_checked_from_the_results(golden, tmp_path, capsys):
    """schedules/<preset>/<E>/{n,alpha}: an independent literal SEMANTICS 6 passes; each classic slip of a
    training loop fails at its preset and run length; alpha in float32 precision is within the tolerance."""
    m = _manifest(golden)
    res = tmp_path / "ok"
    write_schedules(res, m, alpha_precision=np.float32)   # within 1e-7: 1e-6 of alpha_0
    assert main(["vectors", "check", str(golden), str(res), "--ops", "schedules", "--require-all"]) == 0
    tables = [t for runs in m["schedules"].values() for table in runs.values() for t in table]   # n and alpha
    assert ["schedules", "ok", str(len(tables))] in [l.split()[:3] for l in capsys.readouterr().out.splitlines()]
    slips = {
        "paper n as BiBench's (never reaches n_p)": (dict(PORT, paper=(bibench_n, cosine_alpha)), "schedules/paper/10/n"),
        "bibench n as the paper's": (dict(PORT, bibench=(paper_n, cosine_alpha)), "schedules/bibench/10/n"),
        "cos(pi e / E) for cos(pi (e + 1) / E)": (
            dict(PORT, paper=(paper_n, lambda e, E: 0.05 * (1 + math.cos(math.pi * e / E)))), "schedules/paper/10/alpha"),
        "alpha_0 for alpha_0 / 2": (
            dict(PORT, bibench=(bibench_n, lambda e, E: 2 * cosine_alpha(e, E))), "schedules/bibench/2/alpha"),
        "release keeps a noise alpha": (dict(PORT, release=(None, cosine_alpha)), "schedules/release/2/alpha"),
        "n in floating point, e (9 / (E - 1))": (
            dict(PORT, paper=(lambda e, E: 18 if E == 1 else 9 + int(e * (9 / (E - 1))), cosine_alpha)),
            "schedules/paper/142/n"),
        "alpha floored at 5e-8": (dict(PORT, paper=(paper_n, lambda e, E: max(cosine_alpha(e, E), 5e-8))),
                                  "schedules/paper/2/alpha"),
    }
    for name, (port, key) in slips.items():
        bad = tmp_path / name.replace(" ", "_").replace("/", "")
        write_schedules(bad, m, port=port)
        assert main(["vectors", "check", str(golden), str(bad)]) == 1, name
        assert f"FAIL {key} (schedules: SEMANTICS 6)" in capsys.readouterr().out, name
    wrong = tmp_path / "int32"
    write_schedules(wrong, m, n_dtype="<i4")
    assert main(["vectors", "check", str(golden), str(wrong), "--ops", "schedules"]) == 1
    assert "expected shape [10] of int64 = 80 bytes" in capsys.readouterr().out


def test_missing_schedules_fail_only_with_require_all_and_a_corrupt_table_is_one_line(golden, tmp_path, capsys):
    res = tmp_path / "res"
    assert main(["vectors", "compute", str(golden), str(res), "--ops", "sign"]) == 0
    assert main(["vectors", "check", str(golden), str(res), "--ops", "sign,schedules"]) == 0
    assert main(["vectors", "check", str(golden), str(res), "--ops", "sign,schedules", "--require-all"]) == 1
    assert any(l.split()[:2] == ["schedules", "missing"] for l in capsys.readouterr().out.splitlines())
    bad = tmp_path / "bad"
    shutil.copytree(golden, bad)
    m = _manifest(bad)
    m["schedules"]["paper"]["10"]["n"] = "nine"
    (bad / "manifest.json").write_text(json.dumps(m))
    assert main(["vectors", "check", str(bad), str(res)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and '"schedules"' in err and "Traceback" not in err


def test_a_nan_window_must_stay_nan_in_the_vectors(tmp_path, capsys):
    """The allowed error of an avg-pool window holding NaN was NaN, which let any value pass; it is finite
    now, so a NaN-skipping sum fails (the op table's suite has the same bug planted: AvgPoolNanSum)."""
    vec, res = tmp_path / "v", tmp_path / "r"
    assert main(["vectors", "export", str(vec), "--random", "0", "--ops", "avg_pool2d_forward"]) == 0
    allowed = [o["allowed"] for c in _manifest(vec)["cases"] for o in c["outputs"]]
    blob = (vec / "vectors.bin").read_bytes()
    assert all(np.isfinite(np.frombuffer(blob, "<f8", a["nbytes"] // 8, a["offset"])).all() for a in allowed)
    assert main(["vectors", "compute", str(vec), str(res), "--backend", "fdaref.conformance.broken:AvgPoolNanSum"]) == 0
    capsys.readouterr()
    assert main(["vectors", "check", str(vec), str(res)]) == 1
    assert "FAIL avg_pool2d_forward-" in capsys.readouterr().out


def test_a_big_endian_npz_is_read_by_its_values(golden, tmp_path, capsys):
    res, swapped = tmp_path / "r.npz", tmp_path / "big.npz"
    assert main(["vectors", "compute", str(golden), str(res), "--ops", "sign"]) == 0
    with np.load(res) as z:
        np.savez(swapped, **{k: z[k].astype(z[k].dtype.newbyteorder(">")) for k in z.files})
    assert main(["vectors", "check", str(golden), str(swapped), "--ops", "sign"]) == 0
    with np.load(res) as z:   # and a wrong value in big-endian form still fails
        np.savez(swapped, **{k: (-z[k]).astype(z[k].dtype.newbyteorder(">")) for k in z.files})
    assert main(["vectors", "check", str(golden), str(swapped), "--ops", "sign"]) == 1
