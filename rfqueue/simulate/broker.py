"""The broker model: workers pull with prefetch 1; routers know only what real ones can.

Each worker runs one task at a time (Celery ``-c 1``, prefetch 1, late acks) and
consumes two queues: its dedicated queue and the pool's shared queue. When free it
takes the next task as kombu's Redis transport does: one BRPOP over both queues, in
an order that puts the queue it last took from at the end (``round_robin_cycle``).
When both are empty it blocks; a task pushed to either queue goes to a blocked
worker at once, the shared queue's to the one blocked longest (Redis serves blocked
clients first come, first served). Plain Celery is the ``shared`` router: every task
to the shared queue.

``routers`` independent routers each send a random share of the tasks, with the
information of :mod:`rfqueue.simulate.knowledge`. A pause stops a worker consuming
both queues; its running task finishes. With rescue on, the tasks in its dedicated
queue are routed again at once by their router; tasks in the shared queue wait for
the other workers. A task's latency runs from its send to its end.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable

import numpy as np

from rfqueue.simulate.broker_run import BrokerRun, routed_at
from rfqueue.simulate.candidates import (
    ANNOUNCEMENTS,
    COMPLETIONS,
    DEPTHS,
    RATES,
    SHARED,
    Candidate,
)
from rfqueue.simulate.designs import CANDIDATES
from rfqueue.simulate.knowledge import Fleet
from rfqueue.simulate.params import SimulationParams
from rfqueue.simulate.workload import (
    Workload,
    generator,
    make_workload,
    policy_seed,
    task_routers,
)

#: event kinds, in the order of :meth:`BrokerSimulation.handlers`
COMPLETE, SAMPLE, HEARTBEAT, IDLE, BUSY, FEEDBACK, PAUSE, RESUME = range(8)
#: the weight of a new service time in a worker's EWMA
SERVICE_EWMA_WEIGHT = 0.2
#: the random stream of sampling phases and announcement targets
PHASES = 50


class BrokerSimulation:
    """The fleet, its queues and its routers while one design routes one workload."""

    def __init__(self, p: SimulationParams, policy: str, workload: Workload) -> None:
        self.params, self.policy, self.workload = p, policy, workload
        n = p.workers
        self.fleet = Fleet(list(range(n)), bytearray([1]) * n)
        seeds = random.Random(policy_seed(p.seed, policy))
        self.routers: list[Candidate] = [
            CANDIDATES[policy](self.fleet, p, r, seeds.getrandbits(63)) for r in range(p.routers)
        ]
        self.uses = self.routers[0].uses
        self.phase = random.Random(int(generator(p.seed, PHASES).integers(2**63))).random
        self.router_of = task_routers(p)
        self.length = workload.service.tolist()
        self.speed = [p.speed(w) for w in range(n)]
        self.dedicated: list[deque[int]] = [deque() for _ in range(n)]
        self.shared: deque[int] = deque()
        self.running = [-1] * n
        self.shared_first = bytearray(n)  # kombu's cycle: the shared queue comes first
        self.idle_token = [0] * n  # nonzero while idle (blocked on BRPOP); 0 when busy or paused
        self.blocked: deque[tuple[int, int]] = deque()  # (worker, token), longest blocked first
        self.tokens = itertools.count(1)
        self.told = [-1] * n  # the router told of a worker's idle spell; -1: all of them
        self.ewma = [0.0] * n
        self.events: list[tuple[float, int, int, int, int]] = []
        self.order = itertools.count()
        self.start = [0.0] * p.tasks
        self.finish = [0.0] * p.tasks
        self.worker = [0] * p.tasks
        self.to_shared = bytearray(p.tasks)
        self.routed_at: dict[int, float] = {}
        self.done = self.moved = self.messages = self.max_dedicated = self.max_shared = 0

    # -- the event loop --------------------------------------------------------------

    def run(self) -> BrokerRun:
        began = time.perf_counter()
        self._schedule_feeds()
        pauses = self.workload.pauses
        for who, begin, end in zip(
            pauses.worker.tolist(), pauses.start.tolist(), pauses.end.tolist(), strict=True
        ):
            self.at(begin, PAUSE, who)
            self.at(end, RESUME, who)
        for w in range(self.params.workers):
            self.take_next(w, 0.0)
        events, handlers, route = self.events, self.handlers(), self.route
        for task, now in enumerate(self.workload.arrival.tolist()):
            while events and events[0][0] <= now:
                when, _, kind, a, b = heapq.heappop(events)
                handlers[kind](when, a, b)
            route(task, now)
        while self.done < self.params.tasks:
            when, _, kind, a, b = heapq.heappop(events)
            handlers[kind](when, a, b)
        return self._result(time.perf_counter() - began)

    def handlers(self) -> tuple[Callable[[float, int, int], None], ...]:
        return (
            self.complete,
            self.sample,
            self.heartbeat,
            self.deliver_idle,
            self.deliver_busy,
            self.feedback,
            self.pause,
            self.resume,
        )

    def at(self, when: float, kind: int, a: int, b: int = 0) -> None:
        heapq.heappush(self.events, (when, next(self.order), kind, a, b))

    def _schedule_feeds(self) -> None:
        p = self.params
        if DEPTHS in self.uses:
            for r in range(p.routers):
                self.at(self.phase() * p.depth_interval, SAMPLE, r)
        if RATES in self.uses:
            for w in range(p.workers):
                self.at(self.phase() * p.heartbeat_interval, HEARTBEAT, w)

    # -- routing and the queues ------------------------------------------------------

    def route(self, task: int, now: float) -> None:
        self.push(task, self.routers[self.router_of[task]].choose(task, now), now)

    def push(self, task: int, worker: int, now: float) -> None:
        """Publish ``task`` to ``worker``'s dedicated queue, or to the shared queue."""
        if worker == SHARED:
            self.to_shared[task] = 1
            blocked, token = self.blocked, self.idle_token
            while blocked:
                w, mine = blocked.popleft()
                if token[w] == mine:
                    self.begin(w, task, now)
                    return
            self.shared.append(task)
            self.max_shared = max(self.max_shared, len(self.shared))
            return
        self.to_shared[task] = 0
        if self.idle_token[worker]:
            self.begin(worker, task, now)
            return
        queue = self.dedicated[worker]
        queue.append(task)
        if len(queue) > self.max_dedicated:
            self.max_dedicated = len(queue)

    def begin(self, worker: int, task: int, now: float) -> None:
        if self.idle_token[worker]:
            self.idle_token[worker] = 0
            if ANNOUNCEMENTS in self.uses:
                self.announce(worker, BUSY, now)
        self.running[worker] = task
        self.start[task], self.worker[task] = now, worker
        self.at(now + self.length[task] / self.speed[worker], COMPLETE, worker, task)

    def take_next(self, worker: int, now: float) -> None:
        """A free, up worker's BRPOP: the next task of its two queues, else it blocks."""
        mine, shared = self.dedicated[worker], self.shared
        if self.shared_first[worker] and shared:
            self.shared_first[worker] = 0
            self.begin(worker, shared.popleft(), now)
        elif mine:
            self.shared_first[worker] = 1
            self.begin(worker, mine.popleft(), now)
        elif shared:
            self.shared_first[worker] = 0
            self.begin(worker, shared.popleft(), now)
        else:
            token = self.idle_token[worker] = next(self.tokens)
            self.blocked.append((worker, token))
            if ANNOUNCEMENTS in self.uses:
                self.announce(worker, IDLE, now)

    def announce(self, worker: int, kind: int, now: float) -> None:
        """Publish ``worker``'s idle or busy state: to one random router, or to all."""
        p = self.params
        if kind == IDLE:
            one = p.announce_to == "one" and p.routers > 1
            self.told[worker] = int(self.phase() * p.routers) if one else -1
        to = self.told[worker]
        self.messages += 1 if to >= 0 else p.routers
        self.at(now + p.announce_latency, kind, worker, to)

    # -- events ----------------------------------------------------------------------

    def complete(self, now: float, worker: int, task: int) -> None:
        self.running[worker] = -1
        self.finish[task] = now
        self.done += 1
        service = now - self.start[task]
        old = self.ewma[worker]
        self.ewma[worker] = service if old == 0 else old + SERVICE_EWMA_WEIGHT * (service - old)
        if COMPLETIONS in self.uses:
            self.messages += 1
            self.at(now + self.params.announce_latency, FEEDBACK, self.router_of[task], task)
        if self.fleet.is_up[worker]:
            self.take_next(worker, now)

    def sample(self, now: float, router: int, _: int) -> None:
        self.routers[router].sampled([len(q) for q in self.dedicated], now)
        if self.done < self.params.tasks:
            self.at(now + self.params.depth_interval, SAMPLE, router)

    def heartbeat(self, now: float, worker: int, _: int) -> None:
        if self.ewma[worker]:
            for router in self.routers:
                router.published(worker, self.ewma[worker])
        if self.done < self.params.tasks:
            self.at(now + self.params.heartbeat_interval, HEARTBEAT, worker)

    def deliver_idle(self, now: float, worker: int, to: int) -> None:
        for router in self.routers if to < 0 else (self.routers[to],):
            router.announced(worker, True)

    def deliver_busy(self, now: float, worker: int, to: int) -> None:
        for router in self.routers if to < 0 else (self.routers[to],):
            router.announced(worker, False)

    def feedback(self, now: float, router: int, task: int) -> None:
        latency = now - self.routed_at.get(task, float(self.workload.arrival[task]))
        self.routers[router].completed(self.worker[task], latency, now)

    def pause(self, now: float, worker: int, _: int) -> None:
        fleet = self.fleet
        fleet.is_up[worker] = 0
        del fleet.up[bisect_right(fleet.up, worker) - 1]
        self.idle_token[worker] = 0  # it stops consuming: no longer blocked on BRPOP
        if self.params.rescue:
            self.rescue(worker, now)

    def resume(self, now: float, worker: int, _: int) -> None:
        fleet = self.fleet
        fleet.is_up[worker] = 1
        fleet.up.insert(bisect_left(fleet.up, worker), worker)
        for router in self.routers:
            router.resumed(worker)
        if self.running[worker] < 0:
            self.take_next(worker, now)

    def rescue(self, worker: int, now: float) -> None:
        """Route the tasks waiting in ``worker``'s dedicated queue again, in order."""
        waiting = list(self.dedicated[worker])
        self.dedicated[worker].clear()
        for task in waiting:
            self.routers[self.router_of[task]].moved_away(worker)
        for task in waiting:
            self.routed_at[task] = now
            self.route(task, now)
        self.moved += len(waiting)

    def _result(self, seconds: float) -> BrokerRun:
        return BrokerRun(
            policy=self.policy,
            arrival=self.workload.arrival,
            start=np.asarray(self.start),
            finish=np.asarray(self.finish),
            worker=np.asarray(self.worker, dtype=np.int64),
            routed_at=routed_at(self.workload.arrival, self.routed_at),
            shared=np.frombuffer(bytes(self.to_shared), dtype=np.uint8).astype(bool),
            pauses=self.workload.pauses,
            moved=self.moved,
            messages=self.messages,
            max_dedicated=self.max_dedicated,
            max_shared=self.max_shared,
            seconds=seconds,
        )


def run_design(p: SimulationParams, policy: str, workload: Workload | None = None) -> BrokerRun:
    """Route ``workload`` (drawn from ``p`` when not given) with the design ``policy``."""
    return BrokerSimulation(p, policy, workload or make_workload(p)).run()
