"""A tiny progress bar on stderr (no third-party dependency).

On a terminal it redraws one line at most ten times a second; when stderr is not a terminal (a log file,
a test) it prints only the final line, so logs stay short.
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class ProgressBar:
    """``bar = ProgressBar(total, "epoch 1/5"); bar.update(1, loss=0.3); bar.close()``."""

    def __init__(self, total: int, desc: str = "", *, stream: TextIO | None = None, width: int = 24,
                 min_interval: float = 0.1, enabled: bool = True) -> None:
        self.total = max(int(total), 0)
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.min_interval = min_interval
        self.enabled = enabled
        self.count = 0
        self.postfix: dict[str, Any] = {}
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._closed = False
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.count += n
        self.postfix.update(postfix)
        now = time.perf_counter()
        if self.enabled and self.tty and (now - self._last_draw >= self.min_interval or self.count >= self.total):
            self._last_draw = now
            self._draw("\r")

    def render(self) -> str:
        """The bar as text: ``desc |#####-----| 12/40 [00:03<00:07, 4.1it/s] loss=0.31``."""
        elapsed = time.perf_counter() - self.start
        frac = min(self.count / self.total, 1.0) if self.total else 1.0
        filled = int(round(frac * self.width))
        rate = self.count / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - self.count) / rate if rate > 0 else 0.0
        post = " ".join(f"{k}={_fmt(v)}" for k, v in self.postfix.items())
        head = f"{self.desc} " if self.desc else ""
        return (f"{head}|{'#' * filled}{'-' * (self.width - filled)}| {self.count}/{self.total} "
                f"[{_clock(elapsed)}<{_clock(remaining)}, {rate:.1f}it/s] {post}").rstrip()

    def _draw(self, lead: str) -> None:
        self.stream.write(f"{lead}{self.render()}\x1b[K" if self.tty else f"{self.render()}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            if self.tty:
                self._draw("\r")
                self.stream.write("\n")
                self.stream.flush()
            else:
                self._draw("")

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"
