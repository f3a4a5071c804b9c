"""The designs the broker model compares: one router class each, as rfqueue could build it.

A router's :meth:`~Candidate.choose` returns a worker, whose dedicated queue gets the
task, or :data:`SHARED`, the pool's shared queue that every up worker also consumes.
Each router knows only what :mod:`rfqueue.simulate.knowledge` lists; ``uses`` says
which of those feeds it needs, so the engine sends it nothing else (and counts the
messages the feeds cost). The designs fed by completions are in
:mod:`~rfqueue.simulate.completions`; :mod:`~rfqueue.simulate.designs` names them all.
"""

from __future__ import annotations

import random
from typing import ClassVar

from rfqueue.simulate.knowledge import DepthEstimate, Fleet, IdleList, LowestKey
from rfqueue.simulate.params import SimulationParams

#: the pool's shared queue, as a choice
SHARED = -1
#: feeds a router may use
DEPTHS, RATES, ANNOUNCEMENTS, COMPLETIONS = "depths", "rates", "announcements", "completions"


class Candidate:
    """One router (producer) of the fleet; the engine calls the hooks of the feeds in ``uses``."""

    name: ClassVar[str] = ""
    uses: frozenset[str] = frozenset()

    def __init__(self, fleet: Fleet, p: SimulationParams, index: int, seed: int) -> None:
        self.fleet, self.index = fleet, index
        self.random = random.Random(seed).random

    def choose(self, task: int, now: float) -> int:
        """A worker for ``task`` (its dedicated queue), or :data:`SHARED`."""
        raise NotImplementedError

    def sampled(self, depths: list[int], now: float) -> None:
        """Every dedicated queue's depth, read just now (``DEPTHS``)."""

    def published(self, worker: int, service: float) -> None:
        """``worker``'s heartbeat, with its EWMA of service time (``RATES``)."""

    def announced(self, worker: int, idle: bool) -> None:
        """``worker`` went idle, or busy again (``ANNOUNCEMENTS``)."""

    def completed(self, worker: int, latency: float, now: float) -> None:
        """A task this router sent ``worker`` is done, ``latency`` after it was sent."""

    def moved_away(self, worker: int) -> None:
        """The rescue took a task this router sent to ``worker`` out of its queue."""

    def resumed(self, worker: int) -> None:
        """``worker`` is up again."""

    def pair(self) -> tuple[int, int]:
        """Two distinct up workers drawn at random (the same one twice on a fleet of one)."""
        up, draw = self.fleet.up, self.random
        n = len(up)
        i = int(draw() * n)
        if n == 1:
            return up[i], up[i]
        j = int(draw() * (n - 1))
        return up[i], up[j + 1 if j >= i else j]


class Shared(Candidate):
    """Plain Celery: every task to the pool's shared queue; the workers pull."""

    name = "shared"

    def choose(self, task: int, now: float) -> int:
        return SHARED


class RoundRobin(Candidate):
    """rfqueue's ``round_robin``: each router takes its own turns over the up workers."""

    name = "round_robin"

    def __init__(self, fleet: Fleet, p: SimulationParams, index: int, seed: int) -> None:
        super().__init__(fleet, p, index, seed)
        self.turn = index * p.workers // p.routers  # spread the routers' starting points

    def choose(self, task: int, now: float) -> int:
        up, turn = self.fleet.up, self.turn
        self.turn = turn + 1
        return up[turn % len(up)]


class RandomChoice(Candidate):
    """``random``: a uniformly chosen up worker."""

    name = "random"

    def choose(self, task: int, now: float) -> int:
        up = self.fleet.up
        return up[int(self.random() * len(up))]


class Estimating(Candidate):
    """A router that keeps depth samples plus its own sends since (rfqueue's estimate)."""

    uses = frozenset({DEPTHS})

    def __init__(self, fleet: Fleet, p: SimulationParams, index: int, seed: int) -> None:
        super().__init__(fleet, p, index, seed)
        self.estimate = DepthEstimate(p.workers)

    def sampled(self, depths: list[int], now: float) -> None:
        self.estimate.resample(depths)

    def better_of_two(self) -> int:
        """rfqueue's ``p2c``: the second of a random pair only when strictly lower."""
        first, second = self.pair()
        estimate = self.estimate
        chosen = second if estimate(second) < estimate(first) else first
        estimate.sent(chosen)
        return chosen


class PowerOfTwo(Estimating):
    """rfqueue's ``p2c`` with its stale view."""

    name = "p2c"

    def choose(self, task: int, now: float) -> int:
        return self.better_of_two()


class LeastLoaded(Estimating):
    """rfqueue's ``least_loaded`` with its stale view; equal estimates take turns."""

    name = "least_loaded"

    def __init__(self, fleet: Fleet, p: SimulationParams, index: int, seed: int) -> None:
        super().__init__(fleet, p, index, seed)
        self.lowest = LowestKey(self.key, fleet)
        self.lowest.rebuild(fleet.up)

    def key(self, worker: int) -> float:
        return self.estimate(worker)

    def sampled(self, depths: list[int], now: float) -> None:
        super().sampled(depths, now)
        self.lowest.rebuild(self.fleet.up)

    def choose(self, task: int, now: float) -> int:
        worker = self.lowest.lowest()
        self.estimate.sent(worker)
        self.lowest.update(worker)
        return worker

    def resumed(self, worker: int) -> None:
        self.lowest.update(worker)


class ShortestExpectedDelay(LeastLoaded):
    """(estimated depth + 1) x the worker's service time, as its heartbeat last said."""

    name = "sed"
    uses = frozenset({DEPTHS, RATES})

    def __init__(self, fleet: Fleet, p: SimulationParams, index: int, seed: int) -> None:
        self.service = [p.task_mean] * p.workers  # until a heartbeat says otherwise
        super().__init__(fleet, p, index, seed)

    def key(self, worker: int) -> float:
        return (self.estimate(worker) + 1) * self.service[worker]

    def published(self, worker: int, service: float) -> None:
        self.service[worker] = service
        if self.fleet.is_up[worker]:
            self.lowest.update(worker)


class JoinIdleQueue(Estimating):
    """Lu et al. (2011): a worker known to be idle, else ``p2c`` over the estimate."""

    name = "jiq"
    uses = frozenset({DEPTHS, ANNOUNCEMENTS})

    def __init__(self, fleet: Fleet, p: SimulationParams, index: int, seed: int) -> None:
        super().__init__(fleet, p, index, seed)
        self.idle = IdleList(p.workers, bound=1)

    def announced(self, worker: int, idle: bool) -> None:
        if idle:
            self.idle.idle(worker)
        else:
            self.idle.busy(worker)

    def choose(self, task: int, now: float) -> int:
        worker = self.idle.first(self.fleet.is_up)
        if worker < 0:
            return self.better_of_two()
        self.idle.take(worker)
        self.estimate.sent(worker)
        return worker


class Spill(Candidate):
    """A dedicated queue while this router believes the worker has fewer than B tasks.

    The router believes a worker has no task from its idle announcement on, and counts
    its own sends since; no other worker is believed below any bound. With no such
    worker the task goes to the pool's shared queue, which every up worker pulls from:
    Celery's pull takes over when every worker is busy. B = 0 is plain Celery.
    """

    name = "spill"

    def __init__(self, fleet: Fleet, p: SimulationParams, index: int, seed: int) -> None:
        super().__init__(fleet, p, index, seed)
        self.idle = IdleList(p.workers, bound=p.spill_bound)
        self.uses = frozenset({ANNOUNCEMENTS}) if p.spill_bound else frozenset()

    def announced(self, worker: int, idle: bool) -> None:
        if idle:
            self.idle.idle(worker)
        else:
            self.idle.busy(worker)

    def choose(self, task: int, now: float) -> int:
        if not self.uses:
            return SHARED
        worker = self.idle.first(self.fleet.is_up)
        if worker < 0:
            return SHARED
        self.idle.take(worker)
        return worker
