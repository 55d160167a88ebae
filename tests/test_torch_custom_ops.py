"""The CPU quantizer's custom ops (backends/torch/quantize.py): torch.library.opcheck (schema, fake kernels
whose strides match the real ones, autograd registration, no aliasing) on every layout they are handed."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from fdaref.backends.torch import quantize as Q  # noqa: E402

PARAMS = Q.params_json((("clip", None), ("omega", 0.1)))
CASES = {
    "nchw": (lambda: torch.randn(3, 16, 5, 6), "activation", 16, 1),
    "channels_last": (lambda: torch.randn(3, 16, 5, 6).contiguous(memory_format=torch.channels_last),
                      "activation", 16, 1),
    "strided": (lambda: torch.randn(3, 5, 6, 130)[..., :128].permute(0, 3, 1, 2), "activation", 128, 2),
    "weight": (lambda: torch.randn(8, 4, 3, 3), "weight", 36, 2),
    "float64": (lambda: torch.randn(3, 16, 5, 6, dtype=torch.float64), "activation", 16, 1),
}


def _args(case: str, module: bool, training: bool):
    make, layout, d, m = CASES[case]
    t = make().requires_grad_()
    w1 = torch.randn(d, m, dtype=t.dtype, requires_grad=True) if module else None
    w2 = torch.randn(m, d, dtype=t.dtype, requires_grad=True) if module else None
    return (t, w1, w2, torch.tensor(0.3, dtype=t.dtype), torch.tensor(9), -1.0, "fda", PARAMS, layout, "sin", 0.1,
            training)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("module,training", [(True, True), (False, True), (True, False)])
def test_forward_op_passes_opcheck(case, module, training):
    torch.library.opcheck(Q._forward_op, _args(case, module, training))


@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_op_passes_opcheck(case):
    args = _args(case, True, True)
    t, w1, w2, alpha, n = args[:5]
    with torch.no_grad():
        _, h = Q._forward_op(*args)
    g = torch.randn_like(t)
    torch.library.opcheck(Q._backward_op, (g, t.detach(), h, w1.detach(), w2.detach(), alpha, n, "fda", PARAMS,
                                           args[8], "sin", 0.1))


def test_outputs_keep_the_channels_last_layout():
    """What lets torch.compile hand over its channels-last activations without a copy either way."""
    t, w1, w2, *rest = _args("channels_last", True, True)
    z, h = Q._forward_op(t, w1, w2, *rest)
    assert z.is_contiguous(memory_format=torch.channels_last) and not z.is_contiguous()
    z.backward(torch.ones_like(z))
    assert t.grad.is_contiguous(memory_format=torch.channels_last)
