"""What a router of the broker model knows, kept the way a real router could keep it.

Nothing here reads the fleet's true state. A router learns only from

- its depth samples: every queue's depth (waiting tasks; a running task is not in
  the list any more) read every ``depth_interval``, plus its own sends since;
- heartbeats: each worker's EWMA of its service time, every ``heartbeat_interval``;
- announcements: a worker says on pub/sub when it goes idle and when it is busy again;
- completions: a worker says on pub/sub when a task of this router is done.

Each structure costs O(1) or O(log n) per task.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class Fleet:
    """The up workers, which every router sees at once (the table's change channel)."""

    #: up workers, in ascending order
    up: list[int]
    #: 1 for an up worker, 0 for a paused one
    is_up: bytearray


class DepthEstimate:
    """A queue's depth at this router's last sample plus this router's sends to it since."""

    def __init__(self, workers: int) -> None:
        self.sample = [0] * workers
        self.since = [0] * workers

    def resample(self, depths: list[int]) -> None:
        self.sample = depths
        self.since = [0] * len(depths)

    def __call__(self, worker: int) -> int:
        return self.sample[worker] + self.since[worker]

    def sent(self, worker: int) -> None:
        self.since[worker] += 1


class IdleList:
    """Workers this router was told are idle, the latest announcement first.

    Latest first, because Redis hands a shared-queue task to the worker blocked the
    longest: the freshest announcement is the least likely to be stale already (a
    busy announcement on its way). A worker leaves the list when it announces it is
    busy, or when this router has sent it ``bound`` tasks since its announcement;
    paused workers are skipped. Entries are dropped lazily, and the list is compacted
    when stale entries outnumber the fleet, so a task costs O(1) amortised.
    """

    def __init__(self, workers: int, bound: int) -> None:
        self.bound = bound
        self.mark = [0] * workers  # the announcement a worker is listed under; 0: not listed
        self.sent = [0] * workers  # this router's sends to the worker since its announcement
        self.stack: list[tuple[int, int]] = []
        self.count = 0

    def idle(self, worker: int) -> None:
        self.count += 1
        self.mark[worker] = self.count
        self.sent[worker] = 0
        self.stack.append((worker, self.count))
        if len(self.stack) > 2 * len(self.mark) + 64:
            mark = self.mark
            self.stack = [(w, m) for w, m in self.stack if mark[w] == m]

    def busy(self, worker: int) -> None:
        self.mark[worker] = 0

    def first(self, is_up: bytearray) -> int:
        """The up worker announced last; -1 when none."""
        stack, mark = self.stack, self.mark
        while stack:
            worker, announced = stack[-1]
            if mark[worker] == announced and is_up[worker]:
                return worker
            stack.pop()
        return -1

    def take(self, worker: int) -> None:
        """This router sends ``worker`` a task; at the bound it leaves the list."""
        self.sent[worker] += 1
        if self.sent[worker] >= self.bound:
            self.mark[worker] = 0


class LowestKey:
    """The up worker with the lowest key, by a heap whose stale entries are dropped lazily.

    ``key(worker)`` is the current key; an entry is stale when its key is not that any
    more or its worker is not up. Equal keys take turns (a counter breaks ties in the
    order the entries were pushed). :meth:`update` pushes a worker's new key: O(log n).
    """

    def __init__(self, key: Callable[[int], float], fleet: Fleet) -> None:
        self.key, self.fleet = key, fleet
        self.order = itertools.count()
        self.heap: list[tuple[float, int, int]] = []

    def rebuild(self, workers: Sequence[int]) -> None:
        key, order = self.key, self.order
        self.heap = [(key(w), next(order), w) for w in workers]
        heapq.heapify(self.heap)

    def update(self, worker: int) -> None:
        heapq.heappush(self.heap, (self.key(worker), next(self.order), worker))
        if len(self.heap) > 4 * len(self.fleet.is_up) + 64:  # mostly stale: start afresh
            self.rebuild(self.fleet.up)

    def lowest(self) -> int:
        """The up worker with the lowest key; ``update`` it after changing its key."""
        heap, key, is_up = self.heap, self.key, self.fleet.is_up
        while heap:
            value, _, worker = heap[0]
            if is_up[worker] and value == key(worker):
                return worker
            heapq.heappop(heap)
        self.rebuild(self.fleet.up)  # every entry was stale: cannot happen twice in a row
        return self.lowest()
