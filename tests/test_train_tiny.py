"""End to end on real data: a few hundred SGD steps of the binary tiny convnet on Fashion-MNIST drive the
training loss well down and give far-above-chance test accuracy in eval mode (pure sign)."""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import time

import numpy as np
import pytest

from fdaref import nn
from fdaref.autodiff import Tensor, no_grad
from fdaref.functions import cross_entropy
from fdaref.optim import SGD, CosineLR

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
STEPS, BATCH = 300, 32


@contextlib.contextmanager
def _single_threaded_blas():
    """Run numpy's GEMMs on one thread: the tiny net's matrices are far too small for threads, and on a
    shared 2-core machine OpenBLAS's spinning worker threads made this test 3-5x slower (user time 4x the
    single-threaded run). A no-op where numpy's BLAS is not its bundled scipy-openblas."""
    lib = None
    for path in glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "libscipy_openblas*")):
        try:
            lib = ctypes.CDLL(path)  # the already loaded library: dlopen returns the same handle
        except OSError:
            pass
    if lib is None or not hasattr(lib, "scipy_openblas_set_num_threads64_"):
        yield
        return
    before = lib.scipy_openblas_get_num_threads64_()
    lib.scipy_openblas_set_num_threads64_(ctypes.c_int(1))
    try:
        yield
    finally:
        lib.scipy_openblas_set_num_threads64_(ctypes.c_int(before))


def _load(part: str) -> tuple[np.ndarray, np.ndarray]:
    from fdaref.data.idx import find_idx, read_idx
    stem = "train" if part == "train" else "t10k"
    images = read_idx(find_idx(FASHION_DIR, f"{stem}-images-idx3-ubyte"))
    labels = read_idx(find_idx(FASHION_DIR, f"{stem}-labels-idx1-ubyte"))
    return images[:, None], labels.astype(np.int64)  # uint8 (N, 1, 28, 28): normalised per batch


def _normalise(images: np.ndarray) -> Tensor:
    return Tensor.from_numpy((images.astype(np.float64) / 255.0 - 0.286) / 0.353)  # Fashion-MNIST mean / std


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR),
                    reason=f"Fashion-MNIST not installed at {FASHION_DIR} (apt-get install dataset-fashion-mnist)")
def test_tiny_binary_convnet_learns_fashion_mnist():
    with _single_threaded_blas():
        _train_and_check()


def _train_and_check() -> None:
    x_train, y_train = _load("train")
    x_test, y_test = _load("test")
    rng = np.random.default_rng(0)
    model = nn.tiny(in_channels=1, num_classes=10, seed=0, width=8)
    opt = SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-4)
    sched = CosineLR(opt, STEPS)
    epochs = 3  # the SEMANTICS 6 schedules advance every STEPS // epochs steps
    losses, start = [], time.perf_counter()
    for step in range(STEPS):
        if step % (STEPS // epochs) == 0:
            nn.set_schedule(model, step // (STEPS // epochs), epochs)
        idx = rng.integers(0, len(y_train), BATCH)
        loss = cross_entropy(model(_normalise(x_train[idx])), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.numpy()))
    elapsed = time.perf_counter() - start
    first, last = np.mean(losses[:20]), np.mean(losses[-50:])
    assert np.isfinite(losses).all()
    assert first > 1.6, f"initial loss {first:.3f} should be near ln(10) = 2.30"
    assert last < 0.6 * first and last < 1.0, f"loss went from {first:.3f} to only {last:.3f}"
    model.eval()
    with no_grad():
        logits = model(_normalise(x_test[:1000])).numpy()
    acc = float((logits.argmax(1) == y_test[:1000]).mean())
    assert acc > 0.6, f"test accuracy {acc:.3f} after {STEPS} steps ({elapsed:.1f} s)"
