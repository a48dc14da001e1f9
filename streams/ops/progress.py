"""A small progress line for long-running commands (publish, demo, replay, backtest, load).

It writes to stderr, redraws at most ``every_s`` seconds, shows the rate, and prints plain
lines instead of redrawing when stderr is not a terminal (CI logs).

>>> import io
>>> out = io.StringIO()
>>> with Progress("events", total=3, stream=out, every_s=0) as bar:
...     bar.update(3)
>>> "3/3 events" in out.getvalue()
True
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class Progress:
    """``with Progress("events", total=n) as bar: bar.update(k)``."""

    def __init__(self, unit: str, total: int | None = None, stream: TextIO | None = None, every_s: float = 0.25) -> None:
        self.unit = unit
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self.count = 0
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._drawn: int | None = None  # the count last drawn
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.count / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        done = f"{self.count}/{self.total}" if self.total else f"{self.count}"
        pct = f" {100.0 * self.count / self.total:5.1f}%" if self.total else ""
        return f"{done} {self.unit}{pct}  {self.rate:,.0f} {self.unit}/s"

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self._last_draw >= self.every_s:
            self._draw(final=False)
            self._last_draw = now

    def _draw(self, final: bool) -> None:
        if final and not self._tty and self._drawn == self.count:
            return  # a plain line for this count is there already: no second, identical one
        self._drawn = self.count
        if self._tty:
            self.stream.write("\r\x1b[K" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._draw(final=True)
