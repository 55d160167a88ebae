"""The one error type of the data loaders, and the hint that says how to get the data."""
from __future__ import annotations

import os

from ..errors import InputError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

def how_to_get(dataset: str) -> str:
    """A sentence that says where ``dataset`` comes from (nothing is ever downloaded by fdaref)."""
    if dataset == "fashion-mnist":
        return (f"install it with `apt-get install dataset-fashion-mnist` (files land in {FASHION_MNIST_DIR}) "
                "or pass --data-dir DIR holding the four IDX files; fdaref never downloads data")
    if dataset == "mnist":
        return ("pass --data-dir DIR holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]; fdaref never downloads data")
    if dataset == "cifar10":
        return ("pass --data-dir DIR holding the CIFAR-10 python batches data_batch_1 .. data_batch_5 and "
                "test_batch (the 'cifar-10-batches-py' folder); fdaref never downloads data")
    if dataset == "digits":
        return "install scikit-learn (its small digits set ships inside the package)"
    return "pass --data-dir DIR; fdaref never downloads data"


class DataError(InputError, RuntimeError):
    """A data file is missing or corrupt. The message names the path and how to get the data."""

    def __init__(self, path: str | os.PathLike[str], problem: str, hint: str = "") -> None:
        self.path = os.fspath(path)
        self.problem = problem
        message = f"{self.path}: {problem}"
        if hint:
            message += f". To get the data: {hint}"
        super().__init__(message)
