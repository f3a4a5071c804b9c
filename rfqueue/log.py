"""Logging helpers: warnings at most once per interval, or held back for one summary line."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator


class RateLimitedWarning:
    """Logs one warning per ``interval`` seconds and counts the ones it held back."""

    def __init__(self, logger: logging.Logger, interval: float = 30.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last = float("-inf")
        self._held_back = 0

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._held_back += 1
            return
        suffix = f" ({self._held_back} similar warnings held back)" if self._held_back else ""
        self._last, self._held_back = now, 0
        self.logger.warning(message + suffix, *args)


class HeldBack(logging.Handler):
    """Keeps the records of one logger instead of printing them; see :func:`held_back`."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def held_back(name: str) -> Iterator[list[logging.LogRecord]]:
    """Hold back the warnings of logger ``name`` inside the block and hand them over.

    For a command that prints one summary line instead of one warning per bad row.
    """
    target = logging.getLogger(name)
    handler, propagate = HeldBack(), target.propagate
    target.addHandler(handler)
    target.propagate = False
    try:
        yield handler.records
    finally:
        target.removeHandler(handler)
        target.propagate = propagate
