"""A small learnable synthetic data set (for smoke tests; never a substitute for the real data).

Each class has a fixed random template; an image is its class template plus noise, stored as uint8 like
MNIST. ``write_synthetic_idx`` writes it as the four MNIST-format IDX files, so the whole file path
(loader, CLI) can be exercised without the real data sets.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset
from .idx import write_idx
from .mnist import MNIST_INFO


def synthetic_images(n: int, *, seed: int = 0, num_classes: int = 10, size: int = 28, noise: float = 60.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, size, size), labels uint8 (n,)): class templates (seed 1234) plus seeded noise."""
    coarse = np.random.default_rng(1234).uniform(0, 255, (num_classes, 4, 4))
    cell = -(-size // 4)  # blocky templates: a shift by a few pixels (random crop) keeps the class visible
    templates = np.kron(coarse, np.ones((cell, cell)))[:, :size, :size]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    images = templates[labels] + rng.normal(0, noise, (n, size, size))
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def synthetic_dataset(n: int, *, seed: int = 0) -> ArrayDataset:
    """An MNIST-shaped :class:`ArrayDataset` of ``n`` synthetic images."""
    images, labels = synthetic_images(n, seed=seed)
    return ArrayDataset(images[:, None], labels, MNIST_INFO)


def write_synthetic_idx(directory: str | os.PathLike[str], n_train: int = 200, n_test: int = 100,
                        *, gzip: bool = True) -> Path:
    """Write train/t10k images and labels in MNIST's IDX format into ``directory``; returns it."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gzip else ""
    for part, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = synthetic_images(n, seed=seed)
        write_idx(d / f"{part}-images-idx3-ubyte{sfx}", images)
        write_idx(d / f"{part}-labels-idx1-ubyte{sfx}", labels)
    return d
