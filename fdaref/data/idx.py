"""Read and write IDX files (the MNIST / Fashion-MNIST container), gzip-compressed or not.

Layout: two zero bytes, a type code, the number of dimensions d, then d big-endian uint32 sizes, then the
values in big-endian order, row-major. Everything is validated: a wrong magic, an unknown type code, zero
dimensions, or a payload that is shorter or longer than the sizes say raise :class:`DataError` naming the path.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError, how_to_get

#: Used when the caller gives no hint: IDX files are usually (Fashion-)MNIST.
DEFAULT_HINT = how_to_get("fashion-mnist")

#: IDX type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {dt.newbyteorder("=").str[1:]: code for code, dt in IDX_DTYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path, hint: str) -> bytes:
    if not path.exists():
        raise DataError(path, "file not found", hint)
    if not path.is_file():
        raise DataError(path, "not a regular file", hint)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc.strerror or exc}", hint) from exc
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(path, f"corrupt gzip stream ({exc})", hint) from exc
    return raw


def parse_idx(raw: bytes, path: str | os.PathLike[str] = "<bytes>", hint: str = DEFAULT_HINT) -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into a native-endian array."""
    if len(raw) < 4:
        raise DataError(path, f"too short for an IDX header ({len(raw)} bytes)", hint)
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0:
        raise DataError(path, f"bad IDX magic {raw[:4].hex()} (expected 0000 then type code and rank)", hint)
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(path, f"unknown IDX type code 0x{code:02X} (expected one of {known})", hint)
    if ndim == 0:
        raise DataError(path, "IDX rank is 0 (expected at least one dimension)", hint)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(path, f"truncated IDX header: rank {ndim} needs {header} bytes, file has {len(raw)}", hint)
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(raw) - header
    if payload != expected:
        what = "truncated" if payload < expected else "has trailing bytes"
        raise DataError(path, f"IDX payload {what}: shape {tuple(shape)} of {dtype.name} needs {expected} bytes, "
                              f"found {payload}", hint)
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike[str], *, hint: str = DEFAULT_HINT, expect_ndim: int | None = None,
             expect_dtype: np.dtype | type | None = None) -> np.ndarray:
    """Read one IDX file (gzip detected from its content, not its name).

    ``expect_ndim`` / ``expect_dtype`` add checks on the decoded array. ``hint`` is appended to every error
    message (how to get the data). Raises :class:`DataError` naming ``path`` for a missing or corrupt file.
    """
    p = Path(path)
    arr = parse_idx(_read_bytes(p, hint), p, hint)
    if expect_ndim is not None and arr.ndim != expect_ndim:
        raise DataError(p, f"expected {expect_ndim} dimensions, found shape {arr.shape}", hint)
    if expect_dtype is not None and arr.dtype != np.dtype(expect_dtype):
        raise DataError(p, f"expected dtype {np.dtype(expect_dtype).name}, found {arr.dtype.name}", hint)
    return arr


def find_idx(directory: str | os.PathLike[str], stem: str, *, hint: str = DEFAULT_HINT) -> Path:
    """``directory/stem.gz`` if it exists, else ``directory/stem``; the error names both candidates."""
    d = Path(directory)
    for candidate in (d / f"{stem}.gz", d / stem):
        if candidate.is_file():
            return candidate
    if not d.is_dir():
        raise DataError(d, "data directory not found", hint)
    raise DataError(d / f"{stem}.gz", f"file not found (nor {d / stem})", hint)


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as IDX (gzip when ``compress`` or, by default, when the name ends in .gz). For tests."""
    arr = np.asarray(array)
    key = arr.dtype.newbyteorder("=").str[1:] if arr.dtype.byteorder not in ("|",) else arr.dtype.str[1:]
    if key not in _CODE_OF:
        raise TypeError(f"write_idx: dtype {arr.dtype} has no IDX type code (expected uint8, int8, int16, int32, "
                        "float32 or float64)")
    code = _CODE_OF[key]
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"write_idx: expected 1 to 255 dimensions, got {arr.ndim}")
    raw = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw += np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    p = Path(path)
    if compress is None:
        compress = p.suffix == ".gz"
    p.write_bytes(gzip.compress(raw, mtime=0) if compress else raw)
