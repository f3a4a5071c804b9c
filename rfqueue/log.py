"""Logging helpers: warnings that repeat at most once per interval."""

from __future__ import annotations

import logging
import time


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
