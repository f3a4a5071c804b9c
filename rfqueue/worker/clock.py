"""Clock skew between hosts: beats carry the writer's clock, silence is judged by the reader's.

Every timestamp in the table (a heartbeat, the end of a pause) comes from the clock of
the process that wrote it, and a worker is judged silent against the clock of whoever
reads it. On one host that is one clock; across hosts the clocks must agree to well
within ``heartbeat_timeout``, or live workers are called silent (or dead ones are not).
Each worker compares its clock with the table's Redis server now and then and warns
when the two differ by more than a quarter of ``heartbeat_timeout``: the Redis clock
is a reference every host shares, so two hosts that pass are close to each other too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

#: seconds between two checks of one worker
CHECK_EVERY = 300.0


def skew(client: Any) -> float:
    """This host's clock minus the Redis server's, in seconds (within half a round trip)."""
    before = time.time()
    seconds, micros = client.time()
    after = time.time()
    return (before + after) / 2 - (int(seconds) + int(micros) / 1e6)


class SkewCheck:
    """Warns once per check when this host's clock is too far from the table's Redis."""

    def __init__(self, heartbeat_timeout: float, every: float = CHECK_EVERY) -> None:
        self.limit = heartbeat_timeout / 4
        self.every = every
        self._next = float("-inf")
        #: the skew at the last check (None before the first)
        self.last: float | None = None

    def maybe_check(self, client: Any) -> None:
        """Check if one is due; a failed call is skipped (the heartbeat reports outages)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        try:
            self.last = skew(client)
        except Exception as exc:  # any Redis or reply error: the next check tries again
            logger.debug("rfqueue: clock check skipped: %r", exc)
            return
        if abs(self.last) > self.limit:
            logger.warning(
                "rfqueue: this host's clock is %.2f s %s the table's Redis, more than a "
                "quarter of heartbeat_timeout (%.1f s): keep hosts in sync (NTP), or "
                "workers may be called silent",
                abs(self.last),
                "ahead of" if self.last > 0 else "behind",
                self.limit * 4,
            )
