"""Adapters: plain callables, a torch sign Function / quantizer module / layer / model against the reference."""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from fdaref.conformance.adapters import check_quantizer, check_sign, check_surrogate  # noqa: E402

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "torch_layer")


def fda_numpy(x, n, omega=0.1, clip=1.0):
    """Eq. 10 summed term by term, zero outside the clip: written here, independent of fdaref."""
    x = np.asarray(x, np.float64)
    g = sum(np.cos((2 * i + 1) * omega * x) for i in range(n + 1)) * (4 * omega / math.pi)
    return np.where(np.abs(x) > clip, 0.0, g)


def test_check_sign_passes_and_names_the_zero_convention():
    assert check_sign(np.sign, zero=0.0).ok()
    with pytest.raises(AssertionError, match=r"sign on sign .*\n(.*\n)*.*got 0\.0, reference -1\.0"):
        check_sign(np.sign, zero=-1.0)


def test_check_surrogate_draws_every_n_and_fails_n_terms():
    report = check_surrogate(lambda x, n: fda_numpy(x, n).astype(x.dtype), estimator="fda",
                             params={"omega": 0.1, "clip": 1.0}, n_arg="n")
    assert report.ok() and report.counts["pass"] >= 2
    bad = check_surrogate(lambda x, n: fda_numpy(x, n - 1).astype(x.dtype), estimator="fda",
                          params={"omega": 0.1, "clip": 1.0}, n_arg="n", raise_on_failure=False)
    assert not bad.ok() and all(r.op == "surrogate" for r in bad.failures())
    assert "'estimator': 'fda'" in bad.failures()[0].render()


def test_check_quantizer_forward_with_numpy_callables():
    def forward(t, w1, w2, *, alpha, layout, training):
        z = np.where(t > 0, 1.0, np.where(np.isnan(t), t, -1.0))   # sign(NaN) = NaN (SEMANTICS 10)
        if not training or w1 is None or alpha == 0:
            return z.astype(t.dtype)
        rows = np.moveaxis(t, 1, -1).reshape(-1, t.shape[1]) if layout == "activation" and t.ndim == 4 \
            else t.reshape(t.shape[0], -1)   # weights (C_out, ...) and 2-d activations (B, C): a row each
        e = np.maximum(rows.astype(np.float64) @ w1, 0) @ w2 + 0.1 * np.sin(rows)
        if layout == "activation" and t.ndim == 4:
            e = np.moveaxis(e.reshape(t.shape[0], t.shape[2], t.shape[3], t.shape[1]), -1, 1)
        return (z + alpha * e.reshape(t.shape)).astype(t.dtype)

    assert check_quantizer(forward, zero=-1.0, eta_kind="sin", a=0.1).ok()
    wrong = check_quantizer(lambda t, w1, w2, **kw: forward(t, w1, w2, **{**kw, "training": True}),
                            zero=-1.0, raise_on_failure=False)
    assert not wrong.ok()
    failure = wrong.failures()[0]
    assert failure.op == "quantize_forward" and failure.kwargs["training"] is False


torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def example():
    sys.path.insert(0, os.path.abspath(EXAMPLE))
    import check_layer
    yield check_layer
    sys.path.remove(os.path.abspath(EXAMPLE))


@pytest.fixture(scope="module")
def nan_sign(example):
    """The example's FDASign with sign(NaN) = NaN (SEMANTICS 10); the example's torch.sign gives 0 there."""
    class NanSign(example.FDASign):
        @staticmethod
        def forward(ctx, x, n):
            return example.FDASign.forward(ctx, x, n).where(~x.isnan(), x)
    return NanSign


@pytest.fixture(scope="module")
def bibench_layer(example, nan_sign):
    """The example's BiBench-style layer with ``nan_sign``: (its class, its mapping)."""
    from dataclasses import replace

    class Layer(example.FDAConv2d):
        sign = nan_sign
    return Layer, replace(example.MAPPING, sign=nan_sign.apply)


def test_the_shipped_example_fails_only_on_the_sign_of_nan_op_by_op_and_in_the_layer(example):
    from fdaref.conformance.adapters import check_torch_layer
    report = check_torch_layer(example.make_layer, preset="bibench", dtypes=("float64",), raise_on_failure=False)
    assert {r.op for r in report.failures()} == {"sign", "binary_conv2d"}
    assert all("input with a NaN" in r.check for r in report.failures() if r.op == "binary_conv2d")
    assert all("reference nan" in r.message for r in report.failures())


def test_bibench_style_layer_passes_bibench_with_its_declared_differences(bibench_layer):
    from fdaref.conformance.adapters import check_torch_layer
    layer, mapping = bibench_layer
    report = check_torch_layer(lambda *a: layer(*a), mapping=mapping, kind="conv2d", preset="bibench",
                               dtypes=("float64", "float32"))
    assert report.ok()
    refused = [r for r in report.results if r.outcome == "declined" and "dilation" not in r.check]
    assert refused and all("eval_noise=True" in r.message and "eval" in r.check for r in refused)
    geometry = [r for r in report.results if r.outcome == "declined" and "dilation" in r.check]
    assert len(geometry) == 1 and "dilation / pairs=True" in geometry[0].message
    checked = [r for r in report.results if r.op == "binary_conv2d" and r.outcome == "pass"]
    names = {d["output"] for r in checked for d in r.diffs}
    assert {"output", "grad input", "grad weight (weight)", "grad w_noise1 (noise_w.fc1.weight)",
            "grad a_noise2 (noise_a.fc2.weight)", "grad bias (bias)"} <= names
    assert {"sign", "surrogate"} <= {r.op for r in report.results if r.outcome == "pass"}


def test_the_same_layer_is_declined_under_the_paper_preset(example):
    from fdaref.conformance.adapters import check_torch_layer
    report = check_torch_layer(example.make_layer, preset="paper", dtypes=("float64",))
    assert [r.outcome for r in report.results] == ["declined"]
    assert "zero = 0.0 only, not -1.0" in report.results[0].message and "clip" in report.results[0].message


def test_wrong_layer_fails_naming_the_op_and_the_difference(example):
    from fdaref.conformance.adapters import check_torch_layer
    with pytest.raises(AssertionError) as info:
        check_torch_layer(example.make_wrong_layer, preset="bibench", dtypes=("float64",))
    text = str(info.value)
    assert "[FAIL] binary_conv2d on WrongFDAConv2d" in text and "grad input" in text
    assert "the forward matches; only gradients differ" in text
    assert "[FAIL] surrogate on make_wrong_layer sign" in text and "'estimator': 'fda'" in text


def _forward_padded(layer, forward, x, pads, value):
    """``forward(x)`` of a conv layer on x padded by hand (``pads`` as torch.nn.functional.pad takes them)
    instead of by the layer's own symmetric padding: the padding bugs of ports, planted."""
    padding, layer.padding = layer.padding, (0, 0)
    try:
        return forward(torch.nn.functional.pad(x, pads, value=value))
    finally:
        layer.padding = padding


def _factory(cls, bibench_layer):
    def make(cin, cout, k, stride, padding, bias):
        return cls(cin, cout, k, stride, padding, bias)
    make.fdaref_mapping = bibench_layer[1]
    return make


def test_a_same_padding_port_fails_at_stride_two(bibench_layer):
    """A port of TensorFlow's "SAME" padding: with stride 2 it pads only the bottom and right. Stride 1 is
    unchanged, so only a geometry that combines stride 2 with padding shows it."""
    from fdaref.conformance.adapters import check_torch_layer

    class SamePadding(bibench_layer[0]):
        def forward(self, x):
            if self.stride[0] == 1 or not self.padding[0]:
                return super().forward(x)
            p = self.padding[0]
            return _forward_padded(self, super().forward, x, (0, 2 * p, 0, 2 * p), 0.0)

    report = check_torch_layer(_factory(SamePadding, bibench_layer), preset="bibench", dtypes=("float64",),
                               raise_on_failure=False)
    failed = {r.check.split(";")[0] for r in report.failures()}
    assert failed == {"layer: 3 -> 33, 3x3, stride 2, pad 1, bias"}, failed


def test_a_sign_backward_that_ignores_the_upstream_gradient_fails(example):
    """The sign table runs backward with an upstream gradient of random signs and powers of two."""
    from fdaref.conformance.adapters import run_wrapped, torch_sign_table

    class IgnoresG(example.FDASign):
        @staticmethod
        def backward(ctx, grad):
            return example.FDASign.backward(ctx, torch.ones_like(grad))

    good = torch_sign_table(example.FDASign.apply, zero=0.0, params={"omega": 0.1, "clip": 1.0})
    bad = torch_sign_table(IgnoresG.apply, zero=0.0, params={"omega": 0.1, "clip": 1.0})
    assert run_wrapped(good, ["surrogate"], dtype="float64", raise_on_failure=False).ok()
    assert not run_wrapped(bad, ["surrogate"], dtype="float64", raise_on_failure=False).ok()


def test_an_inference_path_without_autograd_is_checked_too(bibench_layer):
    """A layer that takes another path when autograd is off (an XNOR kernel, say) and pads it with -1: in
    eval and in training."""
    from fdaref.conformance.adapters import check_torch_layer

    class InferencePadsMinusOne(bibench_layer[0]):
        def forward(self, x):
            if torch.is_grad_enabled() or not self.padding[0]:
                return super().forward(x)
            p = self.padding[0]
            return _forward_padded(self, super().forward, x, (p, p, p, p), -1.0)

    report = check_torch_layer(_factory(InferencePadsMinusOne, bibench_layer), preset="bibench",
                               dtypes=("float64",), raise_on_failure=False)
    failed = report.failures()
    assert {", eval" in r.check for r in failed} == {True, False}
    no_grad = ["output without autograd, channels-last input",
               "output in inference mode after new parameters (written in place)"]
    assert all([d["output"] for d in r.diffs if not d["ok"]] == no_grad for r in failed)


def test_torch_quantizer_module_through_the_runner(nan_sign):
    from fdaref.conformance.adapters import TorchQuantizerMapping, run_wrapped, torch_quantizer_table, torch_sign_table
    from bibench_style import Noise
    FDASign = nan_sign

    class Quantizer(torch.nn.Module):
        def __init__(self, d, layout, bug=False):
            super().__init__()
            self.noise, self.layout, self.n, self.alpha, self.bug = Noise(d), layout, 9, 0.1, bug

        def forward(self, t):
            if not self.training or self.alpha == 0:   # z = sign(t) exactly (SEMANTICS 4), NaN and all
                return FDASign.apply(t, self.n)
            rows = t.movedim(1, -1) if self.layout == "activation" else t.reshape(t.shape[0], -1)
            e = self.noise(rows)
            e = e.movedim(-1, 1) if self.layout == "activation" else e.reshape(t.shape)
            return FDASign.apply(t, self.n) + (1.0 if self.bug else self.alpha) * e

    mapping = TorchQuantizerMapping(w1="noise.fc1.weight", w2="noise.fc2.weight", implements={
        "zero": 0.0, "estimator": "fda", "omega": 0.1, "clip": 1.0, "eta_kind": "sin", "a": 0.1, "k": 64})
    good = torch_quantizer_table(lambda d, layout: Quantizer(d, layout), mapping, label="bibench quantizer")
    report = run_wrapped(good, ["quantize_forward", "quantize_backward"], dtype="float64", preset="bibench")
    assert report.ok() and report.counts["pass"] >= 4
    bad = torch_quantizer_table(lambda d, layout: Quantizer(d, layout, bug=True), mapping, label="alpha ignored")
    report = run_wrapped(bad, ["quantize_backward"], dtype="float64", preset="bibench", raise_on_failure=False)
    assert not report.ok() and report.failures()[0].op == "quantize_backward"

    class EvalStraightThrough(Quantizer):   # deployment: in eval, sign with an identity backward
        def forward(self, t):
            return super().forward(t) if self.training else t + (FDASign.apply(t, self.n) - t).detach()
    ste = torch_quantizer_table(lambda d, layout: EvalStraightThrough(d, layout), mapping, label="eval ste")
    report = run_wrapped(ste, ["quantize_backward"], dtype="float64", preset="bibench", raise_on_failure=False)
    assert not report.ok() and all("in eval the backward must be that of sign" in f.message for f in report.failures())

    class InPlaceSign(FDASign):            # the backward multiplies its incoming gradient in place
        @staticmethod
        def backward(ctx, g):
            return g.mul_(FDASign.backward(ctx, torch.ones_like(g))[0]), None
    table = torch_sign_table(InPlaceSign.apply, zero=0.0, params={"omega": 0.1, "clip": 1.0})
    report = run_wrapped(table, ["surrogate"], dtype="float64", preset="bibench", raise_on_failure=False)
    assert not report.ok() and all("wrote into its incoming gradient" in f.message for f in report.failures())


def _torch_tiny(example, width=4, classes=3):
    nn = torch.nn
    w = width
    return nn.Sequential(nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.PReLU(), nn.MaxPool2d(2),
                         example.FDAConv2d(w, 2 * w, 3, 1, 1, False), nn.PReLU(), nn.BatchNorm2d(2 * w), nn.MaxPool2d(2),
                         example.FDAConv2d(2 * w, 2 * w, 3, 1, 1, False), nn.PReLU(), nn.BatchNorm2d(2 * w),
                         nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(2 * w, classes))


def _names(reference):
    names, transposed = {}, []
    for key in reference.state_dict():
        layer, _, rest = key.partition(".")
        if "noise" in rest:
            path = f"{layer}.noise_{rest[0]}.fc{rest[-1]}.weight"
            transposed.append(key)
        else:
            path = key
        names[key] = path
    return names, transposed


def test_whole_model_against_the_reference_model(example):
    import fdaref
    from fdaref import nn
    from fdaref.conformance.adapters import check_torch_model
    reference = nn.tiny(in_channels=1, num_classes=3, options=fdaref.get_preset("bibench"), width=4)
    names, transposed = _names(reference)

    def schedule(model, ref):
        nn.set_schedule(ref, 3, 10)
        layer = nn.binary_layers(ref)[0]
        for m in model.modules():
            if isinstance(m, example.FDAConv2d):
                m.n = layer.params["n"]
                m.alpha.fill_(layer.alpha)

    report = check_torch_model(_torch_tiny(example), reference, names, (2, 1, 8, 8), transposed=transposed,
                               schedule=schedule)
    assert report.ok()
    assert any(d["output"].startswith("grad 8.a_noise1") for d in report.results[0].diffs)
    missing = dict(names)
    del missing["12.bias"]
    report = check_torch_model(_torch_tiny(example), reference, missing, (2, 1, 8, 8), transposed=transposed,
                               raise_on_failure=False)
    assert not report.ok() and "12.bias" in report.results[0].message
    # batch norm with momentum 0.01: output and gradients agree, the running statistics after the step do not
    slow = _torch_tiny(example)
    slow[1].momentum = 0.01
    report = check_torch_model(slow, reference, names, (2, 1, 8, 8), transposed=transposed, schedule=schedule,
                               raise_on_failure=False)
    assert not report.ok() and "only buffers differ" in report.results[0].message
    assert {d["output"] for d in report.results[0].diffs if not d["ok"]} == {
        "buffer 1.running_mean (1.running_mean) after the step", "buffer 1.running_var (1.running_var) after the step"}
    # a batch norm that stays in training mode after model.eval() updates its statistics in eval
    frozen = _torch_tiny(example)
    frozen[6].train = lambda mode=True: frozen[6]
    report = check_torch_model(frozen, reference, names, (2, 1, 8, 8), transposed=transposed, schedule=schedule,
                               raise_on_failure=False)
    assert [r.check for r in report.failures()] == ["eval: a forward leaves parameters and buffers as they were"]
    assert "6.running_mean" in report.failures()[0].message


def test_conform_cli_torch_layer(example, capsys):
    """(tests/test_torch_layer_adapter_reach.py: a layer that passes, and the dtypes checked.)"""
    from fdaref.cli.main import main
    assert main(["conform", "--torch-layer", "check_layer:make_wrong_layer", "--preset", "bibench",
                 "--dtype", "float64"]) == 1
    assert "[FAIL] binary_conv2d" in capsys.readouterr().out
    assert main(["conform", "--torch-layer", "check_layer:no_such_factory"]) == 2
    assert "has no attribute 'no_such_factory'" in capsys.readouterr().err


def test_a_binary_linear_layer_and_the_reproduction_of_a_failure(example, nan_sign):
    from bibench_style import Noise
    from fdaref.conformance.adapters import TorchLayerMapping, check_torch_layer
    F = torch.nn.functional

    class FDALinear(torch.nn.Linear):  # BiBench's conventions on a linear layer; rows: one per sample
        def __init__(self, fin, fout, bias, leak_scale=False):
            super().__init__(fin, fout, bias=bias)
            self.noise_w, self.noise_a, self.n, self.alpha = Noise(fin), Noise(fin), 9, 0.1
            self.leak_scale = leak_scale

        def forward(self, x):
            w = self.weight
            bw, ba = nan_sign.apply(w, self.n), nan_sign.apply(x, self.n)
            if self.alpha != 0:   # z = sign(t) exactly at alpha = 0 (0 * e(inf) would be NaN)
                bw, ba = bw + self.alpha * self.noise_w(w), ba + self.alpha * self.noise_a(x)
            scale = w.abs().mean(dim=1, keepdim=True)
            return F.linear(ba, bw * (scale if self.leak_scale else scale.detach()), self.bias)

    mapping = TorchLayerMapping(weight_noise=("noise_w.fc1.weight", "noise_w.fc2.weight"),
                                activation_noise=("noise_a.fc1.weight", "noise_a.fc2.weight"),
                                implements=example.BIBENCH)
    good = check_torch_layer(lambda i, o, b: FDALinear(i, o, b), kind="linear", mapping=mapping, preset="bibench")
    # 3 geometries x (first, last and 3, 3, 2 of the 8 middle epochs in training, last epoch in eval, NaN),
    # plus the first geometry at the 10,000-epoch run's last nonzero alpha, x 2 dtypes; and the initialisation
    assert good.ok() and sum(r.outcome == "pass" for r in good.results) == 2 * (3 * 4 + 8 + 1) + 1
    bad = check_torch_layer(lambda i, o, b: FDALinear(i, o, b, leak_scale=True), kind="linear", mapping=mapping,
                            preset="bibench", dtypes=("float64",), raise_on_failure=False)
    failure = bad.failures()[0]
    assert failure.op == "binary_linear" and "grad weight (weight)" in failure.message
    assert "grad input" not in failure.message   # only the weight's gradient sees the leaking scale
    assert "check_torch_layer(" in failure.reproduction and "kind='linear'" in failure.reproduction


@pytest.mark.parametrize("preset", ["paper", "bibench", "release"])
def test_fdarefs_own_torch_layers_pass_the_layer_check_through_their_set_schedule(preset):
    """backends/torch/modules.py is checked like anyone's layer: its own set_schedule sets n and alpha (the
    mapping's ``schedule``), its noise weights are stored (d, m) / (m, d), and its init is SEMANTICS 3's."""
    torch = pytest.importorskip("torch")  # noqa: F841
    from fdaref.backends.torch.modules import FDAConv2d, FDALinear
    from fdaref.conformance.adapters import TorchLayerMapping, check_torch_layer
    from fdaref.presets import get_preset
    options = get_preset(preset)
    noise = {"weight_noise": ("w_quant.noise.w1", "w_quant.noise.w2"),
             "activation_noise": ("a_quant.noise.w1", "a_quant.noise.w2")} if options.noise else {}
    mapping = TorchLayerMapping(**noise, noise_as_linear=False, n="w_quant.n", alpha="w_quant.alpha",
                                schedule="set_schedule", dilation=True, pairs=True)
    conv = check_torch_layer(lambda i, o, k, s, p, b, d=1: FDAConv2d(i, o, k, s, p, d, bias=b, options=options),
                             mapping=mapping, preset=preset, raise_on_failure=False)
    linear = check_torch_layer(lambda i, o, b: FDALinear(i, o, b, options=options), kind="linear",
                               mapping=mapping, preset=preset, raise_on_failure=False)
    for report in (conv, linear):
        assert report.ok(), report.render()
        checks = [r.check for r in report.results if r.outcome == "pass"]
        assert any(c.startswith("initialisation") for c in checks) == bool(options.noise)
        assert sum(c.startswith("layer:") for c in checks) >= 2 * 3 * 4
        wanted = {"schedule n_e", "schedule alpha_e"} if options.uses_n else {"schedule alpha_e"}
        assert not [r for r in report.results if r.outcome == "declined"]   # dilation and pairs run too
        assert {r.op for r in report.results if r.outcome == "pass"} >= wanted
