"""Fixed edge cases per op: the inputs where implementations typically differ, always run.

Each builder takes (dtype, options) and returns labelled :class:`Case` objects; an edge case whose option
is outside the options under test (a preset) is not generated.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .bits import pack_signs_independent, with_stray_bits
from .case import Case
from .probes import NANS, NEGATIVE_NAN, NON_FINITE, fda_argument_limit, surrogate_probes, tiny_values
from .strategies import OptionSpace, bn_statistics

Builder = Callable[[str, OptionSpace], list[Case]]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _arr(values, dtype: str) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).astype(dtype)


def sign_edges(dtype: str, o: OptionSpace) -> list[Case]:
    fi = np.finfo(dtype)
    x = _arr([0.0, -0.0, 1.0, -1.0, fi.tiny, -fi.tiny, fi.smallest_subnormal, -fi.smallest_subnormal,
              np.nan, NEGATIVE_NAN, np.inf, -np.inf, fi.max, -fi.max], dtype)
    return [Case("sign", (("x", x),), {"zero": z}, f"zeros, subnormals, NaN of both signs, inf (zero={z:g})")
            for z in o.zeros]


def surrogate_edges(dtype: str, o: OptionSpace) -> list[Case]:
    """Every estimator on its probes (probes.py); fda for a few (n, omega, clip) with the k pi ladder at
    small k and at k up to the argument limit."""
    cases = []
    for est in o.values("estimators"):
        if est in ("fda", "fda_series"):
            for n in sorted({o.n_range[0], o.n_range[1], 0}):
                for omega in o.omegas[:2]:
                    for clip in o.clips[:3]:
                        params = {"n": n, "omega": omega, "clip": clip}
                        pts = surrogate_probes(est, params, dtype, _rng(n * 7 + len(cases)), far_ks=6) + list(NON_FINITE)
                        cases.append(Case("surrogate", (("x", _arr(pts, dtype)),), {"estimator": est, "params": params},
                                          f"{est} at every distance from k*pi (k up to {int(fda_argument_limit(dtype, n) / math.pi)}), "
                                          f"subnormals, |x| == clip, +-inf and NaN (n={n}, omega={omega}, clip={clip})"))
        else:
            for params in o.every_params(est):   # every beta: a port may hard-code one
                pts = surrogate_probes(est, params, dtype, _rng(0)) + list(NON_FINITE)
                cases.append(Case("surrogate", (("x", _arr(pts, dtype)),), {"estimator": est, "params": params},
                                  f"{est} {params} at 0, subnormals, |x| == 1 +- 1..3 ulps, far out, +-inf and NaN"))
    return cases


def _noise_arrays(shape: tuple[int, ...], layout: str, k: int, dtype: str, seed: int) -> dict[str, np.ndarray]:
    d = int(np.prod(shape[1:])) if layout == "weight" else shape[1]
    m = max(1, d // k)
    r = _rng(seed)
    t = r.standard_normal(shape)
    t[0] = 0.0  # a zero row: its pre-activation is exactly 0 (relu'(0) = 0)
    w1 = r.uniform(-1, 1, (d, m))
    rows = np.moveaxis(t, 1, -1).reshape(-1, d) if (layout == "activation" and t.ndim == 4) else t.reshape(-1, d)
    w1 *= np.where(rows[-1] @ w1 < 0, -1.0, 1.0)  # the last row is active in every hidden unit
    return {"t": t.astype(dtype), "w1": w1.astype(dtype),
            "w2": r.uniform(-1, 1, (m, d)).astype(dtype), "g": r.standard_normal(shape).astype(dtype)}


NOISE_EDGES = (((3, 1), "activation", 64, "d = 1 (one channel), m = 1"),
               ((2, 65), "weight", 64, "d = 65 -> m = 1 (never a zero-width layer)"),
               ((2, 130, 1, 1), "activation", 64, "d = 130 -> m = 2, one pixel"),
               ((3, 5, 3, 3), "weight", 64, "conv weight d = 45 < 64 -> m = 1"))


def noise_edges(backward: bool) -> Builder:
    def build(dtype: str, o: OptionSpace) -> list[Case]:
        cases = []
        for i, (shape, layout, k, label) in enumerate(NOISE_EDGES):
            if layout not in o.layouts:
                continue
            a = _noise_arrays(shape, layout, k, dtype, 100 + i)
            kw = {"layout": layout, "eta_kind": o.etas[0], "a": o.a_values[0]}
            if backward:
                cases.append(Case("noise_backward", (("g", a["g"]), ("t", a["t"]), ("w1", a["w1"]), ("w2", a["w2"])), kw, label))
            else:
                cases.append(Case("noise_forward", (("t", a["t"]), ("w1", a["w1"]), ("w2", a["w2"])), kw, label))
        if not backward:   # relu(NaN) = NaN (SEMANTICS 10): a NaN entry makes its whole row of e NaN, where a
            # module relu written `h > 0 ? h : 0` leaves every other element of that row finite; a sin(+-inf) is
            # NaN too (a shortcut returning 0 there differs)
            layout = o.layouts[0]
            a = _noise_arrays((5, 8), layout, 4, dtype, 105)
            a["t"][1, 2], a["t"][2, 5] = NANS
            a["t"][3, 1], a["t"][4, 6] = np.inf, -np.inf
            cases.append(Case("noise_forward", (("t", a["t"]), ("w1", a["w1"]), ("w2", a["w2"])),
                              {"layout": layout, "eta_kind": o.etas[0], "a": o.a_values[0]},
                              "NaN, -NaN and +-inf entries: their rows are NaN"))
        return cases
    return build


def _one_image(dtype: str, o: OptionSpace, seed: int) -> dict[str, np.ndarray]:
    """A (1, C, H, W) activation with its module: rows are its pixels, never its channels (a reshape(-1, C)
    without moving C last mixes them, and batch 1 is where such a port still gets the shapes right)."""
    if "activation" not in o.layouts or not o.noise:
        return {}
    r = _rng(seed)   # not _noise_arrays: its zero first row would be the whole image here
    return {"t": r.standard_normal((1, 3, 2, 2)).astype(dtype), "w1": r.uniform(-1, 1, (3, 1)).astype(dtype),
            "w2": r.uniform(-1, 1, (1, 3)).astype(dtype), "g": r.standard_normal((1, 3, 2, 2)).astype(dtype)}


def _module_alphas(o: OptionSpace) -> list[float]:
    """0.1, the negative alphas under test (alpha is any real: a port testing `alpha > 0` differs there) and the
    tiny ones (the schedule's last nonzero alpha: a port that skips the module below an epsilon differs)."""
    return sorted({0.1} | {alpha for alpha in o.alphas if alpha < 0 or 0 < alpha < 1e-3}, reverse=True)


def _noise_options(o: OptionSpace) -> list[dict[str, Any]]:
    """Every (eta_kind, a) pair under test: a quantizer that calls the module with its defaults differs."""
    return [{"eta_kind": eta, "a": a} for eta in o.etas for a in o.a_values]


def quantize_forward_edges(dtype: str, o: OptionSpace) -> list[Case]:
    layout = o.layouts[0]
    a = _noise_arrays((2, 3, 3, 3), layout, 64, dtype, 7)
    a["t"].flat[[1, 2]] = (0.0, -0.0)
    # where z is exactly sign(t) (no module, alpha == 0, eval), NaN stays NaN and inf is +-1: a quantizer
    # with a sign of its own (`t > 0 ? 1 : t < 0 ? -1 : zero`) sends NaN to the zero convention
    exact = a["t"].copy()
    exact.flat[[3, 4, 5, 6]] = (np.nan, NEGATIVE_NAN, np.inf, -np.inf)
    cases = []
    one = _one_image(dtype, o, 17)
    if one:
        cases.append(Case("quantize_forward", (("t", one["t"]), ("w1", one["w1"]), ("w2", one["w2"])),
                          {"zero": o.zeros[0], "layout": "activation", "eta_kind": o.etas[0], "a": o.a_values[0],
                           "alpha": 0.1, "training": True}, "one image (1, C, H, W) with the module"))
    for zero in o.zeros:
        kw = {"zero": zero, "layout": layout, "eta_kind": o.etas[0], "a": o.a_values[0]}
        cases.append(Case("quantize_forward", (("t", exact), ("w1", a["w1"]), ("w2", a["w2"])),
                          {**kw, "alpha": 0.0, "training": True},
                          f"alpha == 0: exactly sign, NaN and inf too (zero={zero:g})"))
        if o.eval_is_sign:
            cases.append(Case("quantize_forward", (("t", exact), ("w1", a["w1"]), ("w2", a["w2"])),
                              {**kw, "alpha": 0.1, "training": False},
                              f"eval: exactly sign, NaN and inf too (zero={zero:g})"))
        cases.append(Case("quantize_forward", (("t", exact), ("w1", None), ("w2", None)),
                          {**kw, "alpha": 0.1, "training": True},
                          f"no module: exactly sign, NaN and inf too (zero={zero:g})"))
        if o.noise:
            for alpha in _module_alphas(o):
                cases.append(Case("quantize_forward", (("t", a["t"]), ("w1", a["w1"]), ("w2", a["w2"])),
                                  {**kw, "alpha": alpha, "training": True},
                                  f"training with the module, alpha = {alpha:g} (zero={zero:g})"))
            # with the module live, +-inf gives e = NaN (a sin(inf)), so z = NaN: not +-1, not a shortcut's 0;
            # +inf and -inf in rows of their own (a NaN beside them would make the row NaN anyway)
            infs = a["t"].copy()
            infs.flat[[5, 40]] = (np.inf, -np.inf)
            cases.append(Case("quantize_forward", (("t", infs), ("w1", a["w1"]), ("w2", a["w2"])),
                              {**kw, "alpha": 0.1, "training": True},
                              f"training with the module: +-inf make their rows NaN (zero={zero:g})"))
    if o.noise:
        for eta in _noise_options(o)[1:]:
            cases.append(Case("quantize_forward", (("t", a["t"]), ("w1", a["w1"]), ("w2", a["w2"])),
                              {"zero": o.zeros[0], "layout": layout, **eta, "alpha": 0.1, "training": True},
                              f"training with the module, eta {eta['eta_kind']}, a = {eta['a']:g}"))
    return cases


def _inexact_clips(estimator: str, o: OptionSpace) -> list[float]:
    """The clips under test that float32 cannot hold (fda-like estimators only)."""
    if estimator not in ("fda", "fda_series"):
        return []
    return [c for c in o.clips if c is not None and float(np.float32(c)) != c]


def quantize_backward_edges(dtype: str, o: OptionSpace) -> list[Case]:
    layout = o.layouts[0]
    a = _noise_arrays((2, 3, 2, 2), layout, 64, dtype, 8)
    cases = []
    one = _one_image(dtype, o, 18)
    if one:
        est = o.values("estimators")[0]
        cases.append(Case("quantize_backward", (("g", one["g"]), ("t", one["t"]), ("w1", one["w1"]), ("w2", one["w2"])),
                          {"estimator": est, "params": o.first_params(est), "layout": "activation",
                           "eta_kind": o.etas[0], "a": o.a_values[0], "alpha": 0.1},
                          "one image (1, C, H, W) with the module"))
    for est in o.values("estimators"):
        params = o.first_params(est)
        t = a["t"].copy()
        bound = params.get("clip") or 1.0
        t.flat[:3] = (bound, -bound, 0.0)
        kw = {"estimator": est, "params": params, "layout": layout, "eta_kind": o.etas[0], "a": o.a_values[0]}
        for other in o.every_params(est):   # every beta, no module
            cases.append(Case("quantize_backward", (("g", a["g"]), ("t", t), ("w1", None), ("w2", None)),
                              {**kw, "params": other, "alpha": 0.1}, f"{est} {other}, no module, t at the clip boundary"))
        for clip in _inexact_clips(est, o)[:1]:   # t = float32(clip) keeps its gradient (SEMANTICS 10)
            tc = a["t"].copy()
            tc.flat[:3] = (clip, -clip, 0.0)
            cases.append(Case("quantize_backward", (("g", a["g"]), ("t", tc), ("w1", None), ("w2", None)),
                              {**kw, "params": {**params, "clip": clip}, "alpha": 0.1},
                              f"{est}, no module, t at a clip of {clip:.6g} rounded to {dtype}"))
        cases.append(Case("quantize_backward", (("g", a["g"]), ("t", t), ("w1", a["w1"]), ("w2", a["w2"])),
                          {**kw, "alpha": 0.0}, f"{est}, alpha == 0: zero module gradients"))
        if o.noise:
            for alpha in _module_alphas(o):
                cases.append(Case("quantize_backward", (("g", a["g"]), ("t", t), ("w1", a["w1"]), ("w2", a["w2"])),
                                  {**kw, "alpha": alpha}, f"{est}, module with alpha = {alpha:g}"))
            if est == o.values("estimators")[0]:
                for eta in _noise_options(o)[1:]:
                    cases.append(Case("quantize_backward", (("g", a["g"]), ("t", t), ("w1", a["w1"]), ("w2", a["w2"])),
                                      {**kw, **eta, "alpha": 0.1},
                                      f"{est}, module with eta {eta['eta_kind']}, a = {eta['a']:g}"))
    return cases


def weight_scale_edges(dtype: str, o: OptionSpace) -> list[Case]:
    w = _rng(3).standard_normal((3, 2, 3, 3)).astype(dtype)
    w[1] = 0.0
    return [Case("weight_scale", (("w", w),), {"mode": m}, f"an all-zero output channel ({m})") for m in o.scales] + \
        [Case("weight_scale", (("w", _arr([[-2.0]], dtype)),), {"mode": m}, f"1x1 linear weight ({m})") for m in o.scales]


CONV_EDGES = (((1, 1, 1, 1), (1, 1, 1, 1), (1, 1), (2, 2), (1, 1), "1x1 image, 1x1 kernel, padding 2"),
              ((2, 65, 3, 4), (3, 65, 3, 3), (1, 1), (1, 1), (1, 1), "65 input channels"),
              ((1, 3, 5, 5), (2, 3, 2, 2), (2, 2), (1, 1), (2, 2), "even kernel, stride 2, dilation 2"),
              ((1, 2, 4, 3), (1, 2, 3, 3), (3, 2), (2, 1), (1, 1), "stride larger than the kernel overlap"),
              # where tiled and vectorised kernels take another path (strategies.TILE_SIZES)
              ((2, 16, 5, 9), (32, 16, 3, 5), (1, 1), (1, 2), (1, 1), "16 in, 32 out channels, 3x5 kernel"),
              ((9, 3, 4, 19), (17, 3, 1, 3), (1, 1), (0, 0), (1, 1), "batch 9, 17 out channels, 17 output columns"),
              ((1, 2, 9, 9), (3, 2, 7, 7), (2, 1), (3, 3), (1, 1), "7x7 kernel, padding 3, stride (2, 1)"),
              ((1, 2, 3, 3), (4, 2, 3, 3), (1, 1), (0, 0), (1, 1), "a 1x1 output (a GEMV path)"),
              ((1, 2, 4, 5), (3, 2, 2, 2), (1, 1), (2, 2), (1, 1), "padding past the kernel's extent"),
              # the models' 128-512 channel layers: a GEMM-tiled path taken for C_out >= 128 only
              ((1, 2, 3, 3), (129, 2, 3, 3), (1, 1), (1, 1), (1, 1), "129 output channels, padding 1"),
              # float64 must be summed in float64: a float32 accumulator shows over a long reduction
              ((8, 3, 16, 16), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), "dw summed over 2048 positions"))


def conv_edges(backward: bool) -> Builder:
    def build(dtype: str, o: OptionSpace) -> list[Case]:
        cases = []
        for i, (xs, ws, stride, pad, dil, label) in enumerate(CONV_EDGES):
            r = _rng(20 + i)
            x = np.where(r.random(xs) < 0.5, -1.0, 1.0).astype(dtype)
            w = r.standard_normal(ws).astype(dtype)
            for pv in o.pad_values:
                kw = {"stride": stride, "padding": pad, "dilation": dil, "pad_value": pv}
                if backward:
                    ho = (xs[2] + 2 * pad[0] - (ws[2] - 1) * dil[0] - 1) // stride[0] + 1
                    wo = (xs[3] + 2 * pad[1] - (ws[3] - 1) * dil[1] - 1) // stride[1] + 1
                    g = r.standard_normal((xs[0], ws[0], ho, wo)).astype(dtype)
                    cases.append(Case("conv2d_backward", (("g", g), ("x", x), ("w", w)),
                                      {"has_bias": True, **kw}, f"{label}, pad value {pv:g}"))
                else:
                    b = r.standard_normal(ws[0]).astype(dtype)
                    cases.append(Case("conv2d_forward", (("x", x), ("w", w), ("b", b)), kw, f"{label}, pad value {pv:g}"))
        if not backward:   # IEEE: 0 * NaN = 0 * inf = NaN, so a kernel that skips zero weights differs
            r = _rng(29)
            x = np.where(r.random((1, 2, 4, 4)) < 0.5, -1.0, 1.0).astype(dtype)
            x[0, 0, 1, 1], x[0, 0, 2, 3], x[0, 1, 0, 2] = np.nan, np.inf, NEGATIVE_NAN
            w = r.standard_normal((3, 2, 3, 3)).astype(dtype)
            w[:, 0] = 0.0        # input channel 0 (NaN, inf) reaches the outputs through zero weights only
            w[:, 1, 1, 1] = 0.0  # and the -NaN through a zero centre tap (and nonzero others)
            kw = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "pad_value": o.pad_values[0]}
            cases.append(Case("conv2d_forward", (("x", x), ("w", w), ("b", r.standard_normal(3).astype(dtype))), kw,
                              "NaN and inf inputs against zero weights (0 * NaN = 0 * inf = NaN)"))
        return cases
    return build


def linear_edges(backward: bool) -> Builder:
    def build(dtype: str, o: OptionSpace) -> list[Case]:
        r = _rng(30)
        cases = []
        for (b, fin, fout) in ((1, 1, 1), (3, 65, 2), (17, 33, 16), (9, 64, 9), (600, 8, 4)):   # 600: a long dw sum
            x, w = r.standard_normal((b, fin)).astype(dtype), r.standard_normal((fout, fin)).astype(dtype)
            if backward:
                g = r.standard_normal((b, fout)).astype(dtype)
                cases += [Case("linear_backward", (("g", g), ("x", x), ("w", w)), {"has_bias": hb},
                               f"B={b}, in={fin}, out={fout}, bias={hb}") for hb in (True, False)]
            else:
                cases += [Case("linear_forward", (("x", x), ("w", w), ("b", bb)), {}, f"B={b}, in={fin}, out={fout}, "
                               f"bias={bb is not None}") for bb in (r.standard_normal(fout).astype(dtype), None)]
        if not backward:   # IEEE: 0 * NaN = 0 * inf = NaN, so a kernel that skips zero weights differs
            x = r.standard_normal((3, 4)).astype(dtype)
            x[0, 1], x[1, 2], x[2, 1] = np.nan, np.inf, NEGATIVE_NAN
            w = r.standard_normal((3, 4)).astype(dtype)
            w[:, 1:3] = 0.0   # every output meets the non-finite inputs through zero weights only
            cases.append(Case("linear_forward", (("x", x), ("w", w), ("b", r.standard_normal(3).astype(dtype))), {},
                              "NaN and inf inputs against zero weights (0 * NaN = 0 * inf = NaN)"))
        return cases
    return build


def bn_edges(backward: bool) -> Builder:
    def build(dtype: str, o: OptionSpace) -> list[Case]:
        r = _rng(40)
        x = r.standard_normal((2, 3, 2, 2))
        x[:, 1] = 1.5  # a constant channel: variance 0, invstd = 1/sqrt(eps)
        long = 100.0 + 3.0 * r.standard_normal((8, 2, 16, 16))   # 2048 values a channel around 100: float64 sums
        gamma, beta = _arr([1.0, 2.0, 0.0], dtype), _arr([0.0, 0.5, -1.0], dtype)
        rm, rv = _arr([0.1, -0.2, 0.3], dtype), _arr([1.0, 0.5, 2.0], dtype)
        wide = r.standard_normal((3, 129)) + r.uniform(-2, 2, 129)   # the models' 128-512 channels: per-channel
        wide_params = (r.standard_normal(129), r.standard_normal(129),   # loops of 64 or 128 threads stop short
                       r.standard_normal(129), r.uniform(0.5, 2.0, 129))
        cases = []
        for x, (gm, bt, m0, v0), what in ((x.astype(dtype), (gamma, beta, rm, rv), "a constant channel"),
                                          (long.astype(dtype), (gamma[:2], beta[:2], rm[:2], rv[:2]),
                                           "2048 values a channel, mean 100"),
                                          (wide.astype(dtype), tuple(p.astype(dtype) for p in wide_params),
                                           "129 channels")):
            for training in (True, False):
                label = f"{what} ({'training' if training else 'eval'})"
                cases.append(bn_case(backward, x, (gm, bt, m0, v0), training, label, r))
        return cases
    return build


def bn_case(backward: bool, x: np.ndarray, params: tuple, training: bool, label: str,
            r: np.random.Generator) -> Case:
    """A batch-norm forward case (momentum 0.1, eps 1e-5) or a backward one (a random g, the statistics of
    the forward) on ``x`` with ``params`` = (gamma, beta, running_mean, running_var)."""
    gm, bt, m0, v0 = params
    if backward:
        mean, invstd = bn_statistics(x, m0, v0, training, 1e-5, x.dtype.name)
        g = r.standard_normal(x.shape).astype(x.dtype)
        return Case("batch_norm_backward", (("g", g), ("x", x), ("gamma", gm), ("mean", mean), ("invstd", invstd)),
                    {"training": training}, label)
    return Case("batch_norm_forward", (("x", x), ("gamma", gm), ("beta", bt), ("running_mean", m0),
                                       ("running_var", v0)), {"training": training, "momentum": 0.1, "eps": 1e-5}, label)


def relu_edges(backward: bool) -> Builder:
    def build(dtype: str, o: OptionSpace) -> list[Case]:
        # subnormals are ordinary numbers (SEMANTICS 10): a kernel built with flush-to-zero returns 0 for a
        # positive subnormal and drops its gradient
        x = _arr([[1.0, -1.0] + tiny_values(dtype)], dtype)
        if backward:   # never a NaN x: where x is NaN, relu' is not decided (frameworks mask by x > 0)
            g = _arr([np.arange(1.0, x.size + 1.0)], dtype)
            return [Case("relu_backward", (("g", g), ("x", x)), {}, "relu'(0) = 0, subnormals")]
        special = _arr([[np.nan, np.inf, -np.inf, NEGATIVE_NAN]], dtype)
        return [Case("relu_forward", (("x", x),), {}, "zeros of both signs, subnormals"),
                Case("relu_forward", (("x", special),), {}, "NaN of both signs stays NaN, +-inf")]
    return build


def prelu_edges(backward: bool) -> Builder:
    def build(dtype: str, o: OptionSpace) -> list[Case]:
        x = _arr([[[[0.0, -0.0], [2.0, -2.0]]], [[[-1.0, 1.0], [0.0, -3.0]]]], dtype)  # (2, 1, 2, 2)
        x4 = np.concatenate([x, -x, x * 0.5, -x], axis=1)  # (2, 4, 2, 2)
        tiny = _arr([[[[1.0, -1.0] + tiny_values(dtype)]]], dtype)   # (1, 1, 1, 14)
        cases = []
        if not backward:   # fmax(0, x) + slope fmin(0, x) turns NaN into 0
            nan = _arr([[[[np.nan, np.inf], [-np.inf, NEGATIVE_NAN]]]], dtype)
            cases.append(Case("prelu_forward", (("x", nan), ("slope", _arr([0.25], dtype))), {},
                              "NaN of both signs stays NaN, +-inf"))
        # a slope above 1: max(x, slope x), the leaky-relu trick, is prelu only for 0 <= slope <= 1. The
        # subnormals take x > 0's branch (a flush-to-zero kernel gives them the slope's)
        for xx, slope, label in ((x, _arr([0.25], dtype), "one slope, zeros"),
                                 (x4, _arr([0.25, -0.5, 0.0, 1.5], dtype), "per-channel slopes incl. 0 and 1.5"),
                                 (tiny, _arr([0.25], dtype), "subnormals, signed zeros")):
            if backward:
                g = _rng(50).standard_normal(xx.shape).astype(dtype)
                cases.append(Case("prelu_backward", (("g", g), ("x", xx), ("slope", slope)), {}, label))
            else:
                cases.append(Case("prelu_forward", (("x", xx), ("slope", slope)), {}, label))
        return cases
    return build


def pool_edges(kind: str, backward: bool) -> Builder:
    op = f"{kind}_pool2d_{'backward' if backward else 'forward'}"

    def build(dtype: str, o: OptionSpace) -> list[Case]:
        cases = []
        geos = (((1, 1, 4, 4), (2, 2), (2, 2), (0, 0), "all-equal windows (ties)", "ones"),
                ((1, 2, 3, 3), (3, 3), (1, 1), (1, 1), "overlapping windows, padding 1, ties", "ties"),
                ((2, 1, 5, 3), (2, 3), (3, 1), (1, 1), "uneven geometry", "normal"),
                ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), "1x1", "normal"),
                ((2, 16, 3, 19), (2, 2), (1, 1), (1, 1), "16 channels, 19 columns", "normal"),
                ((2, 3, 8, 8), (8, 8), (8, 8), (0, 0), "a global 8x8 pool", "normal"),
                ((1, 2, 8, 8), (4, 4), (4, 4), (0, 0), "4x4 windows", "ties"),
                ((1, 1, 1, 4), (1, 2), (1, 2), (0, 0), "-0.0 before +0.0, a tie at the maximum 0", "negzero"),
                ((1, 1, 1, 48), (1, 2), (1, 2), (0, 0), "subnormal maxima (windows of 0 or -1 and one tiny value)",
                 "tiny"))
        if not backward:   # SEMANTICS 10: a window holding a NaN is NaN (a `v > best` scan skips it)
            geos += (((1, 1, 4, 4), (2, 2), (1, 1), (1, 1), "NaN first, last and alone in windows, +-inf", "nan"),)
        if kind == "max":   # an all -inf window (no padding) still sends its gradient to its first element
            # (a scan from best = -inf with `v > best` drops it). Where such a window also holds padding, or a
            # NaN, backends differ on the element and SEMANTICS does not decide it: not checked.
            geos += (((1, 1, 2, 4), (2, 2), (2, 2), (0, 0), "windows of -inf only", "neginf"),)
        for i, (shape, k, s, p, label, fill) in enumerate(geos):
            r = _rng(60 + i)
            x = {"ones": np.ones(shape), "ties": r.integers(-1, 2, shape).astype(float)}.get(fill, r.standard_normal(shape))
            if kind == "max" and fill == "normal":
                x = -np.abs(x)  # all negative: a padded -inf must never win, a padded 0 would
            if fill == "neginf":
                x = np.full(shape, -np.inf)
            if fill == "negzero":   # +-0 compare equal: the first, -0.0, is the maximal element (not +0.0)
                x = np.array([[[[-0.0, 0.0, -1.0, -2.0]]]])
            if fill == "nan":   # NaN first, last and alone in a window (with padding), beside -inf and +inf
                x[0, 0, 0, 0], x[0, 0, 1, 3], x[0, 0, 3, 0], x[0, 0, 3, 3] = np.nan, NEGATIVE_NAN, -np.inf, np.inf
            if fill == "tiny":   # subnormals are ordinary numbers: a flush-to-zero kernel returns 0 for a subnormal
                # maximum and, beside a 0, sends its gradient to the 0
                x = np.array([[[[w, v] for v in tiny_values(dtype) for w in (0.0, -1.0)]]]).reshape(shape)
            x = x.astype(dtype)
            kw = {"kernel": k, "stride": s, "padding": p}
            if backward:
                ho = (shape[2] + 2 * p[0] - k[0]) // s[0] + 1
                wo = (shape[3] + 2 * p[1] - k[1]) // s[1] + 1
                g = r.standard_normal((shape[0], shape[1], ho, wo)).astype(dtype)
                cases.append(Case(op, (("g", g), ("x", x)), kw, label))
            else:
                cases.append(Case(op, (("x", x),), kw, label))
        return cases
    return build


def cross_entropy_edges(backward: bool) -> Builder:
    op = f"cross_entropy_{'backward' if backward else 'forward'}"

    def build(dtype: str, o: OptionSpace) -> list[Case]:
        cases = []
        for logits, labels, s, label in ((_arr([[1000.0, -1000.0, 0.0], [0.0, 0.0, 0.0]], dtype), [1, 2], 0.0,
                                          "logits of +-1000 (overflow) and all-equal"),
                                         (_arr([[3.0], [-2.0]], dtype), [0, 0], 0.1, "one class, smoothing 0.1"),
                                         (_arr([[80.0, 81.0, 79.0, -5.0]], dtype), [3], 0.25, "large logits, smoothing"),
                                         (_rng(45).standard_normal((9, 40)).astype(dtype) * 5, list(range(0, 36, 4)), 0.1,
                                          "9 rows (past a block of 8), 40 classes (past 32 lanes)"),
                                         (_arr([[5.0, 0.0], [1.0, -2.0]], dtype), [0, 1], 1.0,
                                          "smoothing 1: uniform targets, the labels do not matter"),
                                         # the models' batch of 128 and more: a kernel on 64 row blocks
                                         # without a stride loop drops the rest
                                         (_rng(46).standard_normal((130, 10)).astype(dtype) * 3,
                                          [i % 10 for i in range(130)], 0.1, "130 rows, 10 classes")):
            lab = np.asarray(labels, np.int64)
            if backward:
                cases.append(Case(op, (("g", np.asarray(1.0, dtype)), ("logits", logits), ("labels", lab)),
                                  {"label_smoothing": s}, label))
            else:
                cases.append(Case(op, (("logits", logits), ("labels", lab)), {"label_smoothing": s}, label))
        return cases
    return build


def pack_signs_edges(dtype: str, o: OptionSpace) -> list[Case]:
    cases = []
    for c in (1, 63, 64, 65, 128, 130, 300):   # 300: five words (a tile of 4 words stops short; 512-channel layers)
        x = np.where(_rng(c).random((2, c)) < 0.5, -1.0, 1.0)
        x[:, ::7] = 0.0
        for zero in o.pack_zeros:
            cases.append(Case("pack_signs", (("x", x.astype(dtype)),), {"axis": 1, "zero": zero},
                              f"{c} channels, zeros (zero={zero:g})"))
    x4 = np.where(_rng(5).random((2, 70, 2, 3)) < 0.5, -1.0, 1.0).astype(dtype)
    cases.append(Case("pack_signs", (("x", x4),), {"axis": 1, "zero": -1.0}, "NCHW activations, 70 channels"))
    # the packed axis given from the end or first: a port normalising a negative axis off by one, or packing
    # along axis 1 whatever it is told, packs the wrong axis
    x3 = np.where(_rng(6).random((3, 70, 2)) < 0.5, -1.0, 1.0).astype(dtype)
    cases += [Case("pack_signs", (("x", x3),), {"axis": axis, "zero": -1.0}, f"(3, 70, 2) along axis {axis}")
              for axis in (-2, -1, 0, -3)]
    tiny = np.asarray(tiny_values(dtype) + [-1.0, 1.0], np.float64).astype(dtype)[None, :]
    cases += [Case("pack_signs", (("x", tiny),), {"axis": 1, "zero": zero},
                   f"subnormals are nonzero, signed zeros (zero={zero:g})") for zero in o.pack_zeros]
    return cases


def xnor_conv2d_edges(dtype: str, o: OptionSpace) -> list[Case]:
    cases = []
    for n, c, (h, w), k, pad, label, dil in ((2, 64, (3, 3), 3, 1, "64 channels (one full word)", 1),
                                             (2, 65, (2, 3), 3, 1, "65 channels, padding larger than the image", 1),
                                             (2, 3, (4, 4), 2, 2, "3 channels, even kernel, padding 2", 1),
                                             (3, 5, (4, 4), 3, 1, "an odd batch of 3 (past pairs of images)", 1),
                                             (1, 5, (5, 5), 3, 2, "dilation 2, padding 2", 2),
                                             # five words: a register tile of 4 words (256 channels) stops short
                                             (1, 300, (2, 2), 2, 1, "300 channels (five words)", 1)):
        r = _rng(70 + c)
        x = np.where(r.random((n, c, h, w)) < 0.5, -1.0, 1.0)
        wt = np.where(r.random((2, c, k, k)) < 0.5, -1.0, 1.0)
        xp, wp = pack_signs_independent(x, 1), pack_signs_independent(wt, 1)
        for pv in o.pad_values:
            cases.append(Case("xnor_conv2d", (("x_packed", xp), ("w_packed", wp)),
                              {"channels": c, "stride": (1, 1), "padding": (pad, pad), "dilation": (dil, dil),
                               "pad_value": pv}, f"{label}, pad value {pv:g}"))
        if c % 64:
            cases.append(Case("xnor_conv2d", (("x_packed", with_stray_bits(xp, c, r)), ("w_packed", with_stray_bits(wp, c, r))),
                              {"channels": c, "stride": (1, 1), "padding": (pad, pad), "dilation": (dil, dil),
                               "pad_value": o.pad_values[0]}, f"{label}, stray bits beyond {c} channels"))
    return cases


def xnor_linear_edges(dtype: str, o: OptionSpace) -> list[Case]:
    cases = []
    for f in (1, 64, 65, 130, 300):   # 300: five words (a register tile of 4 words stops short)
        r = _rng(80 + f)
        x, w = np.where(r.random((3, f)) < 0.5, -1.0, 1.0), np.where(r.random((2, f)) < 0.5, -1.0, 1.0)
        xp, wp = pack_signs_independent(x, 1), pack_signs_independent(w, 1)
        cases.append(Case("xnor_linear", (("x_packed", xp), ("w_packed", wp)), {"features": f}, f"{f} features"))
        if f % 64:
            cases.append(Case("xnor_linear", (("x_packed", with_stray_bits(xp, f, r)), ("w_packed", with_stray_bits(wp, f, r))),
                              {"features": f}, f"{f} features, stray bits beyond them"))
    return cases


def sum_to_shape_edges(dtype: str, o: OptionSpace) -> list[Case]:
    """Broadcasts the engine undoes: a bias (C,) from (B, C), a per-channel (1, C, 1, 1) from NCHW, a
    middle size-1 axis only, everything to a scalar, and the identity."""
    r = _rng(90)
    cases = []
    for full, target, label in (((4, 3), (3,), "leading axis: (B, C) -> (C,)"),
                                ((2, 3, 4, 5), (1, 3, 1, 1), "per channel: NCHW -> (1, C, 1, 1)"),
                                ((3, 4, 5), (3, 1, 5), "a stretched middle axis only"),
                                ((2, 3, 4), (), "everything to a scalar"),
                                ((2, 1, 3), (2, 1, 3), "the same shape (identity)")):
        cases.append(Case("sum_to_shape", (("x", r.standard_normal(full).astype(dtype)),), {"shape": target}, label))
    return cases
