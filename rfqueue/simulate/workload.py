"""The workload every policy of one run sees: arrivals, service times, pauses.

All of it is drawn in bulk with numpy before the event loop starts, from streams
seeded by ``(seed, stream)``: every policy of a run gets the same arrivals, the same
service time for each task and the same pauses (common random numbers), so the
differences between policies are the policies', not the dice's.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rfqueue.simulate.params import BROKER_POLICIES, POLICIES, SimulationParams

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: stream numbers mixed into the seed; each policy's own choices use 100 + its index
ARRIVALS, SERVICE, PAUSES, KEYS, RING, ROUTERS = range(6)
#: every policy name of either model, in the order that numbers their streams
_NAMES = POLICIES + tuple(name for name in BROKER_POLICIES if name not in POLICIES)


def generator(seed: int, stream: int) -> np.random.Generator:
    """The random generator of one stream of a run."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def policy_seed(seed: int, policy: str) -> int:
    """A seed for a policy's own random choices (random, p2c), distinct per policy."""
    return int(generator(seed, 100 + _NAMES.index(policy)).integers(2**63))


@dataclass(frozen=True)
class Pauses:
    """Admitted pauses, sorted by start: ``worker[k]`` is paused from ``start[k]`` to ``end[k]``."""

    worker: IntArray
    start: FloatArray
    end: FloatArray

    def __len__(self) -> int:
        return len(self.worker)


@dataclass(frozen=True)
class Workload:
    """Arrival time and service time of each task, in arrival order, and the pauses."""

    arrival: FloatArray
    service: FloatArray
    pauses: Pauses


def make_workload(p: SimulationParams) -> Workload:
    """Draw the arrivals, the service times and the pauses of ``p``."""
    if p.arrivals == "even":
        arrival = np.arange(1, p.tasks + 1) / p.arrival_rate
    else:
        arrival = np.cumsum(generator(p.seed, ARRIVALS).exponential(1 / p.arrival_rate, p.tasks))
    return Workload(arrival, service_times(p), pause_schedule(p, float(arrival[-1])))


def service_times(p: SimulationParams) -> FloatArray:
    """One length per task (its service time at speed 1), with mean ``p.task_mean``."""
    rng = generator(p.seed, SERVICE)
    if p.mix:
        shares, lengths = zip(*p.mix, strict=True)
        return np.asarray(lengths, dtype=np.float64)[
            rng.choice(len(lengths), size=p.tasks, p=np.asarray(shares) / sum(shares))
        ]
    if p.service == "constant":
        return np.full(p.tasks, p.service_mean)
    if p.service == "lognormal":
        sigma = p.lognormal_sigma
        return rng.lognormal(math.log(p.service_mean) - sigma * sigma / 2, sigma, p.tasks)
    return rng.exponential(p.service_mean, p.tasks)


def task_routers(p: SimulationParams) -> list[int]:
    """Which router (producer) sends each task: uniformly at random, one stream for all."""
    if p.routers == 1:
        return [0] * p.tasks
    return generator(p.seed, ROUTERS).integers(0, p.routers, size=p.tasks).tolist()  # type: ignore[no-any-return]


def pause_schedule(p: SimulationParams, horizon: float) -> Pauses:
    """Each worker alternates up spells (exponential, rate ``pause_rate``) and pauses.

    Pauses start before ``horizon`` (the last arrival). As rfqueue's chaos job never
    pauses the last up worker (``min_up``), a pause that would leave no worker up is
    dropped; so is every pause of a one-worker fleet.
    """
    if p.pause_rate == 0 or p.pause_duration == 0 or p.workers < 2:
        return _no_pauses()
    rng = generator(p.seed, PAUSES)
    per_worker = p.expected_pauses / p.workers
    columns = int(per_worker + 6 * math.sqrt(per_worker) + 4)
    while True:
        gaps = rng.exponential(1 / p.pause_rate, (p.workers, columns))
        # The k-th pause starts after k up spells and k-1 earlier pauses.
        starts = np.cumsum(gaps, axis=1) + np.arange(columns) * p.pause_duration
        if bool((starts[:, -1] >= horizon).all()):
            break
        columns *= 2  # a rare worker drew more pauses than the bound: draw again, wider
    worker, column = np.nonzero(starts < horizon)
    start = starts[worker, column]
    order = np.argsort(start, kind="stable")
    return _admitted(worker[order], start[order], p.pause_duration, p.workers)


def _admitted(worker: IntArray, start: FloatArray, duration: float, workers: int) -> Pauses:
    """Drop each pause that would leave no worker up; the rest, in start order.

    Also dropped: a pause that rounding made empty (a tiny duration on a large start)
    or that rounding made overlap the same worker's previous one, so that every
    worker alternates strictly between up and paused.
    """
    end = start + duration
    keep = np.ones(len(worker), dtype=bool)
    running: list[float] = []  # ends of the pauses running now, a heap
    paused_until = [0.0] * workers
    rows = zip(worker.tolist(), start.tolist(), end.tolist(), strict=True)
    for k, (who, begin, until) in enumerate(rows):
        while running and running[0] <= begin:
            heapq.heappop(running)
        if len(running) + 1 >= workers or until <= begin or begin < paused_until[who]:
            keep[k] = False
            continue
        heapq.heappush(running, until)
        paused_until[who] = until
    return Pauses(worker[keep].astype(np.int64), start[keep], end[keep])


def _no_pauses() -> Pauses:
    return Pauses(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))


def hash_ring(p: SimulationParams, vnodes: int) -> tuple[list[int], list[int]]:
    """Each task's first ring slot, and the owner of every slot of a consistent-hash ring.

    rfqueue places ``vnodes`` points per queue on a 64-bit ring with blake2b; a point
    drawn uniformly is what a good hash gives, so the simulation draws them. Each
    task has its own key (a uniform point too); its owner is the first up worker at
    or after the key on the ring.
    """
    points = generator(p.seed, RING).integers(0, 2**63, size=p.workers * vnodes)
    order = np.argsort(points, kind="stable")
    owners = (order // vnodes).astype(np.int64)
    keys = generator(p.seed, KEYS).integers(0, 2**63, size=p.tasks)
    first = np.searchsorted(points[order], keys) % len(points)
    return first.tolist(), owners.tolist()
