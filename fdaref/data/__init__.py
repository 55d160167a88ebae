"""Data sets for training: IDX (Fashion-MNIST, MNIST), CIFAR-10 python batches, scikit-learn digits.
Nothing is ever downloaded; a missing or corrupt file raises :class:`DataError` naming the path."""
from .errors import DataError, FASHION_MNIST_DIR, how_to_get
from .idx import parse_idx, read_idx, write_idx

__all__ = ["DataError", "FASHION_MNIST_DIR", "how_to_get", "parse_idx", "read_idx", "write_idx"]
