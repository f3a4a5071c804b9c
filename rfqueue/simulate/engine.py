"""The event loop: route every task of a workload with one policy, under pauses.

Each worker serves its own FIFO queue, one task at a time, at its own speed (a task
of length x takes x / speed). Because a queue is FIFO
and the pauses are known in advance, a task's start is fixed the moment it is placed
(Lindley's recursion): the later of its arrival and the end of the task before it,
pushed to the end of a pause if it falls inside one. So the loop visits only the
arrivals and the pause and resume events, in time order, and never a completion
(``least_loaded`` keeps its own heap of them).

A pause takes the worker out of ``up``: the router sends it nothing new; the task
it is running finishes. With rescue on, the tasks waiting in its queue are routed
again at once, in their order, by the same policy; with rescue off they start when
it resumes.
"""

from __future__ import annotations

import time
from bisect import bisect_right, insort
from collections import deque
from dataclasses import dataclass

import numpy as np

from rfqueue.simulate.params import SimulationParams
from rfqueue.simulate.routers import FleetView, SimRouter, make_router
from rfqueue.simulate.workload import (
    FloatArray,
    IntArray,
    Pauses,
    Workload,
    hash_ring,
    make_workload,
    policy_seed,
)

#: a task in a worker's queue: (start, finish, task)
Slot = tuple[float, float, int]


@dataclass(frozen=True)
class Run:
    """What happened to every task under one policy."""

    policy: str
    arrival: FloatArray
    #: how long each task ran, on the worker that ran it
    service: FloatArray
    #: when each task started, on which worker, and when it was last routed
    start: FloatArray
    worker: IntArray
    routed_at: FloatArray
    pauses: Pauses
    #: tasks the rescue moved (a task moved twice counts twice)
    moved: int
    #: the most unfinished tasks one worker held at once
    max_queue: int
    #: wall-clock seconds of the event loop
    seconds: float

    @property
    def wait(self) -> FloatArray:
        return self.start - self.arrival

    @property
    def finish(self) -> FloatArray:
        return self.start + self.service


class Simulation:
    """The fleet's state while one policy routes one workload."""

    def __init__(self, p: SimulationParams, policy: str, workload: Workload) -> None:
        self.params, self.policy, self.workload = p, policy, workload
        n = p.workers
        self.free = [0.0] * n  # when each worker is done with its queue so far
        self.queues: list[deque[Slot]] = [deque() for _ in range(n)]
        self.view = FleetView(list(range(n)), bytearray([1]) * n, self.backlog)
        self.router: SimRouter = make_router(
            policy, self.view, n, policy_seed(p.seed, policy), lambda v: hash_ring(p, v)
        )
        self.windows = _windows(workload.pauses, n)
        self.service = workload.service.tolist()
        self.speed = [p.speed(w) for w in range(n)]
        self.ran_for = list(self.service)  # each task's length over its worker's speed
        self.start = [0.0] * p.tasks
        self.worker = [0] * p.tasks
        self.routed_at: dict[int, float] = {}  # tasks the rescue routed again, and when
        self.moved = 0
        self.max_queue = 0

    def backlog(self, worker: int, now: float) -> int:
        """Tasks of ``worker`` not finished at ``now``."""
        queue = self.queues[worker]
        while queue and queue[0][1] <= now:
            queue.popleft()
        return len(queue)

    def place(self, task: int, worker: int, now: float) -> None:
        """Queue ``task`` at ``worker`` at ``now``; its start follows at once."""
        begin = self.free[worker]
        if begin < now:
            begin = now
        starts, ends = self.windows[worker]
        if starts:
            k = bisect_right(starts, begin) - 1
            if k >= 0 and begin < ends[k]:
                begin = ends[k]  # paused when it would start: it waits for the resume
        service = self.ran_for[task] = self.service[task] / self.speed[worker]
        finish = begin + service
        self.free[worker] = finish
        self.start[task], self.worker[task] = begin, worker
        queue = self.queues[worker]
        while queue and queue[0][1] <= now:
            queue.popleft()
        queue.append((begin, finish, task))
        if len(queue) > self.max_queue:
            self.max_queue = len(queue)
        if self.router.placed is not None:
            self.router.placed(worker, finish, task)

    def run(self) -> Run:
        """Route every task; return what happened."""
        began = time.perf_counter()
        events = _events(self.workload.pauses)
        arrival = self.workload.arrival.tolist()
        choose, advance, place = self.router.choose, self.router.advance, self.place
        next_event = events[0][0] if events else float("inf")
        e = 0
        for task, now in enumerate(arrival):
            while next_event <= now:
                _, is_pause, worker = events[e]
                self.pause_or_resume(next_event, is_pause, worker)
                e += 1
                next_event = events[e][0] if e < len(events) else float("inf")
            if advance is not None:
                advance(now)
            place(task, choose(task, now), now)
        return self._result(time.perf_counter() - began)

    def pause_or_resume(self, when: float, pause: bool, worker: int) -> None:
        view = self.view
        if not pause:
            view.is_up[worker] = 1
            insort(view.up, worker)
            self.router.resumed(worker)
            return
        view.is_up[worker] = 0
        del view.up[bisect_right(view.up, worker) - 1]
        self.router.paused(worker)
        if self.params.rescue:
            self.rescue(worker, when)

    def rescue(self, worker: int, now: float) -> None:
        """Route the tasks waiting at ``worker`` again, in order; the running one stays."""
        self.backlog(worker, now)
        queue, waiting = self.queues[worker], []
        while queue and queue[-1][0] >= now:
            waiting.append(queue.pop()[2])
        if not waiting:
            return
        waiting.reverse()
        self.free[worker] = queue[-1][1] if queue else now
        self.router.moved_away(worker, waiting)
        if self.router.advance is not None:
            self.router.advance(now)
        for task in waiting:
            self.place(task, self.router.choose(task, now), now)
            self.routed_at[task] = now
        self.moved += len(waiting)

    def _result(self, seconds: float) -> Run:
        w = self.workload
        routed_at = w.arrival.copy()
        if self.routed_at:
            moved = np.fromiter(self.routed_at, dtype=np.int64, count=len(self.routed_at))
            routed_at[moved] = np.fromiter(self.routed_at.values(), dtype=np.float64)
        return Run(
            policy=self.policy,
            arrival=w.arrival,
            service=np.asarray(self.ran_for),
            start=np.asarray(self.start),
            worker=np.asarray(self.worker, dtype=np.int64),
            routed_at=routed_at,
            pauses=w.pauses,
            moved=self.moved,
            max_queue=self.max_queue,
            seconds=seconds,
        )


def _events(pauses: Pauses) -> list[tuple[float, bool, int]]:
    """(time, is a pause, worker), in time order; at equal times resumes go first."""
    times = np.concatenate([pauses.start, pauses.end])
    is_pause = np.concatenate([np.ones(len(pauses), bool), np.zeros(len(pauses), bool)])
    workers = np.concatenate([pauses.worker, pauses.worker])
    order = np.lexsort((is_pause, times))
    t, kind, who = times[order].tolist(), is_pause[order].tolist(), workers[order].tolist()
    return list(zip(t, kind, who, strict=True))


def _windows(pauses: Pauses, workers: int) -> list[tuple[list[float], list[float]]]:
    """Each worker's pauses as (starts, ends), in time order."""
    windows: list[tuple[list[float], list[float]]] = [([], []) for _ in range(workers)]
    for who, begin, end in zip(
        pauses.worker.tolist(), pauses.start.tolist(), pauses.end.tolist(), strict=True
    ):
        windows[who][0].append(begin)
        windows[who][1].append(end)
    return windows


def run_policy(p: SimulationParams, policy: str, workload: Workload | None = None) -> Run:
    """Route ``workload`` (drawn from ``p`` when not given) with ``policy``."""
    return Simulation(p, policy, workload or make_workload(p)).run()
