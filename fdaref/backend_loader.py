"""Find a backend by name: a built-in or installed one through the ``fdaref.backends`` entry-point group,
or a third party's object given as ``package.module:object``. fdaref never imports a backend by name."""
from __future__ import annotations

from .errors import InputError

import importlib
from importlib.metadata import entry_points
from typing import Any

from .optable import missing_ops

ENTRY_POINT_GROUP = "fdaref.backends"


class BackendUnavailable(InputError, RuntimeError):
    """The backend exists but cannot run here (no GPU, a missing package); the message says why."""


class BackendNotFound(InputError, LookupError):
    """No backend of that name (or no such object in the module given)."""


class NotAnOpTable(InputError, TypeError):
    """The object named is not an op table."""


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_names() -> list[str]:
    """Names of every backend registered through the entry-point group (installed or not)."""
    return sorted(_entry_points())


def load_backend(spec: str) -> Any:
    """The op table named by ``spec``: "reference", a registered name, or "package.module:object".

    ``object`` may be an op table or a zero-argument factory returning one. Raises BackendUnavailable with
    the reason when the backend cannot run here (its factory's error included), BackendNotFound (a LookupError)
    for an unknown name and NotAnOpTable (a TypeError) for an object that is no op table; all are InputErrors.
    """
    if spec == "reference":
        from .reference import REFERENCE
        return REFERENCE
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise BackendNotFound(f"backend {spec!r}: expected package.module:object (both parts non-empty)")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a third party's module: whatever its import raises (a relative name's
            # TypeError, a SyntaxError, a RuntimeError at import time) means it cannot run here
            raise BackendUnavailable(f"backend {spec!r}: cannot import {module_name!r}: "
                                     f"{type(exc).__name__}: {exc}") from exc
        try:
            obj = getattr(module, attr)
        except AttributeError:
            raise BackendNotFound(f"backend {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    else:
        eps = _entry_points()
        if spec not in eps:
            raise BackendNotFound(f"unknown backend {spec!r}; registered: {', '.join(sorted(eps)) or 'none'} "
                              "(or give package.module:object)")
        try:
            obj = eps[spec].load()
        except Exception as exc:  # an installed package's import may raise anything: it cannot run here
            raise BackendUnavailable(f"backend {spec!r} cannot be loaded here: {type(exc).__name__}: {exc}") from exc
    if callable(obj) and not hasattr(obj, "name"):
        try:
            obj = obj()
        except BackendUnavailable:
            raise
        except Exception as exc:  # a third party's factory: whatever it raises means "cannot run here"
            raise BackendUnavailable(f"backend {spec!r}: its factory raised {type(exc).__name__}: {exc}") from exc
    if not hasattr(obj, "name") or missing_ops(obj) == list(missing_ops(object())):
        raise NotAnOpTable(f"backend {spec!r} is not an op table (see fdaref.optable.OpTable)")
    return obj
