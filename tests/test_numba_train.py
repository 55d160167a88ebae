"""`fdaref train --backend numba` runs the fdaref engine on the numba op table, and the steps agree with the
reference on the same weights and batch."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("numba")
pytestmark = pytest.mark.usefixtures("numba_precompiled")   # conftest.py: the kernels compile in the background

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def test_engine_step_numba_matches_reference():
    from fdaref import nn
    from fdaref.autodiff import Tensor
    from fdaref.functions import cross_entropy
    from fdaref.backends.numba import backend as NB
    from fdaref.reference import REFERENCE
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 12, 12))
    y = np.array([0, 3, 1, 2])
    grads = {}
    for name, ops in (("numba", NB), ("reference", REFERENCE)):
        model = nn.tiny(in_channels=1, num_classes=5, seed=0, width=4, dtype=np.float64).to(ops)
        nn.set_schedule(model, 0, 10)
        loss = cross_entropy(model(Tensor.from_numpy(x, ops)), ops.from_numpy(y))
        loss.backward()
        grads[name] = {k: p.grad for k, p in model.named_parameters()}
    for k, g in grads["reference"].items():
        np.testing.assert_allclose(grads["numba"][k], g, rtol=1e-8, atol=1e-10, err_msg=k)


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason=f"Fashion-MNIST not installed at {FASHION_DIR}")
def test_cli_train_backend_numba(tmp_path):
    from fdaref.cli.main import main
    out = tmp_path / "run"
    assert main(["train", "--backend", "numba", "--model", "tiny", "--dataset", "fashion-mnist", "--subset", "96",
                 "--test-subset", "64", "--epochs", "1", "--batch-size", "32", "--out", str(out), "--quiet"]) == 0
    assert (out / "checkpoint.npz").is_file()
    from fdaref.train.checkpoint import load_checkpoint
    assert load_checkpoint(out / "checkpoint.npz")["config"]["backend"] == "numba"
