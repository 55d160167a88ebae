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


@pytest.mark.parametrize("zero", (-1.0, 0.0, 1.0))
@pytest.mark.parametrize("coef", (0.0, 0.01, 3.0))
def test_sign_sin_matches_float64(zero, coef):
    x = _inputs(np.random.default_rng(7), 1.0)
    xt = torch.from_numpy(x)
    got = cpu_loops.sign_sin_into(torch.empty_like(xt), xt, zero, coef).numpy()
    x64 = x.astype(np.float64)
    want = np.where(x64 > 0, 1.0, np.where(x64 < 0, -1.0, zero)) + coef * np.sin(x64)
    err = np.abs(got.astype(np.float64) - want)
    assert (err <= 2 * F32_EPS * (1 + abs(coef))).all(), f"worst {err.max():.3g}"
    assert (got[x == 0] == np.float32(zero)).all()      # +0 and -0 both take the zero convention


def test_sign_sin_in_place():
    x = torch.tensor([-2.0, 0.0, 3.0])
    want = torch.tensor([-1.0 + 0.5 * math.sin(-2.0), 1.0, 1.0 + 0.5 * math.sin(3.0)])
    assert torch.allclose(cpu_loops.sign_sin_into(x, x, 1.0, 0.5), want, atol=1e-7)


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
def test_quantizer_with_and_without_loops_matches_reference(monkeypatch, loops, scale):
    """The activation quantizer of the torch op table (the blocked CPU path), loops on and off, against the
    reference in float64."""
    monkeypatch.setenv("FDAREF_TORCH_LOOPS", loops)
    rng = np.random.default_rng(3)
    t, w1, w2 = _activation_case(rng, scale)
    g = rng.standard_normal(t.shape).astype(np.float32)
    kw = dict(alpha=0.07, layout="activation", eta_kind="sin", a=0.1)
    params = {"n": 13, "omega": 0.1, "clip": None}
    z = TB.quantize_forward(*map(torch.from_numpy, (t, w1, w2)), zero=1.0, training=True, **kw)
    want_z = quantizer.quantize_forward(t.astype(np.float64), w1, w2, zero=1.0, training=True, **kw)
    assert np.abs(z.numpy() - want_z).max() <= 4 * F32_EPS * np.abs(want_z).max()
    got = TB.quantize_backward(*map(torch.from_numpy, (g, t, w1, w2)), estimator="fda", params=params, **kw)
    want = quantizer.quantize_backward(g.astype(np.float64), t.astype(np.float64), w1, w2, estimator="fda",
                                       params=params, **kw)
    for name, a_, b_ in zip(("dt", "dw1", "dw2"), got, want):
        tol = 1e-5 * max(1.0, np.abs(b_).max())
        assert np.abs(a_.numpy() - b_).max() <= tol, name


def test_without_numba_the_loops_are_off(monkeypatch):
    """The torch backend imports without numba (cpu_loops.njit is None then): covers() is False everywhere,
    so every caller takes the torch kernels."""
    monkeypatch.setattr(cpu_loops, "njit", None)
    assert not cpu_loops.enabled()
    assert not cpu_loops.covers(torch.zeros(8))
