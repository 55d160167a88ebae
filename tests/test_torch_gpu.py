"""CUDA checks of the torch backend (marked ``gpu``; they skip cleanly where torch sees no CUDA device).

The op table runs every op on CUDA and is compared with the same op on the CPU (which test_torch_ops.py
checks against the reference) with TF32 off, as the conformance suite runs it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fdaref.estimators import fda, fda_peak  # noqa: E402

from fdaref.backends.torch import backend as TB  # noqa: E402
from fdaref.backends.torch import fda_grad, fda_grad_compiled, ieee_fp32  # noqa: E402
from fdaref.backends.torch import modules as M  # noqa: E402

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")]

DTYPES = ("float32", "float64")
TOL = {"float32": 1e-5, "float64": 1e-11}


def _both(a: np.ndarray):
    return TB.from_numpy(a, "cpu"), TB.from_numpy(a, "cuda")


def _close(cpu, gpu, dtype: str, mag: float = 1.0) -> None:
    c, g = TB.to_numpy(cpu).astype(np.float64), TB.to_numpy(gpu).astype(np.float64)
    assert c.shape == g.shape
    assert np.array_equal(np.isnan(c), np.isnan(g))
    ok = ~np.isnan(c)
    assert np.abs(c[ok] - g[ok]).max(initial=0.0) <= TOL[dtype] * mag


def test_devices_and_refusals():
    assert "cuda" in TB.devices
    assert TB.refuses("conv2d_forward", "cuda", "float32") is None


def test_conformance_context_turns_tf32_off():
    with TB.conformance_context():
        conv = getattr(torch.backends.cudnn, "conv", None)
        if conv is not None and hasattr(conv, "fp32_precision"):
            assert conv.fp32_precision == "ieee"
            assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        else:
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize("dtype", DTYPES)
def test_fda_on_cuda_matches_reference(dtype):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(100000) * 30, [k * math.pi / 0.1 for k in range(-9, 10)],
                        [0.0, np.inf, np.nan]]).astype(dtype)
    want = fda(x.astype(np.float64), 18, 0.1)
    for fn in (fda_grad, fda_grad_compiled):
        try:
            got = fn(torch.from_numpy(x).cuda(), 18, 0.1).cpu().double().numpy()
        except Exception as exc:  # torch.compile needs Triton; the eager kernel must work regardless
            if fn is fda_grad_compiled:
                pytest.skip(f"torch.compile unavailable on this GPU setup: {exc}")
            raise
        ok = ~np.isnan(want)
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.abs(got[ok] - want[ok]).max() <= {"float32": 2e-5, "float64": 1e-12}[dtype] * fda_peak(18, 0.1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_op_on_cuda_matches_cpu(dtype):
    rng = np.random.default_rng(1)
    a = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    x, w, b = a(2, 8, 9, 9), a(4, 8, 3, 3), a(4)
    geo = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1))
    t4, w1, w2 = a(2, 8, 5, 5), a(8, 2), a(2, 8)
    with ieee_fp32():
        checks = []
        for pad in (0.0, -1.0):
            checks.append(("conv2d_forward", (x, w, b), dict(**geo, pad_value=pad), 72))
            g = a(2, 4, 9, 9)
            checks.append(("conv2d_backward", (g, x, w), dict(**geo, pad_value=pad, has_bias=True), 200))
        checks += [
            ("sign", (x,), {"zero": -1.0}, 1), ("surrogate", (x,), {"estimator": "fda", "params": {"n": 18}}, 3),
            ("noise_forward", (t4, w1, w2), dict(layout="activation", eta_kind="sin", a=0.1), 20),
            ("noise_backward", (t4, t4, w1, w2), dict(layout="activation", eta_kind="sin", a=0.1), 50),
            ("quantize_forward", (t4, w1, w2), dict(alpha=0.1, zero=-1.0, layout="activation", eta_kind="sin",
                                                    a=0.1, training=True), 5),
            ("quantize_backward", (t4, t4, w1, w2), dict(alpha=0.1, estimator="fda", params={"n": 9},
                                                         layout="activation", eta_kind="sin", a=0.1), 50),
            ("weight_scale", (w,), {"mode": "channel"}, 1),
            ("linear_forward", (a(5, 7), a(3, 7), a(3)), {}, 20),
            ("linear_backward", (a(5, 3), a(5, 7), a(3, 7)), {"has_bias": True}, 20),
            ("batch_norm_forward", (x, a(8), a(8), a(8), np.abs(a(8)) + 0.5),
             dict(training=True, momentum=0.1, eps=1e-5), 20),
            ("relu_forward", (x,), {}, 1), ("relu_backward", (x, x), {}, 1),
            ("prelu_forward", (x, a(1)), {}, 1), ("prelu_backward", (x, x, a(1)), {}, 500),
            ("max_pool2d_forward", (x,), dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1)), 1),
            ("max_pool2d_backward", (a(2, 8, 5, 5), x), dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1)), 5),
            ("avg_pool2d_forward", (x,), dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0)), 1),
            ("avg_pool2d_backward", (a(2, 8, 4, 4), x), dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0)), 1),
        ]
        for name, args, kw, mag in checks:
            cpu_args = [TB.from_numpy(v, "cpu") for v in args]
            gpu_args = [TB.from_numpy(v, "cuda") for v in args]
            c, g = getattr(TB, name)(*cpu_args, **kw), getattr(TB, name)(*gpu_args, **kw)
            c, g = (c, g) if isinstance(c, tuple) else ((c,), (g,))
            for ci, gi in zip(c, g):
                if ci is None:
                    assert gi is None, name
                else:
                    assert gi.is_cuda, name
                    _close(ci, gi, dtype, mag)
        logits, labels = a(6, 5), rng.integers(0, 5, 6).astype(np.int64)
        for f in ("cross_entropy_forward",):
            _close(getattr(TB, f)(TB.from_numpy(logits), TB.from_numpy(labels), label_smoothing=0.1),
                   getattr(TB, f)(TB.from_numpy(logits, "cuda"), TB.from_numpy(labels, "cuda"),
                                  label_smoothing=0.1), dtype)


def test_bit_ops_on_cuda_are_exact():
    rng = np.random.default_rng(2)
    x = np.sign(rng.standard_normal((2, 70, 6, 6)))
    w = np.sign(rng.standard_normal((3, 70, 3, 3)))
    outs = []
    for dev in ("cpu", "cuda"):
        xp = TB.pack_signs(TB.from_numpy(x, dev), axis=1, zero=-1.0)
        wp = TB.pack_signs(TB.from_numpy(w, dev), axis=1, zero=-1.0)
        outs.append((TB.to_numpy(xp), TB.to_numpy(TB.xnor_conv2d(xp, wp, channels=70, stride=(1, 1),
                                                                    padding=(1, 1), dilation=(1, 1),
                                                                    pad_value=0.0))))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def test_resnet20_trains_on_cuda_and_matches_cpu_forward():
    model = M.resnet20(seed=0).double()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    model.eval()
    with torch.no_grad(), ieee_fp32():
        cpu = model(x)
        gpu = model.cuda()(x.cuda()).cpu()
    assert (cpu - gpu).abs().max().item() < 1e-6 * max(1.0, cpu.abs().max().item()) or \
        (cpu.argmax(1) == gpu.argmax(1)).float().mean() >= 0.75  # sign flips of exact-zero sums may differ
    model = M.resnet20(seed=0).cuda().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    xb, yb = torch.randn(32, 3, 32, 32, device="cuda"), torch.randint(0, 10, (32,), device="cuda")
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def _engine_trainer(tmp_path, device: str, **kw):
    from fdaref.data import make_splits
    from fdaref.data.synthetic import synthetic_dataset
    from fdaref.train import TrainConfig, Trainer
    cfg = TrainConfig(model="tiny", dataset="mnist", epochs=2, batch_size=16, lr=0.05, seed=0, out=str(tmp_path),
                      backend="torch", device=device, engine="torch", **kw)
    splits = make_splits(synthetic_dataset(64, seed=1), synthetic_dataset(24, seed=2), seed=0, val_fraction=0.25)
    return Trainer(cfg, progress=False, splits=splits, log=lambda s: None)


def test_torch_engine_step_has_no_host_sync_on_cuda(tmp_path):
    """A training step of the torch engine on CUDA never waits for the device (sync debug mode 'error'
    raises on any synchronising call: .item(), a device-to-host copy, a data-dependent shape)."""
    trainer = _engine_trainer(tmp_path, "cuda")
    trainer._setup()
    engine = trainer.engine
    engine.set_schedule(0, 2)
    batches = list(engine.batches(trainer.train_loader, 0, 0))
    assert batches[0][0].device.type == "cuda"
    engine.train_step(*batches[0], 0.05)       # first step: lazy CUDA initialisation may synchronise
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x, y in batches[1:]:
            engine.train_step(x, y, 0.05)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    loss_sum, correct, seen = engine.read_stats()
    assert math.isfinite(loss_sum) and seen == 16 * len(batches) and 0 <= correct <= seen


def test_torch_engine_run_on_cuda_is_read_by_the_reference(tmp_path):
    """A short run of the torch engine on CUDA completes; its checkpoint (reference format) loads into the
    numpy reference model, which predicts what the CUDA model predicts."""
    from fdaref import autodiff as ad
    from fdaref.train import load_checkpoint, load_trained
    trainer = _engine_trainer(tmp_path, "cuda")
    assert trainer.run().status == "complete"
    run = load_trained(tmp_path / "checkpoint.npz", backend="numpy", device="cpu")
    x = next(iter(trainer.test_loader.epoch(0)))[0]
    with ad.no_grad():
        ref = run.model(ad.Tensor.from_numpy(x)).numpy()
    model = trainer.engine.model.eval()
    with torch.no_grad():
        gpu = model(torch.from_numpy(x).cuda()).cpu().numpy()
    assert np.abs(gpu - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())
    assert load_checkpoint(tmp_path / "checkpoint.npz")["config"]["device"] == "cuda"


def test_fdarefs_torch_layers_pass_the_layer_check_on_cuda():
    """The torch layer adapter on CUDA (the layer moved there, its inputs made there), TF32 off: fdaref's own
    layers pass as on the CPU (tests/test_adapters.py), so a path taken only on CUDA is checked there."""
    from fdaref.conformance.adapters import TorchLayerMapping, check_torch_layer
    from fdaref.presets import get_preset
    options = get_preset("paper")
    mapping = TorchLayerMapping(weight_noise=("w_quant.noise.w1", "w_quant.noise.w2"),
                                activation_noise=("a_quant.noise.w1", "a_quant.noise.w2"), noise_as_linear=False,
                                n="w_quant.n", alpha="w_quant.alpha", schedule="set_schedule", dilation=True,
                                pairs=True)
    with ieee_fp32():
        conv = check_torch_layer(lambda i, o, k, s, p, b, d=1: M.FDAConv2d(i, o, k, s, p, d, bias=b, options=options),
                                 mapping=mapping, preset="paper", device="cuda", raise_on_failure=False)
        linear = check_torch_layer(lambda i, o, b: M.FDALinear(i, o, b, options=options), kind="linear",
                                   mapping=mapping, preset="paper", device="cuda", raise_on_failure=False)
    for report in (conv, linear):
        assert report.ok(), report.render()
        assert any(r.device.startswith("cuda") for r in report.results if r.check.startswith("layer:"))
