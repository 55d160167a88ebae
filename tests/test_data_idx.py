"""IDX reader: round trips, gzip detection, and every corruption names the path and how to get the data."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from fdaref.data import DataError, FASHION_MNIST_DIR, parse_idx, read_idx, write_idx
from fdaref.data.idx import find_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path: Path, dtype: type, compress: bool) -> None:
    a = (np.arange(2 * 3 * 5).reshape(2, 3, 5) - 7).astype(dtype)
    p = tmp_path / "x-idx3"
    write_idx(p, a, compress=compress)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == compress
    b = read_idx(p)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable


def test_big_endian_on_disk(tmp_path: Path) -> None:
    p = tmp_path / "l"
    write_idx(p, np.array([1, 256], dtype=np.int32), compress=False)
    assert p.read_bytes() == bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + struct.pack(">ii", 1, 256)


def _raise(raw: bytes, tmp_path: Path, match: str) -> DataError:
    p = tmp_path / "bad-idx"
    p.write_bytes(raw)
    with pytest.raises(DataError, match=match) as info:
        read_idx(p)
    assert str(p) in str(info.value)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    return info.value


def test_corrupt_files(tmp_path: Path) -> None:
    good = bytes([0, 0, 0x08, 2]) + struct.pack(">II", 2, 3) + bytes(6)
    assert parse_idx(good).shape == (2, 3)
    _raise(b"\x00\x00", tmp_path, "too short")
    _raise(b"\x01" + good[1:], tmp_path, "magic")
    _raise(bytes([0, 0, 0x07, 2]) + good[4:], tmp_path, "type code 0x07")
    _raise(bytes([0, 0, 0x08, 0]), tmp_path, "rank is 0")
    _raise(bytes([0, 0, 0x08, 3]) + good[4:12], tmp_path, "truncated IDX header")
    _raise(good[:-1], tmp_path, "truncated")
    _raise(good + b"\x00", tmp_path, "trailing bytes")
    _raise(gzip.compress(good)[:-6], tmp_path, "gzip")


def test_missing_file_and_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found") as info:
        read_idx(tmp_path / "nope.gz")
    assert str(tmp_path / "nope.gz") in str(info.value)
    with pytest.raises(DataError, match="data directory not found"):
        find_idx(tmp_path / "none", "train-images-idx3-ubyte")
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        find_idx(tmp_path, "train-images-idx3-ubyte")
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((1, 2, 2), np.uint8))
    assert find_idx(tmp_path, "train-images-idx3-ubyte").name == "train-images-idx3-ubyte"


def test_expectations(tmp_path: Path) -> None:
    p = tmp_path / "a.gz"
    write_idx(p, np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match="expected 3 dimensions"):
        read_idx(p, expect_ndim=3)
    with pytest.raises(DataError, match="expected dtype int32"):
        read_idx(p, expect_dtype=np.int32)


@pytest.mark.skipif(not Path(FASHION_MNIST_DIR).is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_labels() -> None:
    y = read_idx(Path(FASHION_MNIST_DIR) / "t10k-labels-idx1-ubyte.gz", expect_ndim=1)
    assert y.shape == (10000,) and y.dtype == np.uint8 and set(np.unique(y)) == set(range(10))
