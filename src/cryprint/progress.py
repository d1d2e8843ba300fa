"""Progress a person can see: a bar on a terminal, a line every few seconds in a log file.

A job array's log, ``nohup`` output or CI console is not a terminal, and a progress bar there is
either invisible or a wall of carriage returns; so when stderr is not a terminal, progress is a
plain line every :data:`LOG_EVERY_SECONDS` (and at the end).
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

from tqdm.auto import tqdm

LOG_EVERY_SECONDS = 10.0


class Progress:
    """Count ``total`` items of work under ``label``; nothing is shown when not ``enabled`` or
    when there is nothing to do.

    Example:
        >>> with Progress(3, "embedding", enabled=False) as progress:
        ...     progress.update(3)
    """

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label = total, label
        self.enabled = enabled and total > 0
        self.done = 0
        self._printed = -1  # the count of the last line printed
        self._bar: tqdm | None = None
        self._started = self._last = time.monotonic()

    def __enter__(self) -> Progress:
        if self.enabled and sys.stderr.isatty():
            self._bar = tqdm(total=self.total, desc=self.label, unit="recording", leave=False)
        return self

    def update(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = time.monotonic()
        finished = self.done >= self.total and self.done - count < self.total  # just now
        if self.enabled and (now - self._last >= LOG_EVERY_SECONDS or finished):
            self._line(now)

    def _line(self, now: float) -> None:
        self._last, self._printed = now, self.done
        print(
            f"{self.label}: {self.done}/{self.total} ({100 * self.done / self.total:.0f} %), "
            f"{now - self._started:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and 0 < self.done < self.total and self._printed != self.done:
            self._line(time.monotonic())  # stopped early: where it stopped
