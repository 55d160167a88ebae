"""Large sizes: per op, one or two cases past the tiles, blocks and word counts a kernel special-cases.

The strategies draw small tensors (shrinking finds the smallest failing one); a kernel that handles a
first block right and its tail or its later blocks wrong needs sizes past the usual boundaries: 256, 1024
and 4096 elements, 32 images, 64 rows, channels or classes, eight 64-bit words, a reduction of 512 and 1024
terms (where a port changes its accumulator or its algorithm). Each builder takes (dtype, options) like
the edge cases of :mod:`.edges` and is listed in the op's record as ``sizes_fn``.
"""
from __future__ import annotations

import numpy as np

from .bits import pack_signs_independent
from .case import Case
from .probes import NEGATIVE_NAN, kpi_points
from .edges import bn_case
from .strategies import OptionSpace

# 5,000 elements: past blocks of 256, 1024 and 4096
LONG = 5000


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _signs(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.where(r.random(shape) < 0.5, -1.0, 1.0)


def none(dtype: str, o: OptionSpace) -> list[Case]:
    return []


def sign(dtype: str, o: OptionSpace) -> list[Case]:
    x = _rng(1).standard_normal(LONG)
    x[::7] = 0.0
    x[-3:] = (np.nan, NEGATIVE_NAN, 0.0)
    return [Case("sign", (("x", x.astype(dtype)),), {"zero": z}, f"{LONG} elements, zeros throughout (zero={z:g})")
            for z in o.zeros]


def surrogate(dtype: str, o: OptionSpace) -> list[Case]:
    """fda on 4,096 small values followed by the k pi ladder: a kernel deciding its range reduction on the
    first block differs on the later ones."""
    if "fda" not in o.values("estimators"):
        return []
    n, omega = o.n_range[1], o.omegas[0]
    far = [v for k in (1, -2, 7, -40) for v in kpi_points(k, omega, dtype)]
    x = np.concatenate([_rng(2).uniform(-1, 1, 4096), np.resize(far, LONG - 4096)])
    return [Case("surrogate", (("x", x.astype(dtype)),), {"estimator": "fda", "params": {"n": n, "omega": omega,
                                                                                       "clip": clip}},
                 f"fda on {LONG} elements: 4096 small, then omega x near k pi (n={n}, clip={clip})")
            for clip in o.clips[:2]]


def _noise(shape: tuple[int, ...], layout: str, dtype: str, seed: int, k: int = 4) -> dict[str, np.ndarray]:
    r = _rng(seed)
    d = int(np.prod(shape[1:])) if layout == "weight" else shape[1]
    m = max(1, d // k)
    t = r.standard_normal(shape)
    t.flat[::11] = 0.0
    return {"t": t.astype(dtype), "w1": r.uniform(-1, 1, (d, m)).astype(dtype),
            "w2": r.uniform(-1, 1, (m, d)).astype(dtype), "g": r.standard_normal(shape).astype(dtype)}


# rows past 64 and 128: weights (130, 70) -> 130 rows of d = 70; activations (2, 8, 9, 9) -> 162 rows of d = 8
NOISE_SIZES = (((130, 70), "weight"), ((2, 8, 9, 9), "activation"))


def noise(backward: bool):
    op = "noise_backward" if backward else "noise_forward"

    def build(dtype: str, o: OptionSpace) -> list[Case]:
        cases = []
        for i, (shape, layout) in enumerate(NOISE_SIZES):
            if layout not in o.layouts:
                continue
            a = _noise(shape, layout, dtype, 10 + i)
            kw = {"layout": layout, "eta_kind": o.etas[0], "a": o.a_values[0]}
            args = (("t", a["t"]), ("w1", a["w1"]), ("w2", a["w2"]))
            rows = shape[0] if layout == "weight" else int(np.prod(shape)) // shape[1]
            cases.append(Case(op, ((("g", a["g"]),) if backward else ()) + args, kw, f"{shape} {layout}: {rows} rows"))
        return cases
    return build


def quantize(backward: bool):
    """(2, 8, 17, 17): 4,624 elements and 578 rows, zeros throughout, under every zero convention."""
    op = "quantize_backward" if backward else "quantize_forward"

    def build(dtype: str, o: OptionSpace) -> list[Case]:
        if "activation" not in o.layouts:
            return []
        a = _noise((2, 8, 17, 17), "activation", dtype, 20, k=o.ks[0])   # m as a module built for d = 8 has
        module = (("w1", a["w1"]), ("w2", a["w2"])) if o.noise else (("w1", None), ("w2", None))
        alpha = 0.1 if o.noise else 0.0
        kw = {"layout": "activation", "eta_kind": o.etas[0], "a": o.a_values[0], "alpha": alpha}
        if backward:   # finite: the finite-difference check runs on it
            est = o.values("estimators")[0]
            return [Case(op, (("g", a["g"]), ("t", a["t"])) + module,
                         {**kw, "estimator": est, "params": o.first_params(est)},
                         f"(2, 8, 17, 17): 578 rows, alpha = {alpha:g}")]
        a["t"].flat[-4:] = (np.nan, NEGATIVE_NAN, np.inf, -np.inf)   # in the last block (exactly sign where z is)
        return [Case(op, (("t", a["t"]),) + module, {**kw, "zero": z, "training": training},
                     f"(2, 8, 17, 17): 4624 elements, zeros throughout ({'training' if training else 'eval'}, "
                     f"zero={z:g})")
                for z in o.zeros for training in ((True, False) if o.eval_is_sign else (True,))]
    return build


def weight_scale(dtype: str, o: OptionSpace) -> list[Case]:
    r = _rng(30)
    return [Case("weight_scale", (("w", (r.standard_normal(shape) + 0.5).astype(dtype)),), {"mode": m},
                 f"{shape}: {int(np.prod(shape[1:]))} terms a channel ({m})")
            for shape in ((4, 64, 3, 3), (3, 1100)) for m in o.scales]


def conv(backward: bool):
    """C_in 128 x 3x3 (a reduction of 1,152), 70 output channels, 33 images; and stride 3 with dilation 3."""
    def build(dtype: str, o: OptionSpace) -> list[Case]:
        cases = []
        for i, (xs, ws, stride, pad, dil, label) in enumerate(
                (((33, 128, 4, 4), (70, 128, 3, 3), (1, 1), (1, 1), (1, 1), "33 images, 128 -> 70 channels, 3x3"),
                 ((2, 2, 11, 13), (3, 2, 3, 3), (3, 3), (2, 2), (3, 3), "stride 3, dilation 3, padding 2"))):
            r = _rng(40 + i)
            x, w = _signs(r, xs).astype(dtype), r.standard_normal(ws).astype(dtype)
            kw = {"stride": stride, "padding": pad, "dilation": dil, "pad_value": o.pad_values[0]}
            if backward:
                ho = (xs[2] + 2 * pad[0] - (ws[2] - 1) * dil[0] - 1) // stride[0] + 1
                wo = (xs[3] + 2 * pad[1] - (ws[3] - 1) * dil[1] - 1) // stride[1] + 1
                g = r.standard_normal((xs[0], ws[0], ho, wo)).astype(dtype)
                cases.append(Case("conv2d_backward", (("g", g), ("x", x), ("w", w)), {"has_bias": True, **kw}, label))
            else:
                cases.append(Case("conv2d_forward", (("x", x), ("w", w), ("b", r.standard_normal(ws[0]).astype(dtype))),
                                  kw, label))
        return cases
    return build


def linear(backward: bool):
    def build(dtype: str, o: OptionSpace) -> list[Case]:
        r = _rng(50)
        x, w = r.standard_normal((70, 300)).astype(dtype), r.standard_normal((70, 300)).astype(dtype)
        label = "B=70, in=300, out=70, bias"
        if backward:
            return [Case("linear_backward", (("g", r.standard_normal((70, 70)).astype(dtype)), ("x", x), ("w", w)),
                         {"has_bias": True}, label)]
        return [Case("linear_forward", (("x", x), ("w", w), ("b", r.standard_normal(70).astype(dtype))), {}, label)]
    return build


def batch_norm(backward: bool):
    """40 images of 11x11: 4,840 values a channel; one channel at mean 1000 and std 1 (a one-pass
    E[x^2] - E[x]^2 variance cancels there)."""
    def build(dtype: str, o: OptionSpace) -> list[Case]:
        r = _rng(60)
        x = r.standard_normal((40, 3, 11, 11)) + np.array([0.0, 1000.0, -3.0])[None, :, None, None]
        x = x.astype(dtype)
        gm, bt = r.standard_normal(3).astype(dtype), r.standard_normal(3).astype(dtype)
        m0, v0 = r.standard_normal(3).astype(dtype), r.uniform(0.5, 2.0, 3).astype(dtype)
        return [bn_case(backward, x, (gm, bt, m0, v0), training,
                        f"40 images, 4840 values a channel, a channel at mean 1000 "
                        f"({'training' if training else 'eval'})", r) for training in (True, False)]
    return build


def relu(backward: bool):
    def build(dtype: str, o: OptionSpace) -> list[Case]:
        x = _rng(70).standard_normal((2, LONG // 2))
        x[:, ::13] = 0.0
        if backward:   # no NaN: relu' is not decided there (SEMANTICS 10)
            return [Case("relu_backward", (("g", _rng(71).standard_normal(x.shape).astype(dtype)),
                                           ("x", x.astype(dtype))), {}, f"{LONG} elements")]
        x[1, -5:] = (np.nan, NEGATIVE_NAN, np.inf, -np.inf, np.nan)
        return [Case("relu_forward", (("x", x.astype(dtype)),), {}, f"{LONG} elements, NaN at the end")]
    return build


def prelu(backward: bool):
    def build(dtype: str, o: OptionSpace) -> list[Case]:
        r = _rng(80)
        x, slope = r.standard_normal((3, 4, 16, 16)).astype(dtype), np.asarray([0.25, -0.5, 0.0, 1.5], dtype)
        if backward:
            g = r.standard_normal(x.shape).astype(dtype)
            return [Case("prelu_backward", (("g", g), ("x", x), ("slope", slope)), {}, "3072 elements, 768 a slope")]
        return [Case("prelu_forward", (("x", x), ("slope", slope)), {}, "3072 elements")]
    return build


def pool(kind: str, backward: bool):
    """33 images; and 64x65 images of values around 300 (a float32 summed-area table's running sums reach
    1.2e6 there: its window averages are off by ~3e-5 of their size, past float32's 1e-5)."""
    op = f"{kind}_pool2d_{'backward' if backward else 'forward'}"

    def build(dtype: str, o: OptionSpace) -> list[Case]:
        r = _rng(90)
        cases = []
        for shape, k, s, p, offset, label in (((33, 3, 6, 6), (2, 2), (2, 2), (0, 0), 0.0, "33 images"),
                                              ((1, 2, 64, 65), (3, 3), (1, 1), (1, 1), 300.0,
                                               "64x65 images, values around 300")):
            x = (offset + r.standard_normal(shape)).astype(dtype)
            kw = {"kernel": k, "stride": s, "padding": p}
            if backward:
                ho, wo = (shape[2] + 2 * p[0] - k[0]) // s[0] + 1, (shape[3] + 2 * p[1] - k[1]) // s[1] + 1
                cases.append(Case(op, (("g", r.standard_normal((shape[0], shape[1], ho, wo)).astype(dtype)), ("x", x)),
                                  kw, label))
            else:
                cases.append(Case(op, (("x", x),), kw, label))
        return cases
    return build


def cross_entropy(backward: bool):
    op = f"cross_entropy_{'backward' if backward else 'forward'}"

    def build(dtype: str, o: OptionSpace) -> list[Case]:
        logits, labels = (_rng(100).standard_normal((70, 100)) * 3).astype(dtype), np.arange(70, dtype=np.int64) + 29
        label = "70 rows, 100 classes (labels past the 64th)"
        if backward:
            return [Case(op, (("g", np.asarray(1.0, dtype)), ("logits", logits), ("labels", labels)),
                         {"label_smoothing": 0.1}, label)]
        return [Case(op, (("logits", logits), ("labels", labels)), {"label_smoothing": 0.1}, label)]
    return build


def pack_signs(dtype: str, o: OptionSpace) -> list[Case]:
    """600 channels (ten words, past a tile of 8), and values an int32 cast gets wrong: +inf, 3e9, the max."""
    x = _signs(_rng(110), (2, 600))
    x[:, ::9] = 0.0
    big = float(np.finfo(dtype).max)
    special = np.tile([np.inf, -np.inf, 3e9, -3e9, big, -big, 2.0 ** 31, -(2.0 ** 31) - 1e3], (2, 9))
    return [Case("pack_signs", (("x", x.astype(dtype)),), {"axis": 1, "zero": z}, f"600 channels, zeros (zero={z:g})")
            for z in o.pack_zeros] + \
        [Case("pack_signs", (("x", special.astype(dtype)),), {"axis": 1, "zero": -1.0},
              "+-inf, +-3e9, +-max, +-2^31: past int32")]


def xnor_conv2d(dtype: str, o: OptionSpace) -> list[Case]:
    cases = []
    for i, (xs, ws, stride, pad, dil, label) in enumerate(
            (((2, 65, 4, 4), (70, 65, 3, 3), (1, 1), (1, 1), (1, 1), "70 output channels"),
             ((1, 5, 11, 13), (3, 5, 3, 3), (3, 3), (2, 2), (3, 3), "stride 3, dilation 3"))):
        r = _rng(120 + i)
        xp, wp = pack_signs_independent(_signs(r, xs), 1), pack_signs_independent(_signs(r, ws), 1)
        cases.append(Case("xnor_conv2d", (("x_packed", xp), ("w_packed", wp)),
                          {"channels": xs[1], "stride": stride, "padding": pad, "dilation": dil,
                           "pad_value": o.pad_values[0]}, label))
    return cases


def xnor_linear(dtype: str, o: OptionSpace) -> list[Case]:
    r = _rng(130)
    xp, wp = pack_signs_independent(_signs(r, (70, 130)), 1), pack_signs_independent(_signs(r, (70, 130)), 1)
    return [Case("xnor_linear", (("x_packed", xp), ("w_packed", wp)), {"features": 130}, "70 rows, 70 outputs")]


def sum_to_shape(dtype: str, o: OptionSpace) -> list[Case]:
    x = _rng(140).standard_normal((70, 300)).astype(dtype)
    return [Case("sum_to_shape", (("x", x),), {"shape": (300,)}, "(70, 300) -> (300,)")]
