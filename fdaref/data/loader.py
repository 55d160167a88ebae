"""Seeded batch iteration. The order and augmentation of epoch e come from a generator seeded with
(seed, e) alone, so any epoch, and any batch within it, can be replayed exactly (resume, Ctrl-C)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .dataset import ArrayDataset
from .transforms import Augmentation, draw_augmentation, normalize, random_crop_flip


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator that fixes epoch ``epoch``'s order and augmentation."""
    return np.random.default_rng([int(seed), int(epoch), 0xDA7A])


@dataclass
class BatchLoader:
    """Yields (x float NCHW normalised, y int64) batches of ``data``.

    ``shuffle`` and ``augment`` are for training; ``drop_last`` drops a final partial batch (kept when it
    would be the only batch). ``mean``/``std`` are the per-channel statistics of the training split.
    """
    data: ArrayDataset
    batch_size: int
    mean: np.ndarray
    std: np.ndarray
    seed: int = 0
    shuffle: bool = False
    augment: bool = False
    drop_last: bool = False
    dtype: type = np.float32

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) \
                or self.batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {self.batch_size!r}")
        if len(self.data) == 0:
            raise ValueError("data set is empty: expected at least one image")

    def __len__(self) -> int:
        n, b = len(self.data), self.batch_size
        if self.drop_last and n >= b:
            return n // b
        return -(-n // b)

    def plan(self, epoch: int = 0) -> tuple[np.ndarray, Augmentation | None]:
        """Epoch ``epoch``'s image order (N,) and augmentation (one entry per position in that order, or None):
        everything :meth:`epoch` draws, for engines that assemble the batches themselves (on a device)."""
        n = len(self.data)
        rng = epoch_rng(self.seed, epoch)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        info = self.data.info
        return order, (draw_augmentation(rng, n, info.pad, info.flip) if self.augment else None)

    def epoch(self, epoch: int = 0, start_batch: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Batches of epoch ``epoch``, starting at batch ``start_batch`` (for resuming mid-epoch)."""
        order, aug = self.plan(epoch)
        info = self.data.info
        for b in range(start_batch, len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            images = self.data.images[idx]
            if aug is not None:
                sel = slice(b * self.batch_size, b * self.batch_size + len(idx))
                images = random_crop_flip(images, aug.dy[sel], aug.dx[sel], aug.flip[sel], aug.pad)
            yield normalize(images, self.mean, self.std, info.pixel_max, self.dtype), self.data.labels[idx]
