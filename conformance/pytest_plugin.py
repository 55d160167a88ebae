"""Use the suite from pytest.

Either parametrise your own tests over the ops of a backend::

    from fdaref.conformance.pytest_plugin import conformance_params, check_op

    @pytest.mark.parametrize("op", conformance_params())
    def test_my_backend(op):
        check_op("mypkg.backend:table", op, dtype="float32", profile="quick")

or load this module as a plugin (``pytest -p fdaref.conformance.pytest_plugin --fdaref-backend NAME``), which
adds the ``--fdaref-backend/--fdaref-device/--fdaref-dtype/--fdaref-profile`` options and generates one test
per op for every test function that takes an argument named ``fdaref_op`` (call ``check_op`` inside it with the
``fdaref_conformance`` fixture's settings).
"""
from __future__ import annotations

from typing import Any, Optional

from fdaref.optable import CHECKED_OPS

from .report import FAIL, ERROR, NOT_PROVIDED
from .runner import PROFILES, resolve_backend, run_op
from .strategies import ALL_OPTIONS, OptionSpace


def conformance_params() -> list[str]:
    """The op names, for ``pytest.mark.parametrize``."""
    return list(CHECKED_OPS)


def check_op(backend: Any, op: str, *, device: str = "cpu", dtype: str = "float32", profile: str = "quick",
             preset: Optional[str] = None, allow_missing: bool = False) -> None:
    """Run every check of ``op`` on ``backend``; raise AssertionError with the failure report if any fails."""
    import pytest
    be, spec = resolve_backend(backend)
    options = OptionSpace.from_preset(preset) if preset else ALL_OPTIONS
    results = run_op(be, op, device, dtype, profile=PROFILES[profile], options=options, spec=spec)
    bad = [r for r in results if r.outcome in (FAIL, ERROR)]
    if bad:
        raise AssertionError("\n\n".join(r.render() for r in bad))
    if any(r.outcome == NOT_PROVIDED for r in results):
        if allow_missing:
            pytest.skip(f"{op}: not provided by {getattr(be, 'name', backend)}")
        raise AssertionError(f"{op}: not provided by {getattr(be, 'name', backend)}")


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("fdaref", "fdaref conformance")
    group.addoption("--fdaref-backend", default="numpy", help="backend name or package.module:object")
    group.addoption("--fdaref-device", default="cpu")
    group.addoption("--fdaref-dtype", default="float32")
    group.addoption("--fdaref-profile", default="quick", choices=sorted(PROFILES))


def pytest_generate_tests(metafunc: Any) -> None:
    if "fdaref_op" in metafunc.fixturenames:
        metafunc.parametrize("fdaref_op", conformance_params())


def _settings(config: Any) -> dict[str, str]:
    return {"backend": config.getoption("--fdaref-backend"), "device": config.getoption("--fdaref-device"),
            "dtype": config.getoption("--fdaref-dtype"), "profile": config.getoption("--fdaref-profile")}


try:  # the fixture exists only when pytest is importable
    import pytest as _pytest

    @_pytest.fixture
    def fdaref_conformance(request: Any) -> dict[str, str]:
        """{"backend", "device", "dtype", "profile"} from the command line options."""
        return _settings(request.config)
except ImportError:  # pragma: no cover
    pass
