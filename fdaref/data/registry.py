"""Data sets by name, with the train / validation / test split, --subset and the normalisation."""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..errors import InputError
from .cifar import CIFAR10_INFO, load_cifar10
from .dataset import ArrayDataset, DatasetInfo, Splits
from .digits import DIGITS_INFO, digits_available, load_digits
from .mnist import FASHION_INFO, MNIST_INFO, load_fashion_mnist, load_mnist
from .transforms import channel_stats

Loader = Callable[[str | os.PathLike[str] | None], tuple[ArrayDataset, ArrayDataset]]

DATASETS: dict[str, tuple[DatasetInfo, Loader]] = {
    "fashion-mnist": (FASHION_INFO, load_fashion_mnist),
    "mnist": (MNIST_INFO, load_mnist),
    "cifar10": (CIFAR10_INFO, load_cifar10),
    "digits": (DIGITS_INFO, lambda _dir: load_digits()),
}
SPLIT_SALT = 0x5B17


def dataset_names() -> list[str]:
    return list(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """The data set's description; InputError (a ValueError) for a name that is none of :data:`DATASETS`
    (a packed model or checkpoint may carry any JSON value there)."""
    if not isinstance(name, str) or name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name][0]


def dataset_available(name: str) -> bool:
    """False only for 'digits' without scikit-learn (the others need files, checked when loading)."""
    return digits_available() if name == "digits" else name in DATASETS


def load_raw(name: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of data set ``name``; raises DataError naming the path when files are missing/corrupt."""
    dataset_info(name)
    return DATASETS[name][1](data_dir)


def _check_count(value: int | None, name: str, available: int, what: str) -> None:
    """A count of images to keep: an integer in [1, available]. More than the data set holds is refused, not
    cut to its size: the run would silently train (or report accuracy) on fewer images than asked."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name}: expected an integer >= 1, got {value!r}")
    if value > available:
        raise InputError(f"{name}: {value} images asked, but the {what} has only {available}; "
                         f"give at most {available} (or leave it out for all of them)")


def make_splits(train: ArrayDataset, test: ArrayDataset, *, seed: int = 0, subset: int | None = None,
                val_fraction: float = 0.1, test_subset: int | None = None) -> Splits:
    """Split ``train`` into train / validation and compute the normalisation from the train part.

    ``subset`` keeps a seeded random N of the training images before the split (the validation part is
    taken out of those N); ``test_subset`` keeps the first M test images (a fixed part of the test set, so
    runs stay comparable). ``val_fraction`` in [0, 1) of the (subset) training images go to validation.
    """
    name = train.info.name
    _check_count(subset, "subset", len(train), f"{name} training set")
    _check_count(test_subset, "test_subset", len(test), f"{name} test set")
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise InputError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    rng = np.random.default_rng([int(seed), SPLIT_SALT])
    order = rng.permutation(len(train))
    if subset is not None:
        order = order[:subset]
    n_val = int(len(order) * val_fraction)
    if len(order) - n_val < 1:
        raise InputError(f"no training images left: {len(order)} images, {n_val} for validation")
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    if test_subset is not None:
        test = test.take(np.arange(test_subset))
    tr = train.take(train_idx)
    mean, std = channel_stats(tr.images, tr.info.pixel_max)
    return Splits(tr, train.take(val_idx), test, mean, std)


def load_splits(name: str, data_dir: str | os.PathLike[str] | None = None, *, seed: int = 0,
                subset: int | None = None, val_fraction: float = 0.1, test_subset: int | None = None) -> Splits:
    """Load data set ``name`` and split it (see :func:`make_splits`)."""
    train, test = load_raw(name, data_dir)
    return make_splits(train, test, seed=seed, subset=subset, val_fraction=val_fraction, test_subset=test_subset)
