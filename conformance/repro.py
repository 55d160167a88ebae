"""A copy-pasteable Python reproduction of one case (built from the shrunk Hypothesis example)."""
from __future__ import annotations

import base64
from typing import Optional

import numpy as np

from .case import Case, plain

LITERAL_LIMIT = 48  # arrays up to this many elements are written as literals, larger ones as base64 bytes


def array_source(a: Optional[np.ndarray]) -> str:
    """Python source that rebuilds ``a`` exactly (dtype, shape and every bit)."""
    if a is None:
        return "None"
    a = np.asarray(a)
    dt = a.dtype.name
    if a.size <= LITERAL_LIMIT and a.dtype.kind in "fiu":
        values = [_literal(v) for v in a.reshape(-1).tolist()]
        return f"np.array([{', '.join(values)}], dtype=np.{dt}).reshape({tuple(a.shape)!r})"
    data = base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")
    return f"arr({data!r}, np.{dt}, {tuple(a.shape)!r})"


def _literal(v: object) -> str:
    if isinstance(v, float):
        if np.isnan(v):
            return "np.nan"
        if np.isinf(v):
            return "np.inf" if v > 0 else "-np.inf"
        return repr(v)
    return repr(v)


def reproduction(case: Case, backend_spec: str, device: str, dtype: str, strided: bool = False) -> str:
    """A script: load the backend, run the op on exactly these inputs, compare with the reference (with the
    clip rounded as :meth:`Case.reference_kwargs` rounds it); ``strided``: pass the inputs as the
    non-contiguous arrays of :meth:`Case.strided`, where the failure showed."""
    lines = [
        "import base64",
        "import numpy as np",
        "from fdaref.backend_loader import load_backend",
        "from fdaref.reference import REFERENCE",
        "",
        "def arr(b64, dtype, shape):",
        "    return np.frombuffer(base64.b64decode(b64), dtype=dtype).reshape(shape).copy()",
        "",
        f"be = load_backend({backend_spec!r})",
        f"device = {device!r}  # inputs below are the given {dtype} values",
    ]
    for name, a in case.arrays:
        lines.append(f"{name} = {array_source(a)}")
    kw, ref_kw = plain(case.kwargs), plain(case.reference_kwargs())
    lines.append(f"kwargs = {kw!r}")
    lines.append(f"ref_kwargs = {ref_kw!r}" if ref_kw != kw else "ref_kwargs = kwargs")
    names = ", ".join(case.names)
    lines.append(f"inputs = [{names}{',' if len(case.names) == 1 else ''}]")
    if strided:
        lines += ["from fdaref.conformance.case import noncontiguous  # the failure needs non-contiguous inputs",
                  "inputs = [noncontiguous(a) for a in inputs]"]
    lines += [
        f"got = be.{case.op}(*[None if a is None else be.from_numpy(a, device) for a in inputs], **kwargs)",
        "got = [None if o is None else be.to_numpy(o) for o in (got if isinstance(got, tuple) else (got,))]",
        "f64 = lambda a: a.astype(np.float64) if a is not None and a.dtype.kind == 'f' else a",
        f"ref = REFERENCE.{case.op}(*[f64(a) for a in inputs], **ref_kwargs)",
        "ref = list(ref if isinstance(ref, tuple) else (ref,))",
        "for g, r in zip(got, ref):",
        "    if g is None or r is None:",
        "        print('got', g, 'reference', r)",
        "    else:",
        "        d = np.abs(np.asarray(g, np.float64) - np.asarray(r, np.float64))",
        "        i = np.unravel_index(np.nanargmax(d), d.shape) if d.size else ()",
        "        print('max |got - ref| =', d.max() if d.size else 0.0, 'at', i)",
    ]
    return "\n".join(lines)
