"""Optimizers and the LR schedule against hand-computed formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fdaref.autodiff import Tensor
from fdaref.optim import SGD, Adam, CosineLR
from fdaref.reference import REFERENCE


def param(values) -> Tensor:
    return Tensor.from_numpy(np.asarray(values, dtype=np.float64), REFERENCE, requires_grad=True)


def run(opt, p, grads):
    out = []
    for g in grads:
        p.grad = np.asarray(g, dtype=np.float64)
        opt.step()
        out.append(p.numpy().copy())
    return out


def test_plain_sgd():
    p = param([1.0, -2.0])
    (w1,) = run(SGD([p], lr=0.1), p, [[0.5, 1.0]])
    np.testing.assert_allclose(w1, [1.0 - 0.05, -2.0 - 0.1], rtol=1e-15)


def test_sgd_momentum_and_weight_decay():
    p = param([1.0])
    lr, mu, wd = 0.1, 0.9, 0.01
    w = run(SGD([p], lr=lr, momentum=mu, weight_decay=wd), p, [[2.0], [-1.0], [0.5]])
    # by hand: d = g + wd*w; b1 = d1; b_t = mu b_{t-1} + d_t; w -= lr b
    w0 = 1.0
    d1 = 2.0 + wd * w0; b = d1; x1 = w0 - lr * b
    d2 = -1.0 + wd * x1; b = mu * b + d2; x2 = x1 - lr * b
    d3 = 0.5 + wd * x2; b = mu * b + d3; x3 = x2 - lr * b
    np.testing.assert_allclose(np.concatenate(w), [x1, x2, x3], rtol=1e-14)


def test_sgd_nesterov():
    p = param([0.3])
    lr, mu = 0.05, 0.9
    w = run(SGD([p], lr=lr, momentum=mu, nesterov=True), p, [[1.0], [2.0]])
    b1 = 1.0; x1 = 0.3 - lr * (1.0 + mu * b1)
    b2 = mu * b1 + 2.0; x2 = x1 - lr * (2.0 + mu * b2)
    np.testing.assert_allclose(np.concatenate(w), [x1, x2], rtol=1e-14)
    with pytest.raises(ValueError, match="nesterov needs momentum"):
        SGD([p], lr=0.1, nesterov=True)


def test_adam():
    p = param([1.0, 2.0])
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    grads = [[0.1, -0.2], [0.3, 0.0], [-0.5, 0.4]]
    w = run(Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd), p, grads)
    x, m, v = np.array([1.0, 2.0]), 0.0, 0.0
    for t, g in enumerate(grads, 1):
        g = np.array(g) + wd * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        np.testing.assert_allclose(w[t - 1], x, rtol=1e-14)


def test_params_without_grad_are_skipped_and_grads_never_mutated():
    a, b = param([1.0]), param([2.0])
    g = np.array([1.0])
    a.grad = g
    opt = SGD([a, b], lr=0.5, momentum=0.9, weight_decay=0.1)
    opt.step()
    np.testing.assert_array_equal(b.numpy(), [2.0])
    np.testing.assert_array_equal(g, [1.0])
    opt.zero_grad()
    assert a.grad is None


def test_state_dict_resume_gives_identical_trajectory():
    grads = [[0.1, -0.2], [0.3, 0.0], [-0.5, 0.4], [0.2, 0.2]]
    for make in (lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True), lambda ps: Adam(ps, lr=0.01)):
        p = param([1.0, 2.0])
        opt = make([p])
        full = run(opt, p, grads)
        q = param([1.0, 2.0])
        first = make([q])
        run(first, q, grads[:2])
        sd = first.state_dict()
        resumed = make([q])
        resumed.load_state_dict(sd)
        rest = run(resumed, q, grads[2:])
        np.testing.assert_array_equal(rest[-1], full[-1])
    with pytest.raises(ValueError, match="state for 1 parameters"):
        SGD([param([1.0]), param([2.0])], lr=0.1).load_state_dict(sd)


def test_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="require grad"):
        SGD([Tensor.from_numpy(np.ones(2), REFERENCE)], lr=0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        SGD([param([1.0])], lr=0.0)


def test_cosine_lr():
    opt = SGD([param([1.0])], lr=0.1)
    sched = CosineLR(opt, total_steps=10, min_lr=0.001)
    assert opt.lr == pytest.approx(0.1)
    lrs = [sched.step() for _ in range(10)]
    expected = [0.001 + (0.1 - 0.001) * 0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(1, 11)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-14)
    assert opt.lr == pytest.approx(0.001)
    sd = sched.state_dict()
    other = CosineLR(SGD([param([1.0])], lr=0.1), total_steps=3)
    other.load_state_dict({**sd, "last_step": 5})
    assert other.optimizer.lr == pytest.approx(expected[4])


def test_sgd_float32_stays_float32():
    p = Tensor.from_numpy(np.ones(3, np.float32), REFERENCE, requires_grad=True)
    p.grad = np.full(3, 0.5, np.float32)
    SGD([p], lr=0.1, momentum=0.9, weight_decay=1e-4).step()
    assert p.data.dtype == np.float32
