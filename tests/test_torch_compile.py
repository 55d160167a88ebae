"""The torch modules under torch.compile (CPU): one graph for a binary resnet20 (no graph break), forward
and backward traced whole (fullgraph), the same values as eager, and no recompile when the SEMANTICS 6 schedule
changes alpha and n (they are buffers). The aot_eager backend traces exactly what Inductor would get,
without the C++ compile (fast enough for make test)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
dynamo = pytest.importorskip("torch._dynamo")
from torch._dynamo.testing import CompileCounterWithBackend  # noqa: E402

from fdaref.presets import get_preset  # noqa: E402

from fdaref.backends.torch import modules as M  # noqa: E402


def _model(seed: int = 0, builder=M.resnet20) -> torch.nn.Module:
    model = builder(1, 10, options=get_preset("paper"), seed=seed)
    M.FDASchedule(model, 10).on_epoch_start(2)
    return model.train()


def test_forward_backward_fullgraph_matches_eager_and_schedule_does_not_recompile() -> None:
    """In float64, so that the traced graph's other summation orders (decomposed batch norm) cannot flip the
    sign of an activation next to 0, which in float32 changes the gradients of a few images."""
    dynamo.reset()
    eager, compiled_model = _model().double(), _model().double()
    compiled_model.load_state_dict(eager.state_dict())
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(compiled_model, backend=counter, fullgraph=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 16, 16, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (4,), generator=gen)
    schedules = (M.FDASchedule(eager, 10), M.FDASchedule(compiled_model, 10))
    frames_after_first = None
    for epoch in (2, 5, 9):                        # n 11 -> 14 -> 18, alpha down to 0
        for s in schedules:
            s.on_epoch_start(epoch)
        losses = []
        for model, fn in ((eager, eager), (compiled_model, compiled)):
            model.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(fn(x), y)
            loss.backward()
            losses.append(loss.detach())
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-10, atol=1e-10)
        grads = dict(eager.named_parameters())
        for name, p in compiled_model.named_parameters():
            torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-7, atol=1e-9, msg=name)
        frames_after_first = frames_after_first or counter.frame_count
    # fullgraph: no break; and the later epochs' alpha and n compile nothing new (aot_eager may take two
    # frames for the very first float64 call; what matters is that a schedule change adds none)
    assert frames_after_first is not None and counter.frame_count == frames_after_first <= 2
    assert compiled_model.layers[0].conv1.w_quant.n.item() == 18
    assert compiled_model.layers[0].conv1.w_quant.alpha.item() == 0.0
    assert "layers.0.conv1.w_quant.alpha" in compiled_model.state_dict()


# One thread on the binary resnet20 (its forward explained as one graph with no break, the check);
# two threads on the small convnet: the choice is made per FDA layer, and Dynamo on resnet20 costs ~20 s a case.
@pytest.mark.parametrize("threads,team,builder", [(1, False, M.resnet20), (2, True, M.tiny), (2, False, M.tiny)])
def test_cpu_activations_take_the_fused_ops_on_one_thread(monkeypatch, threads, team, builder) -> None:
    """On one torch thread the compiled graph calls the fdaref custom ops for the activations and traces the
    weights as math; on more, team or not, it traces everything as math (Inductor's kernels were as fast).
    Either way the forward is one graph with no break and the values equal eager's (float32, tolerance of
    summation order)."""
    from fdaref.backends.torch import omp_team
    if team and not omp_team.available():
        pytest.skip("torch's OpenMP runtime is not at hand here")
    monkeypatch.setattr(omp_team, "available", lambda: team)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dynamo.reset()
        model = _model(builder=builder)
        x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
        explained = dynamo.explain(model)(x)
        code = "\n".join(g.code for g in explained.graphs)
        assert explained.graph_break_count == 0, explained.break_reasons
        assert explained.graph_count == 1
        assert len(M.fda_layers(model)) >= 2
        calls = code.count("fdaref.quantize_forward")
        assert calls == (len(M.fda_layers(model)) if threads == 1 else 0)   # the team changes nothing
        dynamo.reset()
        torch.testing.assert_close(torch.compile(model, backend="aot_eager")(x), model(x), rtol=1e-4, atol=1e-4)
    finally:
        torch.set_num_threads(before)
        dynamo.reset()
