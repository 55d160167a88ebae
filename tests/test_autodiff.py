"""The autodiff engine: arithmetic, broadcasting, accumulation, depth, no_grad, indexing, errors."""
from __future__ import annotations

import numpy as np
import pytest

from fdaref.autodiff import Tensor, no_grad

from fdaref.functions import cross_entropy, pad_channels
from fdaref.gradcheck import check_vjp
from fdaref.reference import REFERENCE


def T(a, requires_grad=True) -> Tensor:
    return Tensor.from_numpy(np.asarray(a, dtype=np.float64), REFERENCE, requires_grad=requires_grad)


def engine_vjp_error(fn, inputs: dict, rng: np.random.Generator) -> float:
    """Relative error of the engine's VJP of ``fn`` (Tensors -> Tensor) against central differences."""
    def forward(**arrays):
        with no_grad():
            return fn(**{k: T(v, False) for k, v in arrays.items()}).numpy()

    def vjp(g, **arrays):
        ts = {k: T(v) for k, v in arrays.items()}
        fn(**ts).backward(np.asarray(g, dtype=np.float64))
        return {k: t.grad for k, t in ts.items()}

    return check_vjp(forward, vjp, inputs, rng)


def test_arithmetic_with_broadcasting_matches_hand_formulas():
    rng = np.random.default_rng(0)
    a_np, b_np = rng.standard_normal((4, 3)), rng.uniform(1, 2, (3,))
    a, b = T(a_np), T(b_np)
    # f = sum(a*b + a/b - b), b broadcast over 4 rows
    ((a * b + a / b) - b).sum().backward()
    np.testing.assert_allclose(a.grad, np.broadcast_to(b_np + 1 / b_np, (4, 3)), rtol=1e-14)
    np.testing.assert_allclose(b.grad, (a_np - a_np / b_np ** 2).sum(0) - 4, rtol=1e-13)
    assert b.grad.shape == (3,)


@pytest.mark.parametrize("shape_b", [(3,), (1, 3), (4, 1), (1, 1), ()])
def test_broadcast_grads_vs_finite_differences(shape_b):
    rng = np.random.default_rng(1)
    inputs = {"a": rng.standard_normal((4, 3)), "b": rng.uniform(1, 2, shape_b)}
    err = engine_vjp_error(lambda a, b: (a * b - b / a) * (a + b) - (-b), inputs, rng)
    assert err < 1e-7


def test_scalar_operands_on_both_sides():
    x_np = np.array([1.0, 2.0, 4.0])
    x = T(x_np)
    y = (2.0 - x) * 3.0 + 1.0 / x - x / 2.0 + np.float64(2.0) * x
    np.testing.assert_allclose(y.numpy(), (2 - x_np) * 3 + 1 / x_np - x_np / 2 + 2 * x_np)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, -3 - 1 / x_np ** 2 - 0.5 + 2)


def test_tensor_used_twice_accumulates_and_first_contribution_is_not_mutated():
    x_np = np.array([1.0, -2.0, 3.0])
    x = T(x_np)
    y = x * x + x  # x appears three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x_np + 1)
    # add's backward hands the SAME array to both inputs; the sum must be a new array, not an in-place +=
    u = T(x_np)
    v = u + u
    g = np.ones(3)
    v.backward(g)
    np.testing.assert_array_equal(u.grad, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(g, [1.0, 1.0, 1.0])  # the caller's gradient is untouched


def test_leaf_grad_accumulates_across_backward_calls():
    x = T([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * 4.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [7.0, 7.0])


def test_deep_chain_of_2000_ops_is_iterative():
    x = T(np.array([0.5, -1.0]))
    y = x
    for _ in range(1000):
        y = y * 1.0005
        y = y + 0.001
    assert y._ctx is not None
    y.sum().backward()  # 2000 ops deep: a recursive topological sort would hit Python's recursion limit
    np.testing.assert_allclose(x.grad, np.full(2, 1.0005 ** 1000), rtol=1e-12)
    assert y._ctx is None  # the graph is freed after backward


def test_diamond_graph_visits_shared_node_once():
    x = T([2.0])
    h = x * x          # shared
    y = h * 3.0 + h * h
    y.backward(np.ones(1))
    # y = 3 x^2 + x^4 -> 6x + 4x^3 = 12 + 32
    np.testing.assert_allclose(x.grad, [44.0])


@pytest.mark.parametrize("order", ["shared_first", "shared_last"])
def test_topological_order_independent_of_operand_order(order):
    # y = b + 2b with b = 3x: b must receive both contributions before its own backward runs, whichever
    # operand the depth-first search pushes first
    x = T([1.0])
    b = x * 3.0
    y = b + b * 2.0 if order == "shared_first" else b * 2.0 + b
    y.backward(np.ones(1))
    np.testing.assert_array_equal(x.grad, [9.0])
    # a longer version: a chain where every node is used by the next two
    x = T([0.5])
    nodes = [x * 1.0, x * 1.0]
    for _ in range(30):
        nodes.append(nodes[-1] * 0.5 + nodes[-2] * 0.25)
    nodes[-1].backward(np.ones(1))
    c = [1.0, 1.0]
    for _ in range(30):
        c.append(0.5 * c[-1] + 0.25 * c[-2])
    np.testing.assert_allclose(x.grad, [c[-1] * 1.0 + 0.0], rtol=1e-12)


def test_no_grad_records_nothing_and_restores():
    x = T([1.0, 2.0])
    with no_grad():
        y = x * 2.0
    assert not y.requires_grad and y._ctx is None
    z = x * 2.0
    assert z.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_constants_get_no_grad():
    c = T([1.0, 2.0], requires_grad=False)
    x = T([3.0, 4.0])
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])


def test_getitem_basic_slicing_backward():
    rng = np.random.default_rng(2)
    x_np = rng.standard_normal((2, 3, 4, 4))
    x = T(x_np)
    y = x[:, 1:, ::2, 1::2]
    assert y.shape == (2, 2, 2, 2)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    expected = np.zeros_like(x_np)
    expected[:, 1:, ::2, 1::2] = g
    np.testing.assert_array_equal(x.grad, expected)
    err = engine_vjp_error(lambda a: a[0, ..., None, :3] * a[1, ..., None, 1:], {"a": x_np}, rng)
    assert err < 1e-7


def test_getitem_rejects_advanced_indexing():
    x = T(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="only basic indexing"):
        x[np.array([0, 0])]
    with pytest.raises(TypeError, match="only basic indexing"):
        x[[0, 1]]


def test_pad_channels_forward_and_backward():
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((2, 3, 2, 2))
    x = T(x_np)
    y = pad_channels(x, 2, 1)
    assert y.shape == (2, 6, 2, 2)
    np.testing.assert_array_equal(y.numpy()[:, 2:5], x_np)
    assert not y.numpy()[:, :2].any() and not y.numpy()[:, 5:].any()
    g = rng.standard_normal(y.shape)
    y.backward(g)
    np.testing.assert_array_equal(x.grad, g[:, 2:5])


def test_reshape_flatten_sum_mean():
    rng = np.random.default_rng(4)
    x_np = rng.standard_normal((2, 3, 4))
    err = engine_vjp_error(lambda a: a.flatten(1).reshape(4, 6) * a.reshape((6, 4)).reshape(4, 6), {"a": x_np}, rng)
    assert err < 1e-7
    x = T(x_np)
    m = x.mean()
    assert m.shape == ()
    np.testing.assert_allclose(m.numpy(), x_np.mean())
    m.backward()
    np.testing.assert_allclose(x.grad, np.full(x_np.shape, 1 / 24))


def test_scalar_loss_backward_through_cross_entropy():
    rng = np.random.default_rng(5)
    logits_np = rng.standard_normal((4, 5))
    labels = np.array([0, 3, 1, 4], dtype=np.int64)
    logits = T(logits_np)
    loss = cross_entropy(logits, labels)
    loss.backward()
    p = np.exp(logits_np - logits_np.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(loss.numpy(), -np.log(p[np.arange(4), labels]).mean(), rtol=1e-12)
    q = np.eye(5)[labels]
    np.testing.assert_allclose(logits.grad, (p - q) / 4, rtol=1e-10, atol=1e-15)


def test_error_messages():
    x = T(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match="single-element output"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match=r"expected shape \(2, 2\)"):
        (x * 2.0).backward(np.ones(3))
    with pytest.raises(TypeError, match="already a Tensor"):
        Tensor(x)

    class Other:  # a second op table object: mixing backends must fail loudly
        name = "other"
    y = Tensor(np.ones((2, 2)), Other())
    with pytest.raises(ValueError, match="different backends"):
        x + y


def test_second_backward_through_a_freed_graph_raises():
    x = T([1.0, 2.0])
    h = x * 2.0
    a, b = (h * h).sum(), (h * 3.0).sum()
    a.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        b.backward()  # shares h, whose graph the first call freed
    with pytest.raises(RuntimeError, match="already freed"):
        a.backward()


def test_helpers():
    x = T(np.arange(4.0).reshape(2, 2))
    d = (x * 2.0).detach()
    assert not d.requires_grad and d._ctx is None
    assert x.shape == (2, 2) and x.dtype == np.float64 and x.ndim == 2
    assert isinstance(x.numpy(), np.ndarray)
    assert "requires_grad=True" in repr(x)
    f32 = Tensor.from_numpy(np.ones(3, np.float32), REFERENCE, requires_grad=True)
    (f32 * 2.0).sum().backward()
    assert f32.grad.dtype == np.float32
