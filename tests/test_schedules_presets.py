"""SEMANTICS 6 schedules and SEMANTICS 7 presets."""
import math

import pytest

from fdaref.presets import PRESETS, BinaryOptions, get_preset
from fdaref.schedules import alpha_cosine, cosine_lr, n_bibench, n_linear


def test_n_linear_goes_from_9_to_18_inclusive():
    assert [n_linear(e, 10) for e in range(10)] == [9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    assert n_linear(0, 400) == 9 and n_linear(399, 400) == 18
    assert n_linear(0, 1) == 18
    values = [n_linear(e, 37) for e in range(37)]
    assert values == sorted(values)


def test_n_bibench_never_reaches_18():
    assert [n_bibench(e, 10) for e in range(10)] == [9, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    assert n_bibench(0, 400) == 9 and n_bibench(399, 400) == 17


def test_alpha_cosine_decays_to_exactly_zero():
    epochs = 8
    alphas = [alpha_cosine(e, epochs) for e in range(epochs)]
    assert alphas[0] == pytest.approx(0.05 * (1 + math.cos(math.pi / epochs)))
    assert alphas[-1] == 0.0
    assert all(a > b for a, b in zip(alphas, alphas[1:]))


def test_cosine_lr_endpoints():
    assert cosine_lr(0, 100, 0.1) == pytest.approx(0.1)
    assert cosine_lr(50, 100, 0.1) == pytest.approx(0.05)
    assert cosine_lr(100, 100, 0.1) == pytest.approx(0.0)


def test_schedule_errors():
    with pytest.raises(ValueError, match="epoch: expected 0 <= epoch < epochs=5"):
        n_linear(5, 5)
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1"):
        alpha_cosine(0, 0)


def test_presets_match_spec7():
    paper, bibench, release = PRESETS["paper"], PRESETS["bibench"], PRESETS["release"]
    assert (paper.zero, paper.estimator, paper.omega, paper.clip, paper.noise, paper.k, paper.eta, paper.a,
            paper.alpha0, paper.scale, paper.pad_value) == (-1.0, "fda", 0.1, None, True, 64, "sin", 0.1, 0.1,
                                                            "channel", 0.0)
    assert [paper.n_at(e, 10) for e in (0, 9)] == [9, 18]
    assert (bibench.zero, bibench.clip, bibench.scale) == (0.0, 1.0, "channel")
    assert [bibench.n_at(e, 10) for e in (0, 9)] == [9, 17]
    assert (release.zero, release.estimator, release.noise, release.scale) == (0.0, "ste", False, "layer")
    assert release.alpha_at(0, 10) == 0.0
    assert paper.params_at(9, 10) == {"n": 18, "omega": 0.1, "clip": None}


def test_options_are_validated():
    with pytest.raises(KeyError, match="unknown preset 'xnor'"):
        get_preset("xnor")
    with pytest.raises(ValueError, match="scale: expected one of"):
        BinaryOptions(scale="row")
    with pytest.raises(KeyError, match="unknown estimator"):
        BinaryOptions(estimator="magic")
    with pytest.raises(TypeError, match="unknown parameter"):
        BinaryOptions(estimator="tanh", estimator_params=(("gamma", 1.0),))
    assert BinaryOptions(estimator="tanh", estimator_params=(("beta", 3.0),)).params_at(0, 1) == {"beta": 3.0}
