"""scikit-learn's 8x8 handwritten digits (1797 images, pixel values 0 .. 16), only where it is installed."""
from __future__ import annotations

import numpy as np

from .dataset import ArrayDataset, DatasetInfo
from .errors import DataError, how_to_get

DIGITS_INFO = DatasetInfo("digits", tuple(str(i) for i in range(10)), 1, 8, 8, pixel_max=16.0, flip=False, pad=1)
TEST_FRACTION = 0.2
SPLIT_SEED = 0  # the train/test split is fixed, whatever the training seed


def digits_available() -> bool:
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        return False
    return True


def load_digits() -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test): a fixed, seeded 80/20 split of scikit-learn's digits."""
    try:
        from sklearn.datasets import load_digits as _sk_load
    except ImportError as exc:
        raise DataError("sklearn.datasets", f"scikit-learn is not installed ({exc})", how_to_get("digits")) from None
    bunch = _sk_load()
    images = bunch.images.astype(np.uint8)[:, None, :, :]  # values 0 .. 16 are integers
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    n_test = int(round(len(labels) * TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    return (ArrayDataset(images[train], labels[train], DIGITS_INFO),
            ArrayDataset(images[test], labels[test], DIGITS_INFO))
