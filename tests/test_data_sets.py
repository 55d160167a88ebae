"""Data sets: CIFAR batches, MNIST-format directories, splits, transforms and the seeded batch loader."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from fdaref.data import (BatchLoader, DataError, FASHION_MNIST_DIR, channel_stats, dataset_info, digits_available,
                         draw_augmentation, load_cifar10, load_digits, load_mnist, load_raw, load_splits, make_splits,
                         normalize, random_crop_flip, read_cifar_batch, write_cifar_batch, write_idx)
from fdaref.data.cifar import CIFAR10_INFO
from fdaref.data.dataset import ArrayDataset


def _cifar_dir(tmp_path: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_cifar_batch(tmp_path / name, rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                          rng.integers(0, 10, n))
    return tmp_path


def test_cifar_round_trip(tmp_path: Path) -> None:
    d = _cifar_dir(tmp_path)
    train, test = load_cifar10(d)
    assert train.images.shape == (30, 3, 32, 32) and test.images.shape == (6, 3, 32, 32)
    x, y = read_cifar_batch(d / "data_batch_1")
    np.testing.assert_array_equal(train.images[:6], x)
    # the CIFAR layout: 1024 red, then green, then blue values, row-major
    raw = pickle.loads((d / "data_batch_1").read_bytes())[b"data"]
    np.testing.assert_array_equal(x[0, 1].ravel(), raw[0, 1024:2048])


def test_cifar_missing_and_corrupt(tmp_path: Path) -> None:
    d = _cifar_dir(tmp_path)
    (d / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3: file not found.*--data-dir"):
        load_cifar10(d)
    (d / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match="data_batch_3: not a CIFAR-10 python batch"):
        load_cifar10(d)
    (d / "data_batch_3").write_bytes(pickle.dumps({b"labels": [1]}))
    with pytest.raises(DataError, match="lacks the key 'data'"):
        load_cifar10(d)
    (d / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [1, 2]}))
    with pytest.raises(DataError, match=r"shape \(N, 3072\)"):
        load_cifar10(d)
    (d / "data_batch_3").write_bytes(pickle.dumps(Path("x")))  # a foreign object is refused, not built
    with pytest.raises(DataError, match="unexpected object"):
        load_cifar10(d)
    with pytest.raises(DataError, match="no default location"):
        load_cifar10(None)
    with pytest.raises(DataError, match="data directory not found"):
        load_cifar10(tmp_path / "nope")


def _mnist_dir(tmp_path: Path, n: int = 20, gz: bool = True) -> Path:
    rng = np.random.default_rng(1)
    sfx = ".gz" if gz else ""
    for part, m in (("train", n), ("t10k", n // 2)):
        write_idx(tmp_path / f"{part}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (m, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{part}-labels-idx1-ubyte{sfx}", rng.integers(0, 10, m).astype(np.uint8))
    return tmp_path


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_dir(tmp_path: Path, gz: bool) -> None:
    train, test = load_mnist(_mnist_dir(tmp_path, gz=gz))
    assert train.images.shape == (20, 1, 28, 28) and len(test) == 10
    assert not train.info.flip  # digits are not mirrored


def test_mnist_inconsistent(tmp_path: Path) -> None:
    d = _mnist_dir(tmp_path)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="3 labels for 10 images"):
        load_mnist(d)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(10, np.int32))
    with pytest.raises(DataError, match="expected dtype uint8"):
        load_mnist(d)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: file not found"):
        load_mnist(d)
    with pytest.raises(DataError, match="no default location"):
        load_mnist(None)


def test_fashion_missing_dir_hint(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as info:
        load_raw("fashion-mnist", tmp_path / "absent")
    assert str(tmp_path / "absent") in str(info.value)


def test_unknown_dataset() -> None:
    with pytest.raises(ValueError, match="expected one of fashion-mnist, mnist, cifar10, digits"):
        dataset_info("imagenet")


def test_splits(tmp_path: Path) -> None:
    train, test = load_mnist(_mnist_dir(tmp_path, n=40))
    s = make_splits(train, test, seed=3, subset=30, val_fraction=0.2, test_subset=4)
    assert (len(s.train), len(s.val), len(s.test)) == (24, 6, 4)
    both = np.concatenate([s.train.images, s.val.images])
    assert len({a.tobytes() for a in both}) == 30  # disjoint
    s2 = make_splits(train, test, seed=3, subset=30, val_fraction=0.2, test_subset=4)
    np.testing.assert_array_equal(s.train.images, s2.train.images)
    assert s.mean.shape == (1,) and np.isclose(s.mean[0], s.train.images.mean() / 255)
    for bad in (dict(subset=0), dict(subset=2.5), dict(val_fraction=1.0), dict(test_subset=-1)):
        with pytest.raises(ValueError, match="expected"):
            make_splits(train, test, **bad)


def test_normalize_and_stats() -> None:
    x = np.random.default_rng(0).integers(0, 256, (5, 3, 4, 4), dtype=np.uint8)
    mean, std = channel_stats(x, 255.0)
    y = normalize(x, mean, std, 255.0, np.float64)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-12)
    assert normalize(x, mean, std, 255.0).dtype == np.float32


def test_crop_flip() -> None:
    x = np.arange(2 * 1 * 3 * 3, dtype=np.uint8).reshape(2, 1, 3, 3) + 1
    same = random_crop_flip(x, np.array([1, 1]), np.array([1, 1]), np.array([False, False]), 1)
    np.testing.assert_array_equal(same, x)
    out = random_crop_flip(x, np.array([0, 2]), np.array([0, 1]), np.array([False, True]), 1)
    np.testing.assert_array_equal(out[0, 0], [[0, 0, 0], [0, 1, 2], [0, 4, 5]])
    np.testing.assert_array_equal(out[1, 0], x[1, 0, [1, 2, 0]][:, ::-1] * np.array([[1], [1], [0]]))
    a = draw_augmentation(np.random.default_rng(0), 100, 2, flip=False)
    assert not a.flip.any() and a.dy.min() >= 0 and a.dy.max() <= 4
    b = draw_augmentation(np.random.default_rng(0), 100, 2, flip=True)
    assert 20 < b.flip.sum() < 80
    np.testing.assert_array_equal(a.dx, b.dx)  # same draws whatever the flip policy


def test_loader_seeded_and_resumable() -> None:
    info = CIFAR10_INFO
    rng = np.random.default_rng(0)
    ds = ArrayDataset(rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 10), info)
    mean, std = channel_stats(ds.images, 255.0)
    L = BatchLoader(ds, 4, mean, std, seed=5, shuffle=True, augment=True, drop_last=True)
    assert len(L) == 2
    e0 = list(L.epoch(0))
    assert [len(y) for _, y in e0] == [4, 4]
    again = list(L.epoch(0))
    for (x1, y1), (x2, y2) in zip(e0, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    tail = list(L.epoch(0, start_batch=1))
    np.testing.assert_array_equal(tail[0][0], e0[1][0])
    e1 = list(L.epoch(1))
    assert not np.array_equal(e1[0][0], e0[0][0])
    plain = BatchLoader(ds, 4, mean, std)
    assert len(plain) == 3 and [len(y) for _, y in plain.epoch()] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([y for _, y in plain.epoch()]), ds.labels)
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1"):
        BatchLoader(ds, 0, mean, std)


@pytest.mark.skipif(not Path(FASHION_MNIST_DIR).is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist() -> None:
    s = load_splits("fashion-mnist", subset=1000, test_subset=100)
    assert s.train.images.shape[1:] == (1, 28, 28) and len(s.test) == 100
    assert 0.2 < s.mean[0] < 0.4 and s.info.flip


@pytest.mark.skipif(digits_available(), reason="scikit-learn is installed")
def test_digits_without_sklearn() -> None:
    with pytest.raises(DataError, match="scikit-learn"):
        load_digits()


@pytest.mark.skipif(not digits_available(), reason="scikit-learn not installed")
def test_digits() -> None:
    train, test = load_digits()
    assert len(train) + len(test) == 1797 and train.images.shape[1:] == (1, 8, 8)
