"""Every file of the tree that the README, the docs or the Makefile name exists (a command that cites a
script nobody wrote fails here, not in a user's shell)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "Makefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
# A path into one of the tree's folders, as prose and commands write it; {a,b} is expanded.
PATH = re.compile(r"(?<![\w/.-])((?:bench|examples|tests|conformance|fdaref|backends|cli|docs|results|\.ci)"
                  r"/[\w./{},-]*[\w}])")
# What a documented command writes (its default output), not a file of the tree.
OUTPUTS = {"bench/results/conform_sweep.json"}


def _expand(path: str) -> list[str]:
    brace = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", path)
    if brace is None:
        return [path]
    head, options, tail = brace.groups()
    return [head + option + tail for option in options.split(",")]


def _named_paths(doc: str) -> list[str]:
    text = (ROOT / doc).read_text(encoding="utf-8")
    return sorted({p for match in PATH.findall(text) for p in _expand(match)})


def test_the_pattern_finds_paths_in_prose_and_commands():
    assert PATH.findall("run `python bench/bench_torch.py --x` and see results/a_b/{c,d}.json.") == [
        "bench/bench_torch.py", "results/a_b/{c,d}.json"]
    assert _expand("results/a_b/{c,d}.json") == ["results/a_b/c.json", "results/a_b/d.json"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_named_file_exists(doc):
    missing = [p for p in _named_paths(doc) if p not in OUTPUTS and not (ROOT / p).exists()]
    assert not missing, f"{doc} names files that are not in the tree: {missing}"
