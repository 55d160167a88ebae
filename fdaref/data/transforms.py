"""Per-channel normalisation and the training augmentation (random crop with zero padding, horizontal flip).

Augmentation parameters are drawn for a whole epoch at once (:func:`draw_augmentation`), so a batch's
transform depends only on the epoch's generator and the batch's position: skipping batches on resume
replays the same images bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def channel_stats(images: np.ndarray, pixel_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``images`` (N, C, H, W) scaled to [0, 1], in float64."""
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images: expected a non-empty (N, C, H, W) array, got shape {images.shape}")
    c = images.shape[1]
    mean = np.zeros(c)
    std = np.zeros(c)
    for ch in range(c):  # per channel keeps the float64 temporary small
        v = images[:, ch].astype(np.float64) / pixel_max
        mean[ch] = v.mean()
        std[ch] = v.std()
    std[std == 0] = 1.0
    return mean, std


def normalize(images: np.ndarray, mean: np.ndarray, std: np.ndarray, pixel_max: float,
              dtype: np.dtype | type = np.float32) -> np.ndarray:
    """(images / pixel_max - mean) / std per channel, as ``dtype``."""
    x = images.astype(np.float64) / pixel_max
    x -= np.asarray(mean, np.float64)[None, :, None, None]
    x /= np.asarray(std, np.float64)[None, :, None, None]
    return x.astype(dtype, copy=False)


@dataclass
class Augmentation:
    """Per-image crop offsets (dy, dx in 0 .. 2*pad) and flip flags for one epoch."""
    dy: np.ndarray
    dx: np.ndarray
    flip: np.ndarray
    pad: int


def draw_augmentation(rng: np.random.Generator, n: int, pad: int, flip: bool) -> Augmentation:
    """Draw the augmentation of ``n`` images; always consumes the generator the same way."""
    if pad < 0:
        raise ValueError(f"pad: expected an integer >= 0, got {pad}")
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    flips = rng.random(n) < 0.5
    if not flip:
        flips[:] = False
    return Augmentation(dy, dx, flips, pad)


def random_crop_flip(images: np.ndarray, dy: np.ndarray, dx: np.ndarray, flip: np.ndarray, pad: int) -> np.ndarray:
    """Zero-pad (N, C, H, W) by ``pad`` on each side, crop H x W at (dy, dx) per image, then mirror where
    ``flip``. With pad 0 and no flips the images come back unchanged. Padding is with raw 0 (black), before
    normalisation, as in the usual CIFAR recipe."""
    n, c, h, w = images.shape
    if not (len(dy) == len(dx) == len(flip) == n):
        raise ValueError(f"augmentation parameters: expected {n} entries each, got {len(dy)}, {len(dx)}, {len(flip)}")
    out = np.empty_like(images)
    if pad:
        padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=images.dtype)
        padded[:, :, pad:pad + h, pad:pad + w] = images
    else:
        padded = images
    for i in range(n):
        y0, x0 = int(dy[i]), int(dx[i])
        crop = padded[i, :, y0:y0 + h, x0:x0 + w]
        out[i] = crop[:, :, ::-1] if flip[i] else crop
    return out
