"""Bit-packed export and inference (fdaref.packed, `fdaref export`, `fdaref evaluate --packed`): the packed model
gives the same predictions as the float-simulated model (fdaref.nn in eval mode), and is ~32x smaller for the
binary layers."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fdaref import nn
from fdaref.autodiff import Tensor, no_grad
from fdaref.packed import (PackedModelError, _PackedLayer, _xnor_backend, export_packed, load_packed, pack_flat,
                           sign_planes, unpack_flat)
from fdaref.presets import BinaryOptions
from fdaref.train.checkpoint import save_checkpoint
from fdaref.train.config import TrainConfig

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
HAVE_FASHION = os.path.isdir(FASHION_DIR)


def _randomize_bn(model, rng):
    """Give the batch norms trained-looking statistics so that eval outputs are not degenerate."""
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm):
            c = m.num_features
            dt = m.running_mean.numpy().dtype
            m.running_mean.data = rng.normal(0, 0.5, c).astype(dt)
            m.running_var.data = rng.uniform(0.5, 3.0, c).astype(dt)
            m.weight.data = rng.uniform(0.5, 1.5, c).astype(dt)
            m.bias.data = rng.normal(0, 0.3, c).astype(dt)


def make_checkpoint(tmp: Path, *, model: str = "tiny", dtype: str = "float64", preset: str = "paper",
                    scale: str | None = None, seed: int = 0) -> tuple[Path, object]:
    """A checkpoint in the training loop's format (config, model state, data normalisation, position)."""
    from fdaref.data import dataset_info
    from fdaref.train.factory import build_model
    cfg = TrainConfig(model=model, dataset="fashion-mnist", dtype=dtype, preset=preset, scale=scale, seed=seed,
                      epochs=1).resolved()
    m = build_model(cfg, dataset_info(cfg.dataset))
    _randomize_bn(m, np.random.default_rng(seed + 1))
    path = save_checkpoint(tmp / f"{model}-{dtype}-{preset}.npz", {
        "config": cfg.to_dict(), "model": m.state_dict(), "data": {"mean": np.array([0.286]), "std": np.array([0.353])},
        "position": {"epoch": 1}})
    m.eval()
    return path, m


def float_logits(model, x: np.ndarray, ops=None) -> np.ndarray:
    with no_grad():
        return model(Tensor.from_numpy(x, ops)).numpy()


def test_flat_bits_roundtrip():
    rng = np.random.default_rng(0)
    for n in (1, 63, 64, 65, 1000):
        s = np.where(rng.random(n) < 0.5, -1.0, 1.0).reshape(-1)
        words = pack_flat(s)
        assert words.dtype == np.uint64 and words.size == -(-n // 64)
        assert bool(words[0] & np.uint64(1)) == (s[0] < 0)  # SEMANTICS 9: bit 0 of word 0 is element 0
        np.testing.assert_array_equal(unpack_flat(words, (n,)), s)
    with pytest.raises(PackedModelError, match="words"):
        unpack_flat(np.zeros(3, np.uint64), (64,))


def test_sign_planes_mean_is_sign():
    t = np.array([-2.0, 0.0, 3.0, -0.0])
    for zero in (-1.0, 0.0, 1.0):
        planes = sign_planes(t, zero)
        want = np.where(t > 0, 1.0, np.where(t < 0, -1.0, zero))
        np.testing.assert_array_equal(np.mean(planes, axis=0), want)
        assert all(set(np.unique(p)) <= {-1.0, 1.0} for p in planes)


@pytest.mark.parametrize("backend", ["numba", "reference"])
@pytest.mark.parametrize("zero", [-1.0, 0.0, 1.0])
@pytest.mark.parametrize("pad_value", [0.0, -1.0, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_layer_equals_float_layer(backend, zero, pad_value, dtype):
    """A binary conv / linear in eval mode vs its packed forward, every sign convention and padding value,
    channel counts that do not fill a word; exact zeros in the input and the weights."""
    if backend == "numba":
        pytest.importorskip("numba")
    be = _xnor_backend(backend)
    rng = np.random.default_rng(int(zero * 3 + pad_value * 7) + 20)
    opts = BinaryOptions(zero=zero, pad_value=pad_value, scale="channel")
    conv = nn.BinaryConv2d(5, 3, 3, stride=1, padding=1, bias=True, options=opts, rng=rng, dtype=dtype).eval()
    lin = nn.BinaryLinear(70, 4, bias=True, options=opts, rng=rng, dtype=dtype).eval()
    conv.weight.data[0, 0, 0, 0] = 0.0
    lin.weight.data[1, 3] = 0.0
    x = rng.standard_normal((2, 5, 6, 6)).astype(dtype)
    x[0, :, 1, 1] = 0.0
    xl = rng.standard_normal((3, 70)).astype(dtype)
    xl[:, 5] = 0.0
    for layer, inp in ((conv, x), (lin, xl)):
        with no_grad():
            want = layer(Tensor.from_numpy(inp)).numpy()
        w = layer.weight.numpy()
        info = {"kind": "conv2d" if layer is conv else "linear", "zero": zero, "weight_shape": list(w.shape),
                "pad_value": pad_value, "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1]}
        from fdaref.reference import REFERENCE
        s = REFERENCE.weight_scale(w, "channel").reshape(-1)
        packed = _PackedLayer(layer, info, sign_planes(w, zero), s, be)
        # numba's conv layers hold their weights prepared once (prepare_xnor_conv2d), and use them
        assert (packed.prepared is not None) == (backend == "numba" and layer is conv)
        with no_grad():
            got = packed(Tensor.from_numpy(inp)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)


def test_export_size_resnet20(tmp_path, capsys):
    """Each size against its float counterpart: resnet20's binary layers shrink ~32x (1 bit per weight plus one
    float scale per output channel); the whole model and the file less, since the float layers stay as they are;
    never against the checkpoint, which also holds the optimizer state."""
    from fdaref.cli.main import main
    ck, model = make_checkpoint(tmp_path, model="resnet20", dtype="float32")
    out = tmp_path / "model.npz"
    assert main(["export", "--checkpoint", str(ck), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    rep = export_packed(ck, tmp_path / "again.npz")
    # 18 binary 3x3 convs: 6 of 16 -> 16 (the first one of stage 1 included), 32 <- 16 once, 5 of 32 -> 32, ...
    binary_weights = 9 * (6 * 16 * 16 + 32 * 16 + 5 * 32 * 32 + 64 * 32 + 5 * 64 * 64)
    assert rep.binary_float_bytes == 4 * binary_weights
    bits_and_scales = 8 * sum(-(-w // 64) for w in _binary_weight_counts(model)) + 4 * (6 * 16 + 6 * 32 + 6 * 64)
    assert rep.binary_packed_bytes == bits_and_scales
    noise = {k for k in model.state_dict() if k.rsplit(".", 1)[-1] in ("w_noise1", "w_noise2", "a_noise1", "a_noise2")}
    float_rest = sum(v.nbytes for k, v in model.state_dict().items() if k not in noise) - 4 * binary_weights
    assert rep.float_bytes == float_rest
    with np.load(out) as z:   # the file holds exactly those bytes of weights, plus metadata and zip headers
        assert sum(z[k].nbytes for k in z.files if k != "__meta__") == bits_and_scales + float_rest
    assert 29 <= rep.binary_ratio <= 32, rep.summary()
    assert rep.model_ratio == pytest.approx((4 * binary_weights + float_rest) / (bits_and_scales + float_rest))
    assert rep.float_file_bytes > 4 * binary_weights + float_rest > rep.packed_file_bytes
    assert rep.file_ratio < rep.model_ratio < rep.binary_ratio
    assert f"-> {bits_and_scales:,} bytes as bits + scales ({rep.binary_ratio:.1f}x smaller)" in text
    assert f"{4 * binary_weights + float_rest:,} -> {bits_and_scales + float_rest:,} bytes ({rep.model_ratio:.1f}x" in text
    assert f"the file: {rep.float_file_bytes:,} bytes with float weights -> {out.stat().st_size:,} bytes" in text
    assert "x smaller" not in text.split("the training checkpoint")[1]     # no ratio against the checkpoint


def _binary_weight_counts(model) -> list[int]:
    return [m.weight.numpy().size for _, m in model.named_modules() if isinstance(m, nn.BinaryConv2d)]


@pytest.mark.parametrize("dtype,preset,scale", [("float64", "paper", None), ("float32", "paper", None),
                                                ("float64", "bibench", None), ("float32", "release", "layer")])
def test_packed_predictions_equal_float_model(tmp_path, dtype, preset, scale):
    """Same predictions as the float-simulated model on the same op table (random images; every preset's sign
    convention)."""
    ck, model = make_checkpoint(tmp_path, dtype=dtype, preset=preset, scale=scale)
    out = tmp_path / "m.npz"
    export_packed(ck, out)
    pm = load_packed(out)
    assert pm.xnor_backend.name in ("numba", "numpy")
    x = np.random.default_rng(5).standard_normal((64, 1, 28, 28)).astype(dtype)
    want = float_logits(model.to(pm.ops), x, pm.ops)
    got = pm.predict(x)
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST not installed at {FASHION_DIR}")
def test_evaluate_packed_on_test_set_equals_float(tmp_path):
    """`fdaref evaluate --packed` path (evaluate_packed) on 2000 Fashion-MNIST test images vs the float model."""
    from fdaref.packed import evaluate_packed
    from fdaref.train.evaluation import evaluate, load_trained, test_loader
    ck, _ = make_checkpoint(tmp_path, dtype="float64")
    out = tmp_path / "m.npz"
    export_packed(ck, out)
    res = evaluate_packed(out, test_subset=2000, batch_size=500)
    run = load_trained(ck, backend=res["xnor_backend"])
    loader = test_loader(run, batch_size=500, test_subset=2000)
    preds = []
    with no_grad():
        for x, _ in loader.epoch(0):
            preds.append(run.model(Tensor.from_numpy(x, run.ops)).numpy().argmax(1))
    np.testing.assert_array_equal(res["predictions"], np.concatenate(preds))
    assert res["accuracy"] == pytest.approx(evaluate(run.model, loader, run.ops).accuracy)


def test_load_errors(tmp_path):
    with pytest.raises(PackedModelError, match="not found"):
        load_packed(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(PackedModelError, match="not a fdaref packed model"):
        load_packed(bad)
