"""Fashion-MNIST and MNIST from the four standard IDX files (gzip or not) in one directory."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset, DatasetInfo
from .errors import DataError, FASHION_MNIST_DIR, how_to_get
from .idx import find_idx, read_idx

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(i) for i in range(10))

FASHION_INFO = DatasetInfo("fashion-mnist", FASHION_CLASSES, 1, 28, 28, flip=True, pad=2)
MNIST_INFO = DatasetInfo("mnist", DIGIT_CLASSES, 1, 28, 28, flip=False, pad=2)

_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _load_part(directory: Path, part: str, info: DatasetInfo, hint: str) -> ArrayDataset:
    img_stem, lab_stem = _STEMS[part]
    img_path = find_idx(directory, img_stem, hint=hint)
    lab_path = find_idx(directory, lab_stem, hint=hint)
    images = read_idx(img_path, hint=hint, expect_ndim=3, expect_dtype=np.uint8)
    labels = read_idx(lab_path, hint=hint, expect_ndim=1, expect_dtype=np.uint8)
    if len(images) != len(labels):
        raise DataError(lab_path, f"{len(labels)} labels for {len(images)} images in {img_path}", hint)
    if images.shape[1:] != (info.height, info.width):
        raise DataError(img_path, f"expected {info.height}x{info.width} images, found "
                                  f"{images.shape[1]}x{images.shape[2]}", hint)
    if len(labels) and labels.max() >= info.num_classes:
        raise DataError(lab_path, f"label {int(labels.max())} out of range 0 .. {info.num_classes - 1}", hint)
    return ArrayDataset(images[:, None, :, :], labels, info)


def load_idx_dataset(info: DatasetInfo, directory: str | os.PathLike[str]) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of an MNIST-format data set stored in ``directory``."""
    hint = how_to_get(info.name)
    d = Path(directory)
    return _load_part(d, "train", info, hint), _load_part(d, "test", info, hint)


def load_fashion_mnist(directory: str | os.PathLike[str] | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """Fashion-MNIST, by default from Debian's dataset-fashion-mnist package."""
    return load_idx_dataset(FASHION_INFO, directory or FASHION_MNIST_DIR)


def load_mnist(directory: str | os.PathLike[str] | None) -> tuple[ArrayDataset, ArrayDataset]:
    """MNIST from ``directory`` (no default location: pass --data-dir)."""
    if directory is None:
        raise DataError("<no --data-dir>", "MNIST has no default location", how_to_get("mnist"))
    return load_idx_dataset(MNIST_INFO, directory)
