"""The table's one clock: the Redis server's ``TIME``, as seen from this process.

Every time the table stores or compares (a heartbeat, a pause's end, when a state
began) is stamped inside the Lua scripts by the server's clock, so hosts whose clocks
drift cannot call each other dead. Readers judge entries by the same clock: every
script reply and every full read carries the server's time, and :class:`ServerClock`
keeps the offset between it and the local clock (taken at the middle of the round
trip), so ``now()`` between two replies is the local clock plus that offset.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ServerClock:
    """The Redis server's time, estimated from the last reply that carried it."""

    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self._local = local
        #: server minus local, in seconds, at the last reply (0 before the first)
        self.offset = 0.0

    def observe(self, server_now: float, sent: float, received: float) -> None:
        """A reply stamped ``server_now`` by the server, to a call made between two local times."""
        self.offset = server_now - (sent + received) / 2

    def now(self) -> float:
        """The server's time now, as far as this process can tell."""
        return self._local() + self.offset

    def local(self) -> float:
        """The local clock, for stamping the start of a round trip."""
        return self._local()
