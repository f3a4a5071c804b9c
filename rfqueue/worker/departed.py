"""Workers that left for good: looked at now and then, forgotten once nothing of theirs is left.

A ``down`` worker silent for longer than ``departed_after`` has departed: it counts in no
budget and is no target of ``spread`` (see :meth:`rfqueue.table.entry.Entry.departed`), and
the rescuers look at its queue only every ``departed_after / 2`` seconds instead of every
round. Once silent for longer than ``forget_after``, with nothing waiting in its queue and
nothing unacknowledged, the rescuer that notices forgets it; ``forget.lua`` checks the
silence again in the step that removes it, so a worker that came back in between stays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping

from rfqueue.table.entry import Entry
from rfqueue.table.failure_table import FailureTable

logger = logging.getLogger(__name__)

#: puts back a queue's unacknowledged messages; how many it found
Restore = Callable[[Collection[str]], int]


class Departures:
    """When to look at the departed, and which of them to forget."""

    def __init__(self, table: FailureTable, departed_after: float, forget_after: float) -> None:
        self.table = table
        self.departed_after = departed_after
        self.forget_after = forget_after
        self._next_look = float("-inf")

    def look_now(self) -> bool:
        """Whether this round looks at the departed's queues too (every departed_after / 2)."""
        now = time.monotonic()
        if now < self._next_look:
            return False
        self._next_look = now + self.departed_after / 2
        return True

    def gone(self, entry: Entry, now: float) -> bool:
        """Departed: down and silent for longer than ``departed_after``."""
        return entry.departed(now, self.departed_after)

    def skipped(self, entry: Entry, now: float, looking: bool) -> bool:
        """A departed worker this round leaves alone."""
        return not looking and self.gone(entry, now)

    def forget_gone(
        self, entries: Iterable[Entry], now: float, depths: Mapping[str, int], restore: Restore
    ) -> list[str]:
        """Forget the long-silent down workers whose queue is empty and who hold nothing.

        ``depths`` were read this round; ``restore`` puts back what a worker still held
        unacknowledged (then it is forgotten on a later look, when nothing came back).
        """
        forgotten = []
        for entry in entries:
            if not entry.departed(now, self.forget_after):
                continue
            if restore({entry.queue}) or depths.get(entry.queue, 0):
                continue  # moved this round: forgotten on the next look, if nothing is left
            if self.table.forget(entry.worker, silent_for=self.forget_after).changed:
                logger.info("rfqueue: forgot %s, silent for %.0f s with nothing left",
                            entry.worker, now - (entry.heartbeat or now))  # fmt: skip
                forgotten.append(entry.worker)
        return forgotten
