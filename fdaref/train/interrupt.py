"""Graceful Ctrl-C: the first SIGINT only raises a flag, which the training loop checks between batches
(never in the middle of an optimizer step); it then saves a checkpoint and stops. A second Ctrl-C aborts
at once with KeyboardInterrupt."""
from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any


class StopFlag:
    """``with StopFlag() as stop: ... if stop: save and leave``. Outside the main thread no handler is
    installed (signals are delivered to the main thread only) and the flag is set only by :meth:`set`."""

    def __init__(self, message: str = "\ninterrupt: finishing this batch and saving a checkpoint "
                                      "(press Ctrl-C again to abort without saving)") -> None:
        self.requested = False
        self.message = message
        self._previous: Any = None
        self._installed = False

    def set(self) -> None:
        self.requested = True

    def __bool__(self) -> bool:
        return self.requested

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(self.message, file=sys.stderr, flush=True)

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
