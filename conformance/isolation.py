"""Keep one bad case from taking the run down.

In process (every run): each call into the backend runs under a time limit (SIGALRM, main thread only);
``SystemExit``, ``KeyboardInterrupt`` and a timeout raised inside an op become that case's failure. The
first call of each op gets the longer warm-up limit, since it may compile (numba, torch.compile).

Supervised (``fdaref conform``): the suite runs in a forked child that reports each check as it begins and
ends; when the child dies (a crash) or stops reporting past the check's limit (a hang the alarm cannot
interrupt, e.g. inside a compiled loop), the parent records that check as failed, starts a new child that
skips the checks already done, and always ends with the whole report.
"""
from __future__ import annotations

import json
import os
import select
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional


# The longest limit accepted: a day. The OS timers behind the limits (setitimer, select) overflow on values
# such as 1e12 or inf, and a longer limit is surely a typo.
MAX_LIMIT_S = 86400.0


@dataclass(frozen=True)
class Limits:
    """Seconds per case (each call into the backend), per first call of an op, and per layer check; each a
    finite number in (0, MAX_LIMIT_S] (InputError otherwise)."""

    case: float = 10.0
    warmup: float = 120.0
    layer: float = 300.0

    def __post_init__(self) -> None:
        from fdaref.errors import InputError
        for name in ("case", "warmup", "layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_LIMIT_S:
                raise InputError(f"time limit {name}: expected a number of seconds in (0, {MAX_LIMIT_S:g}], "
                                 f"got {value!r}")


DEFAULT_LIMITS = Limits()


class CaseTimeout(BaseException):
    """Raised into an op that ran past its limit (a BaseException, so the op's own ``except Exception``
    cannot swallow it)."""


@contextmanager
def time_limit(seconds: Optional[float]) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in this block after ``seconds`` (no limit off the main thread or for None)."""
    usable = seconds is not None and seconds > 0 and threading.current_thread() is threading.main_thread() \
        and hasattr(signal, "setitimer")
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"ran past its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


class Warmup:
    """Which (backend, op) pairs have been called once: the first call gets the warm-up limit."""

    def __init__(self) -> None:
        self._seen: set[tuple[int, str]] = set()

    def peek(self, backend: Any, op: str, limits: Limits) -> float:
        """The limit the next call of ``op`` gets (without counting a call)."""
        return limits.case if (id(backend), op) in self._seen else max(limits.case, limits.warmup)

    def limit(self, backend: Any, op: str, limits: Limits) -> float:
        key = (id(backend), op)
        if key in self._seen:
            return limits.case
        self._seen.add(key)
        return max(limits.case, limits.warmup)


WARMUP = Warmup()


def guarded_call(fn: Callable[[], Any], seconds: Optional[float]) -> tuple[Any, str]:
    """(result, "") or (None, description) when ``fn`` raised, exited, was interrupted or timed out."""
    try:
        with time_limit(seconds):
            return fn(), ""
    except CaseTimeout as exc:
        return None, f"CaseTimeout: the op {exc}"
    except SystemExit as exc:
        return None, f"SystemExit: the op called sys.exit({exc.code!r})\n" + traceback.format_exc()
    except KeyboardInterrupt:
        return None, "KeyboardInterrupt raised inside the op\n" + traceback.format_exc()
    except Exception:  # noqa: BLE001 - any failure inside the backend is a failed case
        return None, traceback.format_exc()


# ---------------------------------------------------------------------------------------------------
# Supervision across processes (the CLI).

def run_supervised(run: Callable[[Callable[[str, float], None], Callable[[Any], None], set], Any],
                   limits: Limits, make_failure: Callable[[str, str], Any],
                   on_result: Optional[Callable[[dict], None]] = None) -> tuple[list[Any], Optional[str]]:
    """Run ``run(begin, done, skip)`` in forked children until every check has a result.

    ``begin(key, seconds)`` announces a check, ``done(result)`` reports its CaseResult (``to_dict()``able),
    ``skip`` is the set of check keys to leave out; ``on_result(dict)`` sees each result as it arrives.
    Returns (results as dicts, fatal error or None): the fatal error is a one-line reason the child gave
    before any check (e.g. the backend cannot be loaded).
    """
    results: list[dict] = []
    skip: set[str] = set()
    while True:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run, report over the pipe, never return into the caller's code
            os.close(read_fd)
            out = os.fdopen(write_fd, "w", buffering=1)
            code = 0
            try:
                def begin(key: str, seconds: float) -> None:
                    out.write(json.dumps({"begin": key, "seconds": seconds}) + "\n")

                def done(res: Any) -> None:
                    out.write(json.dumps({"result": res.to_dict()}) + "\n")
                run(begin, done, skip)
                out.write(json.dumps({"finished": True}) + "\n")
            except BaseException as exc:  # noqa: BLE001 - report, then leave without running atexit hooks
                out.write(json.dumps({"fatal": f"{type(exc).__name__}: {exc}".splitlines()[0]}) + "\n")
                code = 3
            finally:
                out.flush()
                os._exit(code)
        os.close(write_fd)
        status, current, fatal = _watch(pid, read_fd, limits, results, skip, on_result)
        if status == "finished":
            return results, None
        if fatal is not None and current is None:
            return results, fatal
        if current is None:  # died between checks: nothing to blame, and nothing new would run
            return results, f"the conformance worker stopped ({status}) outside any check"
        key, what = current
        results.append(make_failure(key, what).to_dict())
        if on_result is not None:
            on_result(results[-1])
        skip.add(key)


def _watch(pid: int, fd: int, limits: Limits, results: list, skip: set,
           on_result: Optional[Callable[[dict], None]] = None) -> tuple[str, Optional[tuple[str, str]], Optional[str]]:
    """Follow one child until it finishes, dies or stalls; returns (status, (check key, what) or None, fatal)."""
    buf = b""
    current: Optional[tuple[str, float]] = None
    started = time.monotonic()
    fatal: Optional[str] = None
    grace = 5.0
    with os.fdopen(fd, "rb", buffering=0) as stream:
        while True:
            wait = None if current is None else max(0.0, current[1] + grace - (time.monotonic() - started))
            ready, _, _ = select.select([stream], [], [], wait)
            if not ready:  # a hang the alarm could not interrupt
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "hung", (current[0], f"no answer within {current[1] + grace:g} s: hung (killed)"), None
            chunk = stream.read(65536)
            if not chunk:
                _, status = os.waitpid(pid, 0)
                if fatal is not None:
                    return "fatal", None if current is None else (current[0], fatal), fatal
                what = (f"the process died from signal {os.WTERMSIG(status)} (a crash)" if os.WIFSIGNALED(status)
                        else f"the process exited with status {os.WEXITSTATUS(status)}")
                return what, None if current is None else (current[0], what), None
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if "begin" in msg:
                    current, started = (msg["begin"], float(msg["seconds"])), time.monotonic()
                elif "result" in msg:
                    results.append(msg["result"])
                    if on_result is not None:
                        on_result(msg["result"])
                    if current is not None:
                        skip.add(current[0])
                    current = None
                elif "fatal" in msg:
                    fatal = msg["fatal"]
                elif "finished" in msg:
                    os.waitpid(pid, 0)
                    return "finished", None, None
