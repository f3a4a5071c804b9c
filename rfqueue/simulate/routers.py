"""The policies as the simulation routes with them, one small class each.

Each mirrors its rfqueue policy (rfqueue/policies/) on a fleet whose state the
engine keeps: ``up``, the up workers in order; ``is_up``, one flag per worker; and
``backlog(worker, now)``, the tasks a worker has not finished (waiting or running).
Where rfqueue estimates a queue's depth (a Redis read every ``depth_interval`` plus
its own routes since), the simulation knows it exactly: ``least_loaded`` and ``p2c``
here are what those policies do with perfect, fresh information.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rfqueue.routing.policies.hash import VNODES


@dataclass
class FleetView:
    """What a router may look at; the engine owns and updates it."""

    #: up workers, in ascending order (rfqueue's routers see queues sorted by name)
    up: list[int]
    #: 1 for an up worker, 0 for a paused one
    is_up: bytearray
    #: unfinished tasks of a worker at a time (waiting plus running)
    backlog: Callable[[int, float], int]


class SimRouter:
    """Chooses a worker for each task; hooks let a router follow the fleet's changes."""

    name = ""
    #: called after each placement as ``placed(worker, finish, task)``, when set
    placed: Callable[[int, float, int], None] | None = None
    #: called before each choice with the current time, when set
    advance: Callable[[float], None] | None = None

    def __init__(self, view: FleetView) -> None:
        self.view = view

    def choose(self, task: int, now: float) -> int:
        """The worker for ``task`` at ``now``, among up workers."""
        raise NotImplementedError

    def paused(self, worker: int) -> None:
        """``worker`` was just paused (and left ``view.up``)."""

    def resumed(self, worker: int) -> None:
        """``worker`` was just resumed (and is back in ``view.up``)."""

    def moved_away(self, worker: int, tasks: Sequence[int]) -> None:
        """``tasks``, waiting at ``worker``, were taken away by the rescue."""


class RandomRouter(SimRouter):
    """``random``: a uniformly chosen up worker."""

    name = "random"

    def __init__(self, view: FleetView, seed: int) -> None:
        super().__init__(view)
        self.random = random.Random(seed).random

    def choose(self, task: int, now: float) -> int:
        up = self.view.up
        return up[int(self.random() * len(up))]


class RoundRobinRouter(SimRouter):
    """``round_robin``: up workers take turns; one turn counter across changes of the set."""

    name = "round_robin"

    def __init__(self, view: FleetView) -> None:
        super().__init__(view)
        self.turn = 0

    def choose(self, task: int, now: float) -> int:
        up, turn = self.view.up, self.turn
        self.turn = turn + 1
        return up[turn % len(up)]


class WeightedRouter(RoundRobinRouter):
    """``weighted`` with every worker of weight 1 (the simulated fleet is uniform).

    With equal weights rfqueue's cycle is the up queues in order, handed out by one
    turn counter: exactly ``round_robin``, so the two rows of a run agree.
    """

    name = "weighted"


class PowerOfTwoRouter(SimRouter):
    """``p2c``: two distinct random up workers; the one with the smaller backlog wins."""

    name = "p2c"

    def __init__(self, view: FleetView, seed: int) -> None:
        super().__init__(view)
        self.random = random.Random(seed).random

    def choose(self, task: int, now: float) -> int:
        up, draw = self.view.up, self.random
        n = len(up)
        if n == 1:
            return up[0]
        i = int(draw() * n)
        j = int(draw() * (n - 1))
        first, second = up[i], up[j + 1 if j >= i else j]
        backlog = self.view.backlog
        # As rfqueue: the second only when strictly shorter.
        return second if backlog(second, now) < backlog(first, now) else first


class HashRouter(SimRouter):
    """``hash``: the first up owner at or after the task's key on the ring."""

    name = "hash"

    def __init__(self, view: FleetView, first_slot: list[int], owners: list[int]) -> None:
        super().__init__(view)
        self.first_slot = first_slot
        self.owners = owners

    def choose(self, task: int, now: float) -> int:
        owners, is_up = self.owners, self.view.is_up
        slot = self.first_slot[task]
        while not is_up[owners[slot]]:
            slot = (slot + 1) % len(owners)
        return owners[slot]


class LeastLoadedRouter(SimRouter):
    """``least_loaded``: an up worker with the fewest unfinished tasks.

    Up workers sit in buckets by backlog (one set per level) with a pointer to the
    lowest non-empty level, so a choice costs O(1) instead of a scan of the fleet;
    among equals, ``set.pop`` walks the bucket in turn. Each placement pushes the
    task's finish onto a heap; :meth:`finish_until` lowers backlogs as time passes.
    """

    name = "least_loaded"

    def __init__(self, view: FleetView, workers: int) -> None:
        super().__init__(view)
        self.load = [0] * workers
        self.levels: list[set[int]] = [set(view.up), set()]
        self.lowest = 0
        self.finishes: list[tuple[float, int, int, int]] = []  # (finish, task, moves, worker)
        self.moves: dict[int, int] = {}  # task -> times the rescue moved it
        self.placed = self.track
        self.advance = self.finish_until

    def choose(self, task: int, now: float) -> int:
        levels, low = self.levels, self.lowest
        while not levels[low]:
            low += 1
        self.lowest = low
        worker = levels[low].pop()
        if low + 2 > len(levels):
            levels.append(set())
        levels[low + 1].add(worker)
        self.load[worker] = low + 1
        return worker

    def track(self, worker: int, finish: float, task: int) -> None:
        heapq.heappush(self.finishes, (finish, task, self.moves.get(task, 0), worker))

    def finish_until(self, now: float) -> None:
        finishes, moves = self.finishes, self.moves
        while finishes and finishes[0][0] <= now:
            _, task, moved, worker = heapq.heappop(finishes)
            if moved == moves.get(task, 0):  # else the rescue took it from this worker
                self._lower(worker, 1)

    def _lower(self, worker: int, by: int) -> None:
        level = self.load[worker]
        self.load[worker] = level - by
        if self.view.is_up[worker]:
            self.levels[level].discard(worker)
            self.levels[level - by].add(worker)
            self.lowest = min(self.lowest, level - by)

    def paused(self, worker: int) -> None:
        self.levels[self.load[worker]].discard(worker)

    def resumed(self, worker: int) -> None:
        level = self.load[worker]
        self.levels[level].add(worker)
        self.lowest = min(self.lowest, level)

    def moved_away(self, worker: int, tasks: Sequence[int]) -> None:
        for task in tasks:
            self.moves[task] = self.moves.get(task, 0) + 1
        self.load[worker] -= len(tasks)  # paused: in no bucket now


def make_router(
    policy: str,
    view: FleetView,
    workers: int,
    seed: int,
    ring: Callable[[int], tuple[list[int], list[int]]],
) -> SimRouter:
    """The router for ``policy``; ``ring(vnodes)`` builds the hash ring only when needed."""
    if policy == "random":
        return RandomRouter(view, seed)
    if policy == "p2c":
        return PowerOfTwoRouter(view, seed)
    if policy == "least_loaded":
        return LeastLoadedRouter(view, workers)
    if policy == "hash":
        return HashRouter(view, *ring(VNODES))
    if policy == "weighted":
        return WeightedRouter(view)
    return RoundRobinRouter(view)
