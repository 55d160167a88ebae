"""In-memory data sets: raw images (N, C, H, W) kept as stored (uint8 for the IDX / CIFAR sets) plus labels,
and the per-dataset facts (classes, pixel range, augmentation) that the batch iterator needs."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DatasetInfo:
    """What a data set is: its name, class names, image geometry, pixel range and augmentation policy.

    ``flip`` is the random horizontal flip. It is off for digit data (MNIST, digits): a mirrored digit is
    often not the same digit (or not a digit at all), so the flip would teach the net wrong invariances.
    Fashion-MNIST and CIFAR-10 are flipped (clothes and photos stay what they are in a mirror).
    ``pad`` is the zero padding of the random crop (CIFAR's usual 4 on 32 pixels, scaled for smaller images).
    """
    name: str
    classes: tuple[str, ...]
    channels: int
    height: int
    width: int
    pixel_max: float = 255.0
    flip: bool = True
    pad: int = 4

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class ArrayDataset:
    """Images (N, C, H, W) in their stored dtype and integer labels (N,)."""
    images: np.ndarray
    labels: np.ndarray
    info: DatasetInfo = field(repr=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images: expected shape (N, C, H, W), got {self.images.shape}")
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise ValueError(f"labels: expected shape ({len(self.images)},), got {self.labels.shape}")
        self.labels = self.labels.astype(np.int64, copy=False)
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= self.info.num_classes):
            raise ValueError(f"labels: expected values in 0 .. {self.info.num_classes - 1}, got "
                             f"{int(self.labels.min())} .. {int(self.labels.max())}")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> "ArrayDataset":
        return ArrayDataset(self.images[index], self.labels[index], self.info)


@dataclass
class Splits:
    """Train / validation / test parts of one data set and the per-channel normalisation (from train)."""
    train: ArrayDataset
    val: ArrayDataset
    test: ArrayDataset
    mean: np.ndarray  # (C,), in units of pixel_max (i.e. of images scaled to [0, 1])
    std: np.ndarray

    @property
    def info(self) -> DatasetInfo:
        return self.train.info
