"""Graceful stop on Ctrl-C (SIGINT) and on SIGTERM (what ``kill``, job schedulers and container runtimes
send): the first signal only raises a flag, which the training loop checks between batches (never in the
middle of an optimizer step); it then saves a checkpoint and stops. A second signal aborts at once with
KeyboardInterrupt."""
from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """``with StopFlag() as stop: ... if stop: save and leave``. ``signum`` is the signal that stopped the run
    (None when stopped by :meth:`set`). Outside the main thread no handler is installed (signals are delivered
    to the main thread only) and the flag is set only by :meth:`set`."""

    def __init__(self, message: str = "{name}: finishing this batch and saving a checkpoint "
                                      "(send it again to abort without saving)") -> None:
        self.requested = False
        self.signum: int | None = None
        self.message = message
        self._previous: dict[int, Any] = {}

    def set(self) -> None:
        self.requested = True

    def __bool__(self) -> bool:
        return self.requested

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum
        if self.message:
            print("\n" + self.message.format(name=signal.Signals(signum).name), file=sys.stderr, flush=True)

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous.clear()
