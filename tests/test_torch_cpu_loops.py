"""The torch backend's fused numba loops (backends/torch/cpu_loops.py) against float64 numpy formulas, and the
torch backend's quantizer with the loops on and off against the reference."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

from fdaref import estimators, quantizer  # noqa: E402
from fdaref.backends.torch import backend as TB  # noqa: E402
from fdaref.backends.torch import cpu_loops  # noqa: E402

F32_EPS = 2.0 ** -24


def _inputs(rng: np.random.Generator, omega: float) -> np.ndarray:
    """Where a port of the closed form slips: its zeros and poles (t = k pi, exactly and one float32 ulp
    off), signed zeros, subnormals, the largest covered values, and bulk values at three scales."""
    k = np.arange(-40, 41)
    edge = np.float32(cpu_loops.COVER_X * min(1.0, math.pi / omega))
    edge = edge if float(edge) <= cpu_loops.COVER_X * min(1.0, math.pi / omega) else np.nextafter(edge, np.float32(0))
    poles = (k * math.pi / omega).astype(np.float32)
    special = np.concatenate([
        poles, np.nextafter(poles, np.float32(np.inf)), np.nextafter(poles, np.float32(-np.inf)),
        (poles + np.float32(math.pi / (2 * omega))).astype(np.float32),
        np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, -3e-39, 1e-7, -1e-7], np.float32),
        np.array([edge, -edge], np.float32),
    ]).astype(np.float32)
    bulk = np.concatenate([rng.standard_normal(4000) * s for s in (0.5, 3.0, 300.0)]).astype(np.float32)
    return np.concatenate([special, bulk])


@pytest.mark.parametrize("n,omega", [(0, 0.1), (9, 0.1), (18, 0.1), (18, 1.0), (100, 0.37), (4, 7.5)])
@pytest.mark.parametrize("cos_coef", (0.0, 0.01, -2.5))
def test_fda_cos_matches_float64(n, omega, cos_coef):
    x = _inputs(np.random.default_rng(n), omega)
    g = np.random.default_rng(1).standard_normal(x.size).astype(np.float32)
    xt = torch.from_numpy(x)
    assert cpu_loops.covers(xt, omega)
    got = cpu_loops.fda_cos_into(torch.empty_like(xt), xt, torch.from_numpy(g), n, omega, cos_coef).numpy()
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    want = g64 * (estimators.fda(x64, n=n, omega=omega) + cos_coef * np.cos(x64))
    # float32 result of a float64 computation: a few ulp of the largest term, per element
    bound = 4 * F32_EPS * np.abs(g64) * (estimators.fda_peak(n, omega) + abs(cos_coef))
    err = np.abs(got.astype(np.float64) - want)
    assert (err <= bound).all(), f"worst {err.max():.3g} at x={x[np.argmax(err - bound)]!r}"


LAYOUTS = {"nchw": lambda t: t, "channels_last": lambda t: t.contiguous(memory_format=torch.channels_last),
           "strided": lambda t: torch.stack([t, t], -1)[..., 0]}   # neither: the loops take an NCHW copy


def _fused_case(seed: int, c: int, m: int, omega: float = 0.1):
    """Activations with the closed form's poles and zeros of sign (k pi / omega, +-0), bulk at two scales."""
    rng = np.random.default_rng(seed)
    t = (rng.standard_normal((3, c, 5, 6)) * rng.choice([0.5, 30.0], (3, c, 5, 6))).astype(np.float32)
    flat = t.reshape(-1)
    flat[:21] = (np.arange(-10, 11) * math.pi / omega).astype(np.float32)
    flat[21:24] = (0.0, -0.0, 1e-45)
    g = rng.standard_normal(t.shape).astype(np.float32)
    w1 = (rng.standard_normal((c, m)) / math.sqrt(c)).astype(np.float32)
    w2 = (rng.standard_normal((m, c)) / math.sqrt(m)).astype(np.float32)
    return t, g, w1, w2


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("c,m", [(5, 2), (16, 1)])
@pytest.mark.parametrize("zero", (-1.0, 0.0, 1.0))
def test_fused_forward_matches_float64(layout, c, m, zero):
    t, _, w1, w2 = _fused_case(c + m, c, m)
    alpha, a = 0.3, 0.1
    x = LAYOUTS[layout](torch.from_numpy(t))
    z, h = cpu_loops.quantize_forward(x, torch.from_numpy(w1), torch.from_numpy(w2), zero, alpha, alpha * a)
    want = quantizer.quantize_forward(t.astype(np.float64), w1, w2, alpha=alpha, zero=zero, layout="activation",
                                      eta_kind="sin", a=a, training=True)
    hidden = np.maximum(np.einsum("bcp,cj->bjp", t.reshape(3, c, -1).astype(np.float64), w1), 0.0)
    assert np.abs(z.numpy() - want).max() <= 8 * F32_EPS * np.abs(want).max()
    assert np.abs(h.numpy() - hidden).max() <= 1e-6 * max(1.0, hidden.max())
    assert z.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")
    assert h.shape == (3, m, 30)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("c,m,n,omega", [(5, 2, 9, 0.1), (16, 1, 18, 0.1), (16, 1, 0, 1.0)])
def test_fused_backward_matches_float64(layout, c, m, n, omega):
    t, g, w1, w2 = _fused_case(c + n, c, m, omega)
    alpha, a = 0.3, 0.1
    x, gx = LAYOUTS[layout](torch.from_numpy(t)), LAYOUTS[layout](torch.from_numpy(g))
    w1t, w2t = torch.from_numpy(w1), torch.from_numpy(w2)
    _, h = cpu_loops.quantize_forward(x, w1t, w2t, -1.0, alpha, alpha * a)
    got = cpu_loops.quantize_backward(gx, x, h, w1t, w2t, n, omega, alpha * a, alpha)
    want = quantizer.quantize_backward(g.astype(np.float64), t.astype(np.float64), w1, w2, alpha=alpha,
                                       estimator="fda", params={"n": n, "omega": omega, "clip": None},
                                       layout="activation", eta_kind="sin", a=a)
    for name, got_, want_ in zip(("dt", "dw1", "dw2"), got, want):
        assert got_.shape == want_.shape, name
        assert np.abs(got_.numpy() - want_).max() <= 2e-6 * np.abs(want_).max(), name
    assert got[0].is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")


@pytest.mark.parametrize("bad", (math.nan, math.inf, 2.0 * cpu_loops.COVER_X))
def test_fused_quantizer_refuses_what_it_does_not_cover(bad):
    t, g, w1, w2 = _fused_case(0, 5, 2)
    t[1, 2, 3, 4] = bad
    x, w1t, w2t = torch.from_numpy(t), torch.from_numpy(w1), torch.from_numpy(w2)
    assert cpu_loops.quantize_forward(x, w1t, w2t, -1.0, 0.3, 0.03) is None
    h = torch.zeros((3, 2, 30))
    assert cpu_loops.quantize_backward(torch.from_numpy(g), x, h, w1t, w2t, 9, 0.1, 0.03, 0.3) is None
    assert cpu_loops.quantize_backward(torch.from_numpy(g), torch.full_like(x, 1e5), h, w1t, w2t, 9, 1.0, 0.03,
                                       0.3) is None   # within COVER_X, but |x omega / pi| beyond it


def test_fused_quantizer_applies_only_to_float32_cpu_images(monkeypatch):
    assert cpu_loops.fused_quantizer_applies(torch.zeros(2, 3, 4, 4))
    assert not cpu_loops.fused_quantizer_applies(torch.zeros(2, 3, 4, 4, dtype=torch.float64))
    assert not cpu_loops.fused_quantizer_applies(torch.zeros(2, 3, 4))
    assert not cpu_loops.fused_quantizer_applies(torch.zeros(0, 3, 4, 4))
    monkeypatch.setenv("FDAREF_TORCH_LOOPS", "0")
    assert not cpu_loops.fused_quantizer_applies(torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize("bad", (math.nan, math.inf, -math.inf, 2.0 * cpu_loops.COVER_X))
def test_covers_refuses_what_the_loops_do_not_handle(bad):
    x = torch.zeros(10)
    assert cpu_loops.covers(x)
    x[3] = bad
    assert not cpu_loops.covers(x)


def test_covers_refuses_other_tensors(monkeypatch):
    assert not cpu_loops.covers(torch.zeros(4, dtype=torch.float64))
    assert not cpu_loops.covers(torch.zeros(4, 4).T)                 # not contiguous
    assert not cpu_loops.covers(torch.zeros(0))
    assert not cpu_loops.covers(torch.full((3,), 1000.0), omega=1e3)  # |x omega / pi| beyond the cover
    monkeypatch.setenv("FDAREF_TORCH_LOOPS", "0")
    assert not cpu_loops.covers(torch.zeros(4))


def _activation_case(rng, scale):
    t = (rng.standard_normal((6, 5, 7, 7)) * scale).astype(np.float32)
    t[0, 0, 0, :3] = 0.0                            # the zero convention on the fused path
    w1 = (rng.standard_normal((5, 2)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((2, 5)) * 0.3).astype(np.float32)
    return t, w1, w2


@pytest.mark.parametrize("loops", ("1", "0"))
@pytest.mark.parametrize("scale", (1.0, 3e5))       # 3e5: beyond the cover, the torch kernels take over
@pytest.mark.parametrize("eta", ("sin", "linear"))  # sin: the fused quantizer; linear: the blocked path
@pytest.mark.parametrize("layout", ("nchw", "channels_last"))
def test_quantizer_with_and_without_loops_matches_reference(monkeypatch, loops, scale, eta, layout):
    """The activation quantizer of the torch op table (fused loops, the blocked CPU path), loops on and off,
    against the reference in float64."""
    monkeypatch.setenv("FDAREF_TORCH_LOOPS", loops)
    rng = np.random.default_rng(3)
    t, w1, w2 = _activation_case(rng, scale)
    g = rng.standard_normal(t.shape).astype(np.float32)
    kw = dict(alpha=0.07, layout="activation", eta_kind=eta, a=0.1)
    params = {"n": 13, "omega": 0.1, "clip": None}
    tt, gt = LAYOUTS[layout](torch.from_numpy(t)), LAYOUTS[layout](torch.from_numpy(g))
    w1t, w2t = torch.from_numpy(w1), torch.from_numpy(w2)
    z = TB.quantize_forward(tt, w1t, w2t, zero=1.0, training=True, **kw)
    want_z = quantizer.quantize_forward(t.astype(np.float64), w1, w2, zero=1.0, training=True, **kw)
    assert np.abs(z.numpy() - want_z).max() <= 4 * F32_EPS * np.abs(want_z).max()
    got = TB.quantize_backward(gt, tt, w1t, w2t, estimator="fda", params=params, **kw)
    want = quantizer.quantize_backward(g.astype(np.float64), t.astype(np.float64), w1, w2, estimator="fda",
                                       params=params, **kw)
    for name, a_, b_ in zip(("dt", "dw1", "dw2"), got, want):
        tol = 1e-5 * max(1.0, np.abs(b_).max())
        assert np.abs(a_.numpy() - b_).max() <= tol, name


def test_without_numba_the_loops_are_off(monkeypatch):
    """The torch backend imports without numba (cpu_loops.njit is None then): covers() and
    fused_quantizer_applies() are False everywhere, so every caller takes the torch kernels."""
    monkeypatch.setattr(cpu_loops, "njit", None)
    assert not cpu_loops.enabled()
    assert not cpu_loops.covers(torch.zeros(8))
    assert not cpu_loops.fused_quantizer_applies(torch.zeros(2, 3, 4, 4))
