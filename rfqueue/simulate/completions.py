"""The designs fed by completions: each router hears when one of its tasks is done.

A worker publishes a message on pub/sub when it finishes a task, for the router that
sent it (one message per task); the router learns it ``announce_latency`` later.
"""

from __future__ import annotations

import math

from rfqueue.simulate.candidates import COMPLETIONS, Candidate
from rfqueue.simulate.knowledge import Fleet, LowestKey
from rfqueue.simulate.params import SimulationParams

#: Linkerd's (and Finagle's) decay time of the peak EWMA of latency, seconds
EWMA_DECAY = 10.0


class LeastOutstanding(Candidate):
    """The fewest of this router's tasks not yet reported done (completions on pub/sub)."""

    name = "least_outstanding"
    uses = frozenset({COMPLETIONS})

    def __init__(self, fleet: Fleet, p: SimulationParams, index: int, seed: int) -> None:
        super().__init__(fleet, p, index, seed)
        self.outstanding = [0] * p.workers
        self.lowest = LowestKey(self.outstanding.__getitem__, fleet)
        self.lowest.rebuild(fleet.up)

    def choose(self, task: int, now: float) -> int:
        worker = self.lowest.lowest()
        self.outstanding[worker] += 1
        self.lowest.update(worker)
        return worker

    def completed(self, worker: int, latency: float, now: float) -> None:
        self.outstanding[worker] -= 1
        if self.fleet.is_up[worker]:
            self.lowest.update(worker)

    def moved_away(self, worker: int) -> None:
        self.outstanding[worker] -= 1

    def resumed(self, worker: int) -> None:
        self.lowest.update(worker)


class PeakEwma(Candidate):
    """Linkerd's balancer: ``p2c`` over peak-EWMA latency x (this router's outstanding + 1).

    As Finagle's PeakEwma: a latency above the average replaces it at once, one below
    pulls it down with weight ``1 - exp(-elapsed / 10 s)``. Before any completion a
    worker's latency is taken to be the mean task length.
    """

    name = "p2c_ewma"
    uses = frozenset({COMPLETIONS})

    def __init__(self, fleet: Fleet, p: SimulationParams, index: int, seed: int) -> None:
        super().__init__(fleet, p, index, seed)
        self.latency = [p.task_mean] * p.workers
        self.stamp = [0.0] * p.workers
        self.pending = [0] * p.workers

    def observe(self, worker: int, latency: float, now: float) -> None:
        weight = math.exp(-max(now - self.stamp[worker], 0.0) / EWMA_DECAY)
        self.stamp[worker] = now
        average = self.latency[worker]
        self.latency[worker] = (
            latency if latency > average else average * weight + latency * (1 - weight)
        )

    def cost(self, worker: int, now: float) -> float:
        self.observe(worker, 0.0, now)  # the average decays while nothing is observed
        return self.latency[worker] * (self.pending[worker] + 1)

    def choose(self, task: int, now: float) -> int:
        first, second = self.pair()
        chosen = second if self.cost(second, now) < self.cost(first, now) else first
        self.pending[chosen] += 1
        return chosen

    def completed(self, worker: int, latency: float, now: float) -> None:
        self.pending[worker] -= 1
        self.observe(worker, latency, now)

    def moved_away(self, worker: int) -> None:
        self.pending[worker] -= 1
