"""Data sets for training: IDX (Fashion-MNIST, MNIST), CIFAR-10 python batches, scikit-learn digits.
Nothing is ever downloaded; a missing or corrupt file raises :class:`DataError` naming the path."""
from .cifar import load_cifar10, read_cifar_batch, write_cifar_batch
from .dataset import ArrayDataset, DatasetInfo, Splits
from .digits import digits_available, load_digits
from .errors import DataError, FASHION_MNIST_DIR, how_to_get
from .idx import parse_idx, read_idx, write_idx
from .loader import BatchLoader, epoch_rng
from .mnist import load_fashion_mnist, load_mnist
from .registry import dataset_available, dataset_info, dataset_names, load_raw, load_splits, make_splits
from .transforms import channel_stats, draw_augmentation, normalize, random_crop_flip

__all__ = ["ArrayDataset", "BatchLoader", "DataError", "DatasetInfo", "FASHION_MNIST_DIR", "Splits",
           "channel_stats", "dataset_available", "dataset_info", "dataset_names", "digits_available",
           "draw_augmentation", "epoch_rng", "how_to_get", "load_cifar10", "load_digits", "load_fashion_mnist",
           "load_mnist", "load_raw", "load_splits", "make_splits", "normalize", "parse_idx", "random_crop_flip",
           "read_cifar_batch", "read_idx", "write_cifar_batch", "write_idx"]
