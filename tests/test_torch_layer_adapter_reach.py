"""What check_torch_layer reaches: wrong torch FDA layers it must fail, and a correct one it must pass.

``Good`` is a paper-preset FDA binary conv layer written here, independent of fdaref: sign(0) = -1 and
sign(NaN) = NaN, n + 1 cosines without a clip, both noise modules added with weight alpha in training only
(SEMANTICS 4: in eval, and at alpha = 0, the module is not evaluated: its weights get no gradient, and an
input of +-inf gives +-1, not 0 * e(inf) = NaN). Each wrong layer
changes one thing of it, as ports and deployment code do.
"""
from __future__ import annotations

import math
import os

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from fdaref.conformance.adapters import TorchLayerMapping, check_torch_layer  # noqa: E402

OMEGA = 0.1
PAPER = {"zero": -1.0, "estimator": "fda", "omega": OMEGA, "eta_kind": "sin", "a": 0.1, "k": 64,
         "scale": "channel", "pad_value": 0.0, "eval_noise": False}


def fda(x, n, terms=None):
    """Eq. 10 with ``terms`` cosines (n + 1 by default), summed in float64."""
    x64 = x.double()
    s = sum(torch.cos((2 * i + 1) * OMEGA * x64) for i in range((n + 1) if terms is None else terms))
    return ((4 * OMEGA / math.pi) * s).to(x.dtype)


class Sign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, n):
        ctx.save_for_backward(x)
        ctx.n = int(n)
        return torch.where(x > 0, 1.0, -1.0).to(x.dtype).where(~x.isnan(), x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * fda(x, ctx.n), None


class Noise(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = torch.nn.Linear(d, max(1, d // 64), bias=False)
        self.fc2 = torch.nn.Linear(max(1, d // 64), d, bias=False)

    def forward(self, rows):
        return self.fc2(F.relu(self.fc1(rows))) + 0.1 * torch.sin(rows)


class Good(torch.nn.Module):
    sign = Sign

    def __init__(self, cin, cout, k, stride, padding, bias):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = torch.nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = torch.nn.Parameter(torch.zeros(cout)) if bias else None
        self.noise_w, self.noise_a = Noise(cin * k * k), Noise(cin)
        self.n, self.alpha = 9, 0.1

    def noise(self, t, module, rows, unrows):
        return self.alpha * unrows(module(rows(t)))

    def quantize(self, t, module, rows, unrows):
        q = self.sign.apply(t, self.n)
        return q + self.noise(t, module, rows, unrows) if self.training and self.alpha != 0 else q

    def activation_rows(self, x):
        return x.movedim(1, -1)

    def forward(self, x):
        w = self.weight
        qw = self.quantize(w, self.noise_w, lambda t: t.reshape(len(t), -1), lambda r: r.reshape(w.shape))
        qx = self.quantize(x, self.noise_a, self.activation_rows, lambda r: r.movedim(-1, 1))
        scale = w.abs().mean(dim=(1, 2, 3), keepdim=True).detach()
        return F.conv2d(qx, qw * scale, self.bias, self.stride, self.padding)


class GoodLinear(Good):
    def __init__(self, cin, cout, bias):
        torch.nn.Module.__init__(self)
        self.weight = torch.nn.Parameter(torch.randn(cout, cin))
        self.bias = torch.nn.Parameter(torch.zeros(cout)) if bias else None
        self.noise_w, self.noise_a = Noise(cin), Noise(cin)
        self.n, self.alpha = 9, 0.1

    def forward(self, x):
        w = self.weight
        qw, qx = (self.quantize(t, m, lambda r: r, lambda r: r) for t, m in ((w, self.noise_w), (x, self.noise_a)))
        return F.linear(qx, qw * w.abs().mean(dim=1, keepdim=True).detach(), self.bias)


def factory(cls, sign=None):
    mapping = TorchLayerMapping(weight_noise=("noise_w.fc1.weight", "noise_w.fc2.weight"),
                                activation_noise=("noise_a.fc1.weight", "noise_a.fc2.weight"), sign=sign,
                                implements=PAPER)
    if issubclass(cls, GoodLinear):
        def make(cin, cout, bias):
            return cls(cin, cout, bias)
    else:
        def make(cin, cout, k, stride, padding, bias):
            return cls(cin, cout, k, stride, padding, bias)
    make.fdaref_mapping, make.__qualname__ = mapping, cls.__name__
    return make


def check(cls, dtypes=("float64",), sign=None):
    kind = "linear" if issubclass(cls, GoodLinear) else "conv2d"
    return check_torch_layer(factory(cls, sign), kind=kind, preset="paper", dtypes=dtypes, raise_on_failure=False)


def failed_outputs(report):
    """The names of the failing comparisons over the report's layer cases."""
    return {d["output"] for r in report.failures() for d in r.diffs if not d["ok"]}


def test_a_correct_layer_passes_in_both_dtypes_with_no_gradient_reaching_the_module_in_eval():
    for cls in (Good, GoodLinear):
        report = check(cls, dtypes=("float64", "float32"))
        assert report.ok(), report.render()
        evals = [r for r in report.results if ", eval" in r.check]
        assert evals and all(r.outcome == "pass" for r in evals)
    # and its sign Function passes the sign table's sign and surrogate
    report = check(Good, sign=Sign.apply)
    assert report.ok() and {"sign", "surrogate"} <= {r.op for r in report.results if r.outcome == "pass"}


# --- the sign forward: NaN, tiny values ------------------------------------------------------------------

class WhereSign(Sign):   # torch.where(x > 0, 1, -1): NaN -> -1, the most common sign in the wild
    @staticmethod
    def forward(ctx, x, n):
        ctx.save_for_backward(x)
        ctx.n = int(n)
        return torch.where(x > 0, 1.0, -1.0).to(x.dtype)


class EpsSign(Sign):     # a threshold: subnormals and tiny normals -> -1
    @staticmethod
    def forward(ctx, x, n):
        ctx.save_for_backward(x)
        ctx.n = int(n)
        return torch.where(x > 1e-20, 1.0, -1.0).to(x.dtype).where(~x.isnan(), x)


class NanToMinusOne(Good):
    sign = WhereSign


class TinyToMinusOne(Good):
    sign = EpsSign


def test_sign_of_nan_is_checked_in_eval_where_the_module_is_not_evaluated():
    report = check(NanToMinusOne)
    assert not report.ok()
    assert all("input with a NaN" in r.check and ", eval" in r.check for r in report.failures())
    assert "output" in failed_outputs(report)
    # given the sign Function, the sign table sees it op by op too
    assert any(r.op == "sign" for r in check(NanToMinusOne, sign=WhereSign.apply).failures())


def test_tiny_and_subnormal_inputs_reach_the_sign():
    report = check(TinyToMinusOne)
    assert not report.ok() and "output" in failed_outputs(report)
    assert any(r.op == "sign" for r in check(TinyToMinusOne, sign=EpsSign.apply).failures())


# --- state and inputs survive a call -----------------------------------------------------------------------

class FoldsWeights(Good):     # deployment code: the binarized, scaled weight written over self.weight
    def forward(self, x):
        if not self.training and not torch.is_grad_enabled():
            with torch.no_grad():
                w = self.weight
                w.copy_(torch.where(w > 0, 1.0, -1.0) * w.abs().mean(dim=(1, 2, 3), keepdim=True))
            return F.conv2d(self.sign.apply(x, self.n), self.weight, self.bias, self.stride, self.padding)
        return super().forward(x)


class BinarizesItsInput(Good):   # "saves memory" in inference: the caller's input binarized in place
    def forward(self, x):
        if not torch.is_grad_enabled():
            x.copy_(self.sign.apply(x, self.n))
        return super().forward(x)


class AnnealsPerCall(Good):      # a per-iteration schedule inside forward
    def forward(self, x):
        out = super().forward(x)
        self.alpha, self.n = self.alpha * 0.5, self.n + 1
        return out


def test_a_forward_must_leave_parameters_attributes_and_its_input_as_they_were():
    assert "weight after the forward without autograd" in failed_outputs(check(FoldsWeights))
    assert "input after the forward without autograd" in failed_outputs(check(BinarizesItsInput))
    annealed = failed_outputs(check(AnnealsPerCall))
    assert {"alpha after a repeated forward with autograd", "n after a repeated forward with autograd"} <= annealed


class CountsCalls(Good):         # a public call counter: a repeated call changes it again
    def forward(self, x):
        self.calls = getattr(self, "calls", 0) + 1
        return super().forward(x)


class PacksSignsForInference(Good):   # deployment: a registered buffer of the weight's signs, refreshed per call
    def __init__(self, *args):
        super().__init__(*args)
        self.register_buffer("packed", torch.zeros_like(self.weight))

    def forward(self, x):
        with torch.no_grad():
            self.packed.copy_(torch.where(self.weight > 0, 1.0, -1.0))
        return super().forward(x)


def test_a_cache_a_forward_refreshes_passes_where_a_counter_does_not():
    assert "calls after a repeated forward with autograd" in failed_outputs(check(CountsCalls))
    assert check(PacksSignsForInference, dtypes=("float64", "float32")).ok()


# --- the no-grad forward in training, and a non-contiguous input -------------------------------------------

class NoGradDropsNoise(Good):    # "no gradient needed, skip the module": wrong in training mode
    def quantize(self, t, module, rows, unrows):
        q = self.sign.apply(t, self.n)
        return q + self.noise(t, module, rows, unrows) if self.training and torch.is_grad_enabled() else q


class AssumesContiguous(Good):   # a custom kernel's rows: as_strided over a contiguous NCHW input
    def activation_rows(self, x):
        b, c, h, w = x.shape
        return torch.as_strided(x, (b, h, w, c), (c * h * w, w, 1, h * w))


def test_the_forward_without_autograd_runs_in_training_on_a_channels_last_input():
    channels_last = "output without autograd, channels-last input"
    for cls, failing in ((NoGradDropsNoise, {channels_last, "output in inference mode after new parameters (written "
                                                            "in place)"}),
                         (AssumesContiguous, {channels_last})):
        report = check(cls)
        assert not report.ok()
        assert failed_outputs(report) == failing, cls
        assert all(", train" in r.check and "alpha=0)" not in r.check for r in report.failures())


# --- the schedule: every n from 9 to 18, and large |x| --------------------------------------------------------

class OddNMissesATerm(Good):     # a kernel unrolled by two: n terms instead of n + 1 for odd n > 9
    class sign(Sign):
        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            n = ctx.n
            return g * fda(x, n, terms=n if n > 9 and n % 2 else n + 1), None


class ClipsLargeX(Good):         # a hard-coded "safety" clip: no gradient where |x| > 4 (the paper has none)
    class sign(Sign):
        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * fda(x, ctx.n) * (x.abs() <= 4).to(x.dtype), None


def test_every_n_of_the_schedule_and_large_inputs_reach_the_backward():
    report = check(OddNMissesATerm)
    odd = {int(r.check.split("(n=")[1].split(",")[0]) for r in report.failures()}
    assert odd == {11, 13, 15, 17}
    assert failed_outputs(check(ClipsLargeX)) >= {"grad input"}


# --- the command line checks both dtypes unless --dtype is given ---------------------------------------------

class Noise32(Noise):
    def forward(self, rows):
        rows = rows.float()
        hidden = F.relu(F.linear(rows, self.fc1.weight.float()))
        return F.linear(hidden, self.fc2.weight.float()) + 0.1 * torch.sin(rows)


class AlwaysFloat32(GoodLinear):  # right in float32, and in float32 whatever it is given
    def __init__(self, *args):
        super().__init__(*args)
        self.noise_w.__class__ = self.noise_a.__class__ = Noise32

    def forward(self, x):
        w = self.weight.float()
        qw = self.quantize(w, self.noise_w, lambda r: r, lambda r: r)
        qx = self.quantize(x.float(), self.noise_a, lambda r: r, lambda r: r)
        bias = None if self.bias is None else self.bias.float()
        return F.linear(qx, qw * w.abs().mean(dim=1, keepdim=True).detach(), bias).to(x.dtype)


make_always_float32 = factory(AlwaysFloat32)


def test_conform_cli_checks_float64_too_unless_a_dtype_is_given(monkeypatch, capsys):
    from fdaref.cli.main import main
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    module = os.path.splitext(os.path.basename(__file__))[0]
    layer = ["conform", "--torch-layer", f"{module}:make_always_float32", "--layer-kind", "linear", "--preset", "paper"]
    assert main(layer + ["--dtype", "float32"]) == 0
    capsys.readouterr()
    assert main(layer) == 1
    out = capsys.readouterr().out
    assert "in float64,float32" in out
    assert "[FAIL] binary_linear on AlwaysFloat32 (cpu, float64)" in out and "(cpu, float32)" not in out


# --- inference caches, registration, initialisation, relu'(0) --------------------------------------------------

class CachesInferenceWeight(Good):   # the binarized, scaled weight cached on the first inference call
    def forward(self, x):
        if self.training or torch.is_grad_enabled():
            return super().forward(x)
        key = self.cache_key()
        if getattr(self, "_cached", (None,))[0] != key:
            w = self.weight
            self._cached = (key, (self.sign.apply(w, self.n) * w.abs().mean(dim=(1, 2, 3), keepdim=True)).detach())
        return F.conv2d(self.sign.apply(x, self.n), self._cached[1], self.bias, self.stride, self.padding)

    def cache_key(self):             # never invalidated
        return 0


class CachesByStorage(CachesInferenceWeight):   # keyed by the storage, which an in-place update keeps
    def cache_key(self):
        return self.weight.data_ptr()


class CachesByVersion(CachesInferenceWeight):   # keyed by the version counter: right
    def cache_key(self):
        return self.weight.data_ptr(), self.weight._version


def test_an_inference_cache_must_see_parameters_updated_in_place():
    stale = {"output in inference mode after new parameters (written in place)"}
    assert failed_outputs(check(CachesInferenceWeight)) == stale
    assert failed_outputs(check(CachesByStorage)) == stale
    assert check(CachesByVersion, dtypes=("float64", "float32")).ok()


class UnregisteredNoise(Good):   # noise modules the optimizer never sees: kept outside nn.Module's registry
    def __init__(self, *args):
        super().__init__(*args)
        noise_w, noise_a = self.noise_w, self.noise_a
        del self.noise_w, self.noise_a
        self.__dict__.update(noise_w=noise_w, noise_a=noise_a)

    def to(self, *args, **kwargs):   # moved by hand, so that every comparison but the registry passes
        for module in (self.noise_w, self.noise_a):
            module.to(*args, **kwargs)
        return super().to(*args, **kwargs)


def test_every_mapped_parameter_must_be_among_the_modules_parameters():
    assert failed_outputs(check(UnregisteredNoise)) == {f"noise_{m}.fc{i}.weight registered" for m in "wa" for i in "12"}


def _reinit(fill):
    class Reinit(Good):
        def __init__(self, *args):
            super().__init__(*args)
            with torch.no_grad():
                for noise in (self.noise_w, self.noise_a):
                    fill(noise.fc1.weight, noise.fc2.weight)
    Reinit.__name__ = Reinit.__qualname__ = fill.__name__
    return Reinit


def zero_w2(w1, w2):
    w2.zero_()


def kaiming_relu(w1, w2):       # sqrt(6 / fan_in): values past the bound 1 / sqrt(fan_in)
    for w in (w1, w2):
        torch.nn.init.kaiming_uniform_(w, nonlinearity="relu")


def w2_by_fan_out(w1, w2):      # W2 ~ U(+-1/sqrt(d)), within its bound but far too narrow
    w2.uniform_(-w2.shape[0] ** -0.5, w2.shape[0] ** -0.5)


def normal_w1(w1, w2):          # a normal draw of the uniform's standard deviation
    w1.normal_(0.0, w1.shape[1] ** -0.5 / math.sqrt(3))


@pytest.mark.parametrize("fill", [zero_w2, kaiming_relu, w2_by_fan_out, normal_w1])
def test_the_noise_modules_initialisation_is_checked(fill):
    report = check(_reinit(fill))
    assert [r.check.split(":")[0] for r in report.failures()] == ["initialisation"]


class ClampNoise(Noise):         # clamp(min=0) for relu: its gradient at 0 is 1, relu's is 0
    def forward(self, rows):
        return self.fc2(self.fc1(rows).clamp(min=0)) + 0.1 * torch.sin(rows)


class ClampLinear(GoodLinear):
    def __init__(self, *args):
        super().__init__(*args)
        self.noise_w.__class__ = self.noise_a.__class__ = ClampNoise


def test_relu_gradient_at_zero_is_reached_in_a_linear_layer():
    assert {"grad input", "grad w_noise1 (noise_w.fc1.weight)"} <= failed_outputs(check(ClampLinear))


# --- the seventh round: tails, weights past 1, state between calls, other ways to turn autograd off ------------

class NoiseOnFirst16Filters(Good):   # one block of 16 output channels gets the weight module, the rest none
    def quantize(self, t, module, rows, unrows):
        out = super().quantize(t, module, rows, unrows)
        if t is self.weight and self.training and self.alpha != 0 and len(t) > 16:
            out = torch.cat([out[:16], self.sign.apply(t[16:], self.n)])
        return out


class NoiseOnFullBatchTiles(Good):   # batches in tiles of 4 samples; a partial last tile gets no module
    def quantize(self, t, module, rows, unrows):
        out = super().quantize(t, module, rows, unrows)
        if t is not self.weight and len(t) % 4:
            keep = len(t) - len(t) % 4
            out = torch.cat([out[:keep], self.sign.apply(t[keep:], self.n)])
        return out


class ClampsWeights(Good):          # BinaryConnect's habit: weights clamped to [-1, 1] in every forward
    def forward(self, x):
        with torch.no_grad():
            self.weight.clamp_(-1, 1)
        return super().forward(x)


class NoGradientPastTwoPi(Good):    # "spurious lobes": no gradient where |omega x| > 2 pi
    class sign(Sign):
        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * fda(x, ctx.n) * ((OMEGA * x).abs() <= 2 * math.pi).to(x.dtype), None


class RunningScaleForEval(Good):    # a moving average of the scale kept in training, used in eval
    def forward(self, x):
        s = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True).detach()
        if self.training:
            self._running = s if getattr(self, "_running", None) is None else 0.9 * self._running + 0.1 * s
            return super().forward(x)
        qx, qw = self.sign.apply(x, self.n), self.sign.apply(self.weight, self.n)
        return F.conv2d(qx, qw * getattr(self, "_running", s), self.bias, self.stride, self.padding)


class ReusesOutputBuffer(Good):     # inference writes every result into one preallocated tensor
    def forward(self, x):
        out = super().forward(x)
        if torch.is_grad_enabled():
            return out
        if getattr(self, "_out", None) is None or self._out.shape != out.shape or self._out.dtype != out.dtype:
            self._out = torch.empty_like(out)
        return self._out.copy_(out)


class SeedsTheGlobalGenerator(Good):   # torch.manual_seed(0) "for reproducible noise"
    def forward(self, x):
        torch.manual_seed(0)
        return super().forward(x)


class InferenceModeDropsScale(Good):   # a deployment path under torch.inference_mode() forgets the scale
    def forward(self, x):
        if torch.is_inference_mode_enabled():
            return F.conv2d(self.sign.apply(x, self.n), self.sign.apply(self.weight, self.n), self.bias,
                            self.stride, self.padding)
        return super().forward(x)


class LearnableEta(Good):           # the shortcut's a made a parameter (trained; the paper's a is fixed)
    def __init__(self, *args):
        super().__init__(*args)
        self.eta_a = torch.nn.Parameter(torch.tensor(0.0))

    def noise(self, t, module, rows, unrows):
        return super().noise(t, module, rows, unrows) + self.alpha * self.eta_a * torch.sin(t)


@pytest.mark.parametrize("cls, failing", [
    (NoiseOnFirst16Filters, "grad w_noise1 (noise_w.fc1.weight)"), (NoiseOnFullBatchTiles, "output"),
    (ClampsWeights, "weight after the forward with autograd"), (NoGradientPastTwoPi, "grad input"),
    (RunningScaleForEval, "output"), (ReusesOutputBuffer, "output without autograd, read again after the later calls"),
    (SeedsTheGlobalGenerator, "torch's global random generator"),
    (InferenceModeDropsScale, "output in inference mode after new parameters (written in place)"),
    (LearnableEta, "eta_a (a parameter of the module)")], ids=lambda v: getattr(v, "__name__", ""))
def test_the_seventh_rounds_layers_fail(cls, failing):
    assert failing in failed_outputs(check(cls))


class NoiseAsOneByOneConv(Good):    # the per-pixel module as two 1x1 convolutions: weights (m, C, 1, 1), right
    def __init__(self, *args):
        super().__init__(*args)
        c = self.weight.shape[1]
        m = max(1, c // 64)
        self.noise_a = torch.nn.Module()
        self.noise_a.fc1 = torch.nn.Conv2d(c, m, 1, bias=False)
        self.noise_a.fc2 = torch.nn.Conv2d(m, c, 1, bias=False)

    def quantize(self, t, module, rows, unrows):
        if module is not self.noise_a:
            return super().quantize(t, module, rows, unrows)
        q = self.sign.apply(t, self.n)
        if not self.training or self.alpha == 0:
            return q
        return q + self.alpha * (module.fc2(F.relu(module.fc1(t))) + 0.1 * torch.sin(t))


def test_noise_weights_of_a_one_by_one_conv_map():
    assert check(NoiseAsOneByOneConv, dtypes=("float64", "float32")).ok()


# --- dilation and (h, w) pairs, where the mapping declares the factory takes them ------------------------------

class GoodPairs(Good):              # kernel, stride and padding as (h, w) pairs, and a dilation
    def __init__(self, cin, cout, k, stride, padding, bias, dilation=1):
        kh, kw = (k, k) if isinstance(k, int) else k
        super().__init__(cin, cout, 1, stride, padding, bias)
        self.weight = torch.nn.Parameter(torch.randn(cout, cin, kh, kw))
        self.noise_w = Noise(cin * kh * kw)
        self.dilation = dilation

    def forward(self, x):
        w = self.weight
        qw = self.quantize(w, self.noise_w, lambda t: t.reshape(len(t), -1), lambda r: r.reshape(w.shape))
        qx = self.quantize(x, self.noise_a, self.activation_rows, lambda r: r.movedim(-1, 1))
        scale = w.abs().mean(dim=(1, 2, 3), keepdim=True).detach()
        return F.conv2d(qx, qw * scale, self.bias, self.stride, self.padding, self.dilation)


class IgnoresDilation(GoodPairs):
    def __init__(self, *args):
        super().__init__(*args)
        self.dilation = 1


class SwapsStride(GoodPairs):       # a (sh, sw) stride applied as (sw, sh)
    def __init__(self, *args):
        super().__init__(*args)
        if not isinstance(self.stride, int):
            self.stride = tuple(reversed(self.stride))


def check_pairs(cls):
    mapping = TorchLayerMapping(weight_noise=("noise_w.fc1.weight", "noise_w.fc2.weight"),
                                activation_noise=("noise_a.fc1.weight", "noise_a.fc2.weight"), implements=PAPER,
                                dilation=True, pairs=True)
    make = lambda *args: cls(*args)  # noqa: E731
    make.__qualname__ = cls.__name__
    return check_torch_layer(make, mapping=mapping, preset="paper", dtypes=("float64",), raise_on_failure=False)


def test_dilation_and_pairs_run_where_declared():
    good = check_pairs(GoodPairs)
    assert good.ok() and any("dilation 2" in r.check for r in good.results if r.outcome == "pass")
    for cls, where in ((IgnoresDilation, "dilation 2"), (SwapsStride, "3x2")):
        failures = check_pairs(cls).failures()
        assert failures and all(where in r.check for r in failures), cls
    undeclared = check(Good)
    assert [r.outcome for r in undeclared.results if "dilation" in r.check] == ["declined"]


# --- a layer's own schedule method, named in the mapping, is checked at every run length -----------------------

class OwnSchedule(Good):
    def set_schedule(self, epoch, epochs):
        self.n = 9 + (9 * epoch) // max(1, epochs - 1) if epochs > 1 else 18      # SEMANTICS 6
        self.alpha = 0.05 * (1 + math.cos(math.pi * (epoch + 1) / epochs))
        if epoch == epochs - 1:
            self.alpha = 0.0


class FloatStepSchedule(OwnSchedule):   # n = 9 + int(e * (9 / (E - 1))): a float step that rounds down
    def set_schedule(self, epoch, epochs):
        super().set_schedule(epoch, epochs)
        if epochs > 1:
            self.n = 9 + int(epoch * (9 / (epochs - 1)))


def test_a_layers_own_schedule_is_checked_at_every_run_length():
    def run(cls):
        mapping = TorchLayerMapping(weight_noise=("noise_w.fc1.weight", "noise_w.fc2.weight"),
                                    activation_noise=("noise_a.fc1.weight", "noise_a.fc2.weight"), implements=PAPER,
                                    schedule="set_schedule")
        make = factory(cls)
        make.fdaref_mapping = mapping
        return check_torch_layer(make, preset="paper", dtypes=("float64",), raise_on_failure=False)
    good = run(OwnSchedule)
    assert good.ok() and {"schedule n_e", "schedule alpha_e"} <= {r.op for r in good.results}
    assert {r.op for r in run(FloatStepSchedule).failures()} == {"schedule n_e"}
