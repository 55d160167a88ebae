"""The fused quantizer pass shared among torch's OpenMP threads (backends/torch/omp_team.py): the same values
whatever the thread count, team or no team, and never a silently skipped image range."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

from fdaref.backends.torch import cpu_loops, omp_team  # noqa: E402


def _case(layout: str, seed: int = 0):
    """5 images (uneven over 2 or 3 slots), 16 channels, m = 1, values at two scales."""
    gen = torch.Generator().manual_seed(seed)
    scale = torch.tensor([0.5, 30.0])[torch.randint(0, 2, (5, 16, 6, 7), generator=gen)]
    x = torch.randn(5, 16, 6, 7, generator=gen) * scale
    g = torch.randn(5, 16, 6, 7, generator=gen)
    if layout == "channels_last":
        x, g = x.contiguous(memory_format=torch.channels_last), g.contiguous(memory_format=torch.channels_last)
    w1, w2 = torch.randn(16, 1, generator=gen) * 0.3, torch.randn(1, 16, generator=gen) * 0.3
    return x, g, w1, w2


def _pass(x, g, w1, w2):
    z, h = cpu_loops.quantize_forward(x, w1, w2, -1.0, 0.3, 0.03)
    return (z, h) + cpu_loops.quantize_backward(g, x, h, w1, w2, 9, 0.1, 0.03, 0.3)


def _with_threads(n: int, fn):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory map is read on Linux")
def test_the_team_is_the_openmp_runtime_torch_loaded():
    if "OpenMP" not in torch.__config__.parallel_info():
        pytest.skip("torch here has another parallel backend")
    import numba.np.ufunc.omppool  # noqa: F401  numba's OpenMP layer: maps the system's libgomp beside torch's
    with open("/proc/self/maps") as maps:
        mapped = {line.split()[-1] for line in maps if "libgomp" in line and "/" in line}
    torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    bundled = [p for p in mapped if os.path.dirname(p) == torch_lib]
    if not bundled and len(mapped) != 1:
        pytest.skip("torch here uses a libgomp outside its package, beside another")
    # torch's own copy wins whatever else is mapped (here: also the system's, through numba)
    assert omp_team._loaded_libgomp() == (bundled[0] if bundled else next(iter(mapped)))
    assert omp_team.available()


@pytest.mark.parametrize("layout", ("nchw", "channels_last"))
def test_values_do_not_depend_on_threads_or_team(monkeypatch, layout):
    x, g, w1, w2 = _case(layout)
    one = _with_threads(1, lambda: _pass(x, g, w1, w2))
    runs = {"two threads": _with_threads(2, lambda: _pass(x, g, w1, w2))}
    with monkeypatch.context() as patch:   # no team: the calling thread takes all three slots itself
        patch.setattr(omp_team, "_gomp_parallel", lambda: None)
        patch.setattr(cpu_loops, "_slots", lambda images: 3)
        runs["three slots, one thread"] = _pass(x, g, w1, w2)
    for name, got in runs.items():
        for i, label in enumerate(("z", "h", "dt")):   # each image is one thread's: bit for bit
            assert torch.equal(got[i], one[i]), (name, label)
        for i, label in ((3, "dW1"), (4, "dW2")):      # sums per image range, then over ranges: order only
            torch.testing.assert_close(got[i], one[i], rtol=1e-6, atol=1e-7, msg=f"{name} {label}")
    assert one[0].is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")


def test_an_image_range_never_done_is_no_result(monkeypatch):
    """Should a team skip a slot, its ok flag stays 0 and the pass answers None (the torch kernels take
    over): never a tensor with a range left unwritten."""
    x, g, w1, w2 = _case("nchw")
    z, h = cpu_loops.quantize_forward(x, w1, w2, -1.0, 0.3, 0.03)
    monkeypatch.setattr(omp_team, "run", lambda kernel, context, slots: None)
    assert cpu_loops.quantize_forward(x, w1, w2, -1.0, 0.3, 0.03) is None
    assert cpu_loops.quantize_backward(g, x, h, w1, w2, 9, 0.1, 0.03, 0.3) is None


def test_run_without_a_team_calls_the_kernel_once(monkeypatch):
    """No team (another backend or platform): the calling thread runs the kernel, which takes every slot."""
    monkeypatch.setattr(omp_team, "_gomp_parallel", lambda: None)
    x, g, w1, w2 = _case("channels_last")
    got = _pass(x, g, w1, w2)
    want = _with_threads(1, lambda: _pass(x, g, w1, w2))
    assert torch.equal(got[2], want[2]) and np.isfinite(got[3].numpy()).all()
