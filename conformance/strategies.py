"""Hypothesis strategies that CONSTRUCT valid inputs for every op (never filter).

Shapes include odd and 1-sized dimensions and channel counts that are not multiples of 8 or 64; geometry
is built backwards from a valid output size, so every drawn conv / pool call is legal. Values come from a
seeded numpy generator (fast, and shrinks to seed 0) with *specials* planted at drawn positions, built by
probes.py: signed zeros, subnormals, NaN of both signs, a clip boundary and 1-3 ulps either side (in the
dtype under test), omega x = k pi at every distance from 1 ulp to 0.5 for small and large k, the beta
estimators' tails at fixed beta |x|, ties for max pool; fda inputs
also span the whole argument range. Every option of SEMANTICS 1-7 is drawn from an :class:`OptionSpace`: all
values by default, only a preset's (``OptionSpace.from_preset``), or what a backend supports
(capabilities.py). Each op's record (records.py) names its strategy here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
from hypothesis import strategies as st

from fdaref.noise import noise_width

from .bits import pack_signs_independent, with_stray_bits
from .case import Case
from .probes import NANS, NON_FINITE, fda_scale_choices, surrogate_probes, tiny_values

Draw = Callable[[st.SearchStrategy], Any]


def last_nonzero_alpha(alpha0: float, epochs: int = 10_000) -> float:
    """The smallest nonzero alpha of the SEMANTICS 6 schedule over ``epochs`` epochs (2.5e-9 at 10,000 with
    alpha0 0.1; the paper's 400 epochs end at 1.5e-6): a port that skips the module below an epsilon differs."""
    from fdaref.schedules import alpha_cosine
    return alpha_cosine(epochs - 2, epochs, alpha0)


def registered_estimators() -> tuple[str, ...]:
    """Every registered estimator that declares a peak (the scale of its tolerance), built-in or not."""
    from fdaref.estimators import estimator_names, get_estimator
    return tuple(name for name in estimator_names() if get_estimator(name).peak is not None)


@dataclass(frozen=True)
class OptionSpace:
    """Which option values the strategies draw (SEMANTICS 1-7); :mod:`.capabilities` names each field's option."""

    zeros: tuple[float, ...] = (-1.0, 0.0, 1.0)
    estimators: Optional[tuple[str, ...]] = None  # None: every registered estimator with a peak
    n_range: tuple[int, int] = (0, 130)  # any n >= 0 is legal (SEMANTICS 2); past the presets' 18 and past 128
    omegas: tuple[float, ...] = (0.1, 0.05, 0.25, 1.0)
    # 0.1 and 1/3 are not float32 numbers: a clip compared without rounding it to the input's dtype first
    # (SEMANTICS 10) differs at x = float32(clip); the edges take the first three
    clips: tuple[Optional[float], ...] = (None, 1.0, 0.1, 0.5, 2.0, 1.5, 1.0 / 3.0)
    etas: tuple[str, ...] = ("sin", "linear", "none")
    layouts: tuple[str, ...] = ("weight", "activation")
    a_values: tuple[float, ...] = (0.1, 0.5, 0.0, -0.1)   # a is any real: a port testing `a > 0` differs at -0.1
    # any real (SEMANTICS 4): `alpha > 0` tests differ at -0.1; a port that skips the module below some epsilon
    # differs at the schedule's last nonzero alpha (2.5e-9 at E = 10,000)
    alphas: tuple[float, ...] = (0.1, 0.05, 1.0, 0.0, -0.1, last_nonzero_alpha(0.1))
    ks: tuple[int, ...] = (64, 4, 1)
    scales: tuple[str, ...] = ("channel", "layer", "none")
    pad_values: tuple[float, ...] = (0.0, -1.0, 1.0)
    pack_zeros: tuple[float, ...] = (-1.0, 1.0)
    eval_noise: tuple[bool, ...] = (False,)  # SEMANTICS 4: eval is exactly sign(t); the suite checks only that
    noise: bool = True
    betas: Optional[tuple[float, ...]] = None  # None: a few per estimator

    def values(self, name: str) -> tuple:
        """The values of the field ``name`` (``estimators`` resolved against the registry now)."""
        if name == "estimators" and self.estimators is None:
            return registered_estimators()
        return tuple(getattr(self, name))

    @classmethod
    def from_preset(cls, name: str) -> "OptionSpace":
        """Only the choices of the preset ``name`` (its n schedule's whole range for fda)."""
        from fdaref.presets import get_preset

        p = get_preset(name)
        betas = dict(p.estimator_params).get("beta")
        return cls(zeros=(p.zero,), estimators=(p.estimator,),
                   n_range=(min(p.n_start, p.n_end), max(p.n_start, p.n_end)), omegas=(p.omega,),
                   clips=(p.clip,), etas=(p.eta,), a_values=(p.a,),
                   alphas=(p.alpha0, p.alpha0 / 2, last_nonzero_alpha(p.alpha0), 0.0) if p.noise else (0.0,),
                   ks=(p.k,),
                   scales=(p.scale,), pad_values=(p.pad_value,), noise=p.noise,
                   betas=(betas,) if betas is not None else None)

    @property
    def eval_is_sign(self) -> bool:
        """Whether eval cases with a live module (training False, alpha != 0) may be drawn (SEMANTICS 4)."""
        return False in self.eval_noise

    def beta_values(self, name: str) -> tuple[float, ...]:
        """The betas drawn for ``sign_swish`` / ``tanh``: the space's, or a few per estimator (its default first)."""
        return tuple(self.betas or {"sign_swish": (5.0, 2.0, 0.5), "tanh": (2.0, 1.0, 4.0)}[name])

    def estimator_params(self, draw: Draw, name: str) -> dict[str, Any]:
        """Parameters for the estimator ``name``: drawn for the built-in ones, the defaults otherwise."""
        if name in ("fda", "fda_series"):
            return {"n": draw(st.integers(*self.n_range)), "omega": draw(st.sampled_from(self.omegas)),
                    "clip": draw(st.sampled_from(self.clips))}
        if name in ("sign_swish", "tanh"):
            return {"beta": draw(st.sampled_from(self.beta_values(name)))}
        from fdaref.estimators import get_estimator
        return dict(get_estimator(name).defaults)

    def first_params(self, name: str) -> dict[str, Any]:
        """The first choice of every parameter of ``name`` (for edge cases)."""
        return self.every_params(name)[0]

    def every_params(self, name: str) -> list[dict[str, Any]]:
        """Every choice of a beta estimator's beta; the first choice of each parameter for the others (fda's
        grid of n, omega and clip is the edges' own)."""
        if name in ("fda", "fda_series"):
            return [{"n": self.n_range[0], "omega": self.omegas[0], "clip": self.clips[0]}]
        if name in ("sign_swish", "tanh"):
            return [{"beta": beta} for beta in self.beta_values(name)]
        from fdaref.estimators import get_estimator
        return [dict(get_estimator(name).defaults)]

    def estimator(self, draw: Draw) -> tuple[str, dict[str, Any]]:
        name = draw(st.sampled_from(self.values("estimators")))
        return name, self.estimator_params(draw, name)


ALL_OPTIONS = OptionSpace()


# ---------------------------------------------------------------------------------------------------
# Building blocks

def dim(draw: Draw, lo: int = 1, hi: int = 7) -> int:
    return draw(st.integers(lo, hi))


# Sizes either side of the widths kernels tile and vectorise by (8, 16, 32 lanes or rows): a fast path taken
# only at a multiple of 16, or a remainder loop after the last full tile, shows only at such sizes.
TILE_SIZES = (7, 8, 9, 15, 16, 17, 31, 32, 33)


def extent(draw: Draw, lo: int, hi: int, tiled: bool) -> int:
    """A size in lo..hi, or where ``tiled`` one of TILE_SIZES (at least ``lo``)."""
    if tiled:
        return draw(st.sampled_from(tuple(s for s in TILE_SIZES if s >= lo)))
    return draw(st.integers(lo, hi))


def channels(draw: Draw, wide: bool = False) -> int:
    """A channel count: small (1..9, mostly not multiples of 8) or one of TILE_SIZES; with ``wide`` also
    around 64 and 128."""
    if wide:
        return draw(st.sampled_from((1, 2, 3, 5, 7, 9, 63, 64, 65, 70, 129)))
    return extent(draw, 1, 9, draw(st.booleans()))


WIDE_AXES = ("batch", "c_in", "c_out", "height", "width", "kernel")


def wide_axes(draw: Draw, axes: Sequence[str] = WIDE_AXES) -> frozenset[str]:
    """At most two axes of a conv / linear / pool call drawn at tile-straddling sizes (TILE_SIZES; kernels
    4..7): every axis crosses a tile edge in some case, and a case stays small enough to check quickly."""
    return frozenset(draw(st.lists(st.sampled_from(tuple(axes)), max_size=2, unique=True)))


def _dt(dtype: str) -> np.dtype:
    return np.dtype(dtype)


def fill(draw: Draw, shape: Sequence[int], dtype: str, *, kind: str = "normal", scale: float = 1.0,
         specials: Sequence[float] = (), max_specials: int = 6) -> np.ndarray:
    """An array of ``shape``: seeded random values (``normal``, ``uniform`` in [-scale, scale], ``pm1``
    for +-1, ``ties`` for small integers), plus up to ``max_specials`` drawn special values."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    if kind == "normal":
        a = rng.standard_normal(shape) * scale
    elif kind == "uniform":
        a = rng.uniform(-scale, scale, shape)
    elif kind == "positive":
        a = rng.uniform(0.1, 1.0, shape) * scale
    elif kind == "pm1":
        a = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    elif kind == "ties":
        a = rng.integers(-2, 3, shape).astype(np.float64) * scale
    else:
        raise ValueError(f"unknown fill kind {kind!r}")
    a = a.astype(dtype)
    size = a.size
    if specials and size:
        count = draw(st.integers(0, min(max_specials, size)))
        for _ in range(count):
            idx = draw(st.integers(0, size - 1))
            a.flat[idx] = _dt(dtype).type(draw(st.sampled_from(tuple(specials))))
    return a


def general_shape(draw: Draw, max_rank: int = 4) -> tuple[int, ...]:
    rank = draw(st.integers(1, max_rank))
    return tuple(dim(draw, 1, 6) for _ in range(rank))


def surrogate_specials(draw: Draw, estimator: str, params: dict, dtype: str) -> list[float]:
    """Probe values for this draw (probes.py): subnormals, zeros, the clip / |x| = 1 boundaries and their ulp
    neighbours, and for fda points at every distance from k pi for small and (drawn) large k."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return surrogate_probes(estimator, params, dtype, rng)


def surrogate_scale(draw: Draw, estimator: str, params: dict, dtype: str) -> float:
    """Half-width of the uniform values: for fda near the origin or over the whole domain (probes.py)."""
    if estimator in ("fda", "fda_series"):
        return draw(st.sampled_from(fda_scale_choices(params, dtype)))
    return 1.5


# ---------------------------------------------------------------------------------------------------
# Geometry: built from a valid output size backwards.

def conv_geometry(draw: Draw, wide: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Kernel, stride, dilation, padding and an input size that gives a valid output; an axis in ``wide``
    ("kernel": one side 4..7, often not square; "height" / "width": that output side in TILE_SIZES)."""
    kh, kw = dim(draw, 1, 3), dim(draw, 1, 3)
    if "kernel" in wide:
        if draw(st.booleans()):
            kh = dim(draw, 4, 7)
        else:
            kw = dim(draw, 4, 7)
    sh, sw = dim(draw, 1, 2), dim(draw, 1, 2)
    dh, dw = dim(draw, 1, 2), dim(draw, 1, 2)
    ph, pw = dim(draw, 0, 2), dim(draw, 0, 2)
    sizes = []
    for k, s, d, p, axis in ((kh, sh, dh, ph, "height"), (kw, sw, dw, pw, "width")):
        eff = (k - 1) * d + 1
        lo = max(1, eff - 2 * p)
        if axis in wide:   # the output side itself straddles a tile: the input is built back from it
            out = extent(draw, 1, 1, True)
            sizes.append(max(lo, (out - 1) * s + eff - 2 * p))
        else:
            sizes.append(draw(st.integers(lo, lo + 5)))
    return {"kernel": (kh, kw), "stride": (sh, sw), "dilation": (dh, dw), "padding": (ph, pw),
            "H": sizes[0], "W": sizes[1]}


def conv_out(size: int, k: int, s: int, d: int, p: int) -> int:
    return (size + 2 * p - (k - 1) * d - 1) // s + 1


def pool_geometry(draw: Draw, wide: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Kernel, stride, padding (at most half the kernel) and an input size; in ``wide``, "width": the input
    width in TILE_SIZES, "kernel": one side 4..8 (a global pool of a small image)."""
    kh, kw = dim(draw, 1, 3), dim(draw, 1, 3)
    if "kernel" in wide:
        if draw(st.booleans()):
            kh = dim(draw, 4, 8)
        else:
            kw = dim(draw, 4, 8)
    sh, sw = dim(draw, 1, 3), dim(draw, 1, 3)
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    H = draw(st.integers(max(1, kh - 2 * ph), max(1, kh - 2 * ph) + 6))
    lo_w = max(1, kw - 2 * pw)
    W = extent(draw, lo_w, lo_w + 6, "width" in wide)
    return {"kernel": (kh, kw), "stride": (sh, sw), "padding": (ph, pw), "H": H, "W": W}


# ---------------------------------------------------------------------------------------------------
# One composite strategy per op. Each takes (dtype, options) and returns a strategy of Case.

def sign_cases(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Draw) -> Case:
        shape = general_shape(draw)
        x = fill(draw, shape, dtype, specials=tiny_values(dtype) + [1.0, -1.0, *NANS], max_specials=8)
        return Case("sign", (("x", x),), {"zero": draw(st.sampled_from(opts.zeros))})
    return build()


def surrogate_cases(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Draw) -> Case:
        est, params = opts.estimator(draw)
        specials = surrogate_specials(draw, est, params, dtype) + list(NON_FINITE)
        x = fill(draw, general_shape(draw), dtype, kind="uniform", scale=surrogate_scale(draw, est, params, dtype),
                 specials=specials, max_specials=24)
        return Case("surrogate", (("x", x),), {"estimator": est, "params": params})
    return build()


def noise_tensor_shape(draw: Draw, layout: str) -> tuple[int, ...]:
    if draw(st.booleans()):
        return (dim(draw, 1, 5), channels(draw), dim(draw, 1, 3), dim(draw, 1, 3))
    return (dim(draw, 1, 5), channels(draw))


def noise_inputs(draw: Draw, dtype: str, opts: OptionSpace, with_g: bool) -> tuple[dict, dict]:
    layout = draw(st.sampled_from(opts.layouts))
    shape = noise_tensor_shape(draw, layout)
    d = int(np.prod(shape[1:])) if layout == "weight" else shape[1]
    m = noise_width(d, draw(st.sampled_from(opts.ks)))
    t = fill(draw, shape, dtype, specials=(0.0, -0.0, 1.0, -1.0))
    if draw(st.booleans()):  # a whole zero row: t W1 = 0 exactly, so relu'(0) = 0 is exercised
        if layout == "weight" or t.ndim == 2:
            t[0] = 0
        else:
            t[0, :, 0, 0] = 0
    w1 = fill(draw, (d, m), dtype, kind="uniform", scale=1.0 / math.sqrt(d) * 2)
    w2 = fill(draw, (m, d), dtype, kind="uniform", scale=1.0 / math.sqrt(m) * 2)
    arrays = {"t": t, "w1": w1, "w2": w2}
    if with_g:
        arrays["g"] = fill(draw, shape, dtype)
    kwargs = {"layout": layout, "eta_kind": draw(st.sampled_from(opts.etas)), "a": draw(st.sampled_from(opts.a_values))}
    return arrays, kwargs


def noise_forward_cases(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Draw) -> Case:
        arr, kw = noise_inputs(draw, dtype, opts, False)
        return Case("noise_forward", (("t", arr["t"]), ("w1", arr["w1"]), ("w2", arr["w2"])), kw)
    return build()


def noise_backward_cases(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Draw) -> Case:
        arr, kw = noise_inputs(draw, dtype, opts, True)
        return Case("noise_backward", (("g", arr["g"]), ("t", arr["t"]), ("w1", arr["w1"]), ("w2", arr["w2"])), kw)
    return build()


def quantize_cases(backward: bool) -> Callable[[str, OptionSpace], st.SearchStrategy[Case]]:
    def strategy(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
        @st.composite
        def build(draw: Draw) -> Case:
            arr, kw = noise_inputs(draw, dtype, opts, backward)
            est, params = opts.estimator(draw)
            has_module = opts.noise and draw(st.booleans())
            w1, w2 = (arr["w1"], arr["w2"]) if has_module else (None, None)
            kw["alpha"] = draw(st.sampled_from(opts.alphas))
            live = has_module and kw["alpha"] != 0  # eval with a live module: only where eval is sign(t)
            training = True
            if not backward and (opts.eval_is_sign or not live):
                training = draw(st.booleans())
            if backward:
                specials = surrogate_specials(draw, est, params, dtype)
            else:   # where z is exactly sign(t), NaN stays NaN and inf is +-1 (a sign of its own may differ)
                specials = tiny_values(dtype) + (list(NON_FINITE) if not (live and training) else [])
            t = arr["t"]
            for _ in range(draw(st.integers(0, min(4, t.size)))):
                t.flat[draw(st.integers(0, t.size - 1))] = draw(st.sampled_from(specials))
            if backward:
                kw.update(estimator=est, params=params)
                return Case("quantize_backward", (("g", arr["g"]), ("t", t), ("w1", w1), ("w2", w2)), kw)
            kw.update(zero=draw(st.sampled_from(opts.zeros)), training=training)
            return Case("quantize_forward", (("t", t), ("w1", w1), ("w2", w2)), kw)
        return build()
    return strategy


def weight_scale_cases(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Draw) -> Case:
        if draw(st.booleans()):
            shape = (dim(draw, 1, 6), channels(draw), dim(draw, 1, 3), dim(draw, 1, 3))
        else:
            shape = (dim(draw, 1, 6), channels(draw))
        w = fill(draw, shape, dtype, specials=(0.0, -0.0))
        return Case("weight_scale", (("w", w),), {"mode": draw(st.sampled_from(opts.scales))})
    return build()


def conv_case(draw: Draw, dtype: str, opts: OptionSpace, backward: bool) -> Case:
    wide = wide_axes(draw)
    geo = conv_geometry(draw, wide)
    n = extent(draw, 1, 3, "batch" in wide)
    cin = extent(draw, 1, 9, "c_in" in wide)
    cout = extent(draw, 1, 9, "c_out" in wide)
    binary = draw(st.booleans())
    kind = "pm1" if binary else "normal"
    x = fill(draw, (n, cin, geo["H"], geo["W"]), dtype, kind=kind, specials=(0.0,))
    w = fill(draw, (cout, cin) + geo["kernel"], dtype, kind="normal", specials=(0.0,))
    kw = {"stride": geo["stride"], "padding": geo["padding"], "dilation": geo["dilation"],
          "pad_value": draw(st.sampled_from(opts.pad_values))}
    if backward:
        ho = conv_out(geo["H"], geo["kernel"][0], geo["stride"][0], geo["dilation"][0], geo["padding"][0])
        wo = conv_out(geo["W"], geo["kernel"][1], geo["stride"][1], geo["dilation"][1], geo["padding"][1])
        g = fill(draw, (n, cout, ho, wo), dtype)
        return Case("conv2d_backward", (("g", g), ("x", x), ("w", w)), {"has_bias": draw(st.booleans()), **kw})
    b = fill(draw, (cout,), dtype) if draw(st.booleans()) else None
    return Case("conv2d_forward", (("x", x), ("w", w), ("b", b)), kw)


def conv_cases(backward: bool) -> Callable[[str, OptionSpace], st.SearchStrategy[Case]]:
    def strategy(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: conv_case(draw, dtype, opts, backward))()
    return strategy


def linear_cases(backward: bool) -> Callable[[str, OptionSpace], st.SearchStrategy[Case]]:
    def strategy(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
        @st.composite
        def build(draw: Draw) -> Case:
            wide = wide_axes(draw, ("batch", "c_out"))
            b_, fin, fout = extent(draw, 1, 6, "batch" in wide), channels(draw, wide=True), extent(draw, 1, 9, "c_out" in wide)
            x = fill(draw, (b_, fin), dtype, kind=draw(st.sampled_from(("normal", "pm1"))), specials=(0.0,))
            w = fill(draw, (fout, fin), dtype, specials=(0.0,))
            if backward:
                g = fill(draw, (b_, fout), dtype)
                return Case("linear_backward", (("g", g), ("x", x), ("w", w)), {"has_bias": draw(st.booleans())})
            b = fill(draw, (fout,), dtype) if draw(st.booleans()) else None
            return Case("linear_forward", (("x", x), ("w", w), ("b", b)), {})
        return build()
    return strategy


def bn_inputs(draw: Draw, dtype: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    c = channels(draw)
    if draw(st.booleans()):
        shape = (dim(draw, 1, 4), c, dim(draw, 1, 4), dim(draw, 1, 4))
    else:
        shape = (dim(draw, 1, 6), c)
    training = draw(st.booleans())
    if training and int(np.prod(shape)) // c < 2:  # the unbiased variance needs 2 values per channel
        shape = (shape[0] + 1,) + shape[1:]
    offset = fill(draw, (1, c) + (1,) * (len(shape) - 2), dtype, kind="uniform", scale=3.0)
    x = (fill(draw, shape, dtype, kind=draw(st.sampled_from(("normal", "ties")))) + offset).astype(dtype)
    arrays = {"x": x, "gamma": fill(draw, (c,), dtype, specials=(0.0, 1.0)), "beta": fill(draw, (c,), dtype),
              "running_mean": fill(draw, (c,), dtype), "running_var": fill(draw, (c,), dtype, kind="positive", scale=2.0)}
    kw = {"training": training, "momentum": draw(st.sampled_from((0.1, 0.01, 0.5))),
          "eps": draw(st.sampled_from((1e-5, 1e-3)))}
    return arrays, kw


def batch_norm_forward_cases(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Draw) -> Case:
        a, kw = bn_inputs(draw, dtype)
        return Case("batch_norm_forward", tuple((k, a[k]) for k in ("x", "gamma", "beta", "running_mean", "running_var")), kw)
    return build()


def bn_statistics(x: np.ndarray, rm: np.ndarray, rv: np.ndarray, training: bool, eps: float, dtype: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(mean, invstd) as batch_norm_forward returns them, computed independently in float64."""
    if training:
        axes = (0,) + tuple(range(2, x.ndim))
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=axes)
        var = ((x64 - mean.reshape((1, -1) + (1,) * (x.ndim - 2))) ** 2).mean(axis=axes)
    else:
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
    return mean.astype(dtype), (1.0 / np.sqrt(var + eps)).astype(dtype)


def batch_norm_backward_cases(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Draw) -> Case:
        a, kw = bn_inputs(draw, dtype)
        mean, invstd = bn_statistics(a["x"], a["running_mean"], a["running_var"], kw["training"], kw["eps"], dtype)
        g = fill(draw, a["x"].shape, dtype)
        return Case("batch_norm_backward", (("g", g), ("x", a["x"]), ("gamma", a["gamma"]), ("mean", mean),
                                            ("invstd", invstd)), {"training": kw["training"]})
    return build()


def image_or_matrix(draw: Draw) -> tuple[int, ...]:
    if draw(st.booleans()):
        return (dim(draw, 1, 3), channels(draw), dim(draw, 1, 5), dim(draw, 1, 5))
    return (dim(draw, 1, 5), channels(draw))


def activation_specials(dtype: str, backward: bool) -> list[float]:
    """Values planted in relu, prelu and pooling inputs: signed zeros and subnormals (ordinary numbers,
    SEMANTICS 10: a flush-to-zero kernel zeroes them), and forward NaN of both signs (it stays NaN, where
    where(x > 0, x, 0), fmax(x, 0) or a `v > best` scan drop it). Never NaN backward: the derivative at a NaN
    x is not decided (frameworks mask by x > 0; a kernel testing x <= 0 differs)."""
    return tiny_values(dtype) + ([] if backward else list(NANS))


def relu_cases(backward: bool) -> Callable[[str, OptionSpace], st.SearchStrategy[Case]]:
    def strategy(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
        @st.composite
        def build(draw: Draw) -> Case:
            shape = general_shape(draw)
            x = fill(draw, shape, dtype, specials=activation_specials(dtype, backward))
            if backward:
                return Case("relu_backward", (("g", fill(draw, shape, dtype)), ("x", x)), {})
            return Case("relu_forward", (("x", x),), {})
        return build()
    return strategy


def prelu_cases(backward: bool) -> Callable[[str, OptionSpace], st.SearchStrategy[Case]]:
    def strategy(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
        @st.composite
        def build(draw: Draw) -> Case:
            shape = image_or_matrix(draw)
            x = fill(draw, shape, dtype, specials=activation_specials(dtype, backward))
            slope_shape = (1,) if draw(st.booleans()) else (shape[1],)
            # slopes of either sign and above 1, where max(x, slope x) (the leaky-relu trick) is not prelu
            slope = fill(draw, slope_shape, dtype, kind="uniform", scale=1.5, specials=(0.25, 0.0, 1.0, 1.5))
            if backward:
                return Case("prelu_backward", (("g", fill(draw, shape, dtype)), ("x", x), ("slope", slope)), {})
            return Case("prelu_forward", (("x", x), ("slope", slope)), {})
        return build()
    return strategy


def pool_cases(kind: str, backward: bool) -> Callable[[str, OptionSpace], st.SearchStrategy[Case]]:
    op = f"{kind}_pool2d_{'backward' if backward else 'forward'}"

    def strategy(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
        @st.composite
        def build(draw: Draw) -> Case:
            wide = wide_axes(draw, ("c_in", "width", "kernel"))
            geo = pool_geometry(draw, wide)
            shape = (dim(draw, 1, 3), extent(draw, 1, 9, "c_in" in wide), geo["H"], geo["W"])
            fill_kind = draw(st.sampled_from(("ties", "normal"))) if kind == "max" else "normal"
            # forward, a window holding a NaN is NaN (SEMANTICS 10), whichever of its elements comes first
            x = fill(draw, shape, dtype, kind=fill_kind, specials=activation_specials(dtype, backward))
            kw = {"kernel": geo["kernel"], "stride": geo["stride"], "padding": geo["padding"]}
            if backward:
                ho = conv_out(geo["H"], geo["kernel"][0], geo["stride"][0], 1, geo["padding"][0])
                wo = conv_out(geo["W"], geo["kernel"][1], geo["stride"][1], 1, geo["padding"][1])
                g = fill(draw, (shape[0], shape[1], ho, wo), dtype)
                return Case(op, (("g", g), ("x", x)), kw)
            return Case(op, (("x", x),), kw)
        return build()
    return strategy


def cross_entropy_cases(backward: bool) -> Callable[[str, OptionSpace], st.SearchStrategy[Case]]:
    op = "cross_entropy_backward" if backward else "cross_entropy_forward"

    def strategy(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
        @st.composite
        def build(draw: Draw) -> Case:
            wide = wide_axes(draw, ("batch", "classes"))   # row kernels of 32 lanes, batch blocks of 8
            b, c = extent(draw, 1, 6, "batch" in wide), extent(draw, 1, 11, "classes" in wide)
            logits = fill(draw, (b, c), dtype, scale=draw(st.sampled_from((1.0, 10.0, 60.0))), specials=(0.0,))
            labels = np.asarray([draw(st.integers(0, c - 1)) for _ in range(b)], dtype=np.int64)
            kw = {"label_smoothing": draw(st.sampled_from((0.0, 0.1, 0.25, 1.0)))}   # s = 1: uniform targets
            if backward:
                g = np.asarray(draw(st.sampled_from((1.0, 0.5, -2.0))), dtype=dtype)
                return Case(op, (("g", g), ("logits", logits), ("labels", labels)), kw)
            return Case(op, (("logits", logits), ("labels", labels)), kw)
        return build()
    return strategy


def pack_signs_cases(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Draw) -> Case:
        rank = draw(st.integers(1, 4))
        shape = [dim(draw, 1, 3) for _ in range(rank)]
        axis = draw(st.integers(-rank, rank - 1))
        shape[axis] = channels(draw, wide=True)
        # subnormals are nonzero (SEMANTICS 1): a flush-to-zero kernel packs them with the zero convention
        x = fill(draw, shape, dtype, specials=[1.0, -1.0] + tiny_values(dtype), max_specials=8)
        return Case("pack_signs", (("x", x),), {"axis": axis, "zero": draw(st.sampled_from(opts.pack_zeros))})
    return build()


def _maybe_stray(draw: Draw, words: np.ndarray, count: int) -> np.ndarray:
    """``words`` as packed, or with random stray bits beyond ``count`` (:func:`.bits.with_stray_bits`)."""
    if not draw(st.booleans()):
        return words
    return with_stray_bits(words, count, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))


def xnor_conv2d_cases(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Draw) -> Case:
        wide = wide_axes(draw, ("batch", "c_out", "height", "width", "kernel"))
        geo = conv_geometry(draw, wide)
        n, c, cout = extent(draw, 1, 3, "batch" in wide), channels(draw, wide=True), extent(draw, 1, 5, "c_out" in wide)
        x = fill(draw, (n, c, geo["H"], geo["W"]), "float64", kind="pm1")
        w = fill(draw, (cout, c) + geo["kernel"], "float64", kind="pm1")
        xp = _maybe_stray(draw, pack_signs_independent(x, axis=1), c)  # (N, H, W, words)
        wp = _maybe_stray(draw, pack_signs_independent(w, axis=1), c)
        kw = {"channels": c, "stride": geo["stride"], "padding": geo["padding"], "dilation": geo["dilation"],
              "pad_value": draw(st.sampled_from(opts.pad_values))}
        return Case("xnor_conv2d", (("x_packed", xp), ("w_packed", wp)), kw)
    return build()


def xnor_linear_cases(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Draw) -> Case:
        wide = wide_axes(draw, ("batch", "c_out"))
        b, f, out = extent(draw, 1, 5, "batch" in wide), channels(draw, wide=True), extent(draw, 1, 6, "c_out" in wide)
        x = fill(draw, (b, f), "float64", kind="pm1")
        w = fill(draw, (out, f), "float64", kind="pm1")
        return Case("xnor_linear", (("x_packed", _maybe_stray(draw, pack_signs_independent(x, axis=1), f)),
                                    ("w_packed", _maybe_stray(draw, pack_signs_independent(w, axis=1), f))),
                    {"features": f})
    return build()


def sum_to_shape_cases(dtype: str, opts: OptionSpace) -> st.SearchStrategy[Case]:
    """A target shape (some axes 1) and x broadcast from it: up to two leading axes added, some of the
    size-1 axes stretched (the gradient of a broadcast operand)."""
    @st.composite
    def build(draw: Draw) -> Case:
        target = tuple(draw(st.sampled_from((1, 1, 2, 3, 5))) for _ in range(draw(st.integers(0, 3))))
        lead = tuple(dim(draw, 1, 4) for _ in range(draw(st.integers(0, 2))))
        full = lead + tuple(dim(draw, 1, 5) if n == 1 else n for n in target)
        x = fill(draw, full, dtype, specials=(0.0, -0.0))
        return Case("sum_to_shape", (("x", x),), {"shape": target})
    return build()
