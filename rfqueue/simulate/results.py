"""Per-policy figures of a run, and the runs of several policies across processes."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from rfqueue.simulate.engine import Run, run_policy
from rfqueue.simulate.params import SimulationParams
from rfqueue.simulate.workload import make_workload

#: shares of tasks for the wait's tail curve: 1, then down to one in 100,000
TAIL_SHARES = tuple(float(s) for s in np.logspace(0, -5, 51))


@dataclass(frozen=True)
class PolicyResult:
    """What one policy achieved on the run's workload. Waits are in seconds."""

    policy: str
    mean_wait: float
    p99_wait: float
    max_wait: float
    #: tasks served per worker: the busiest worker's count over the mean count
    max_mean_load: float
    #: the most unfinished tasks one worker held at once
    max_queue: int
    #: tasks the rescue routed again
    moved: int
    #: wall-clock seconds of this policy's event loop
    seconds: float
    #: (wait, share of tasks that waited longer), for the tail curve
    tail: tuple[tuple[float, float], ...]


def summarise(run: Run, workers: int) -> PolicyResult:
    """The figures of one run."""
    wait = run.wait
    served = np.bincount(run.worker, minlength=workers)
    levels = np.quantile(wait, 1 - np.asarray(TAIL_SHARES))
    return PolicyResult(
        policy=run.policy,
        mean_wait=float(wait.mean()),
        p99_wait=float(np.quantile(wait, 0.99)),
        max_wait=float(wait.max()),
        max_mean_load=float(served.max() / served.mean()),
        max_queue=run.max_queue,
        moved=run.moved,
        seconds=run.seconds,
        tail=tuple(zip(levels.tolist(), TAIL_SHARES, strict=True)),
    )


@dataclass(frozen=True)
class Comparison:
    """Every policy of ``params`` on the same workload."""

    params: SimulationParams
    results: tuple[PolicyResult, ...]
    #: wall-clock seconds of the whole comparison, and the processes it used
    seconds: float
    jobs: int


def default_jobs(p: SimulationParams) -> int:
    """One process per policy, up to the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, len(p.policies)))


def compare(p: SimulationParams, jobs: int | None = None) -> Comparison:
    """Run every policy of ``p``; in ``jobs`` processes when more than one."""
    began = time.perf_counter()
    jobs = default_jobs(p) if jobs is None else max(1, min(jobs, len(p.policies)))
    if jobs == 1:
        workload = make_workload(p)  # drawn once, shared by the policies
        results = [summarise(run_policy(p, policy, workload), p.workers) for policy in p.policies]
    else:
        # spawn, not fork: the caller may hold threads (a router's snapshot, say).
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_one_policy, [p] * len(p.policies), p.policies))
    return Comparison(p, tuple(results), time.perf_counter() - began, jobs)


def _one_policy(p: SimulationParams, policy: str) -> PolicyResult:
    """One policy in a worker process: it draws the same workload from the same seed."""
    return summarise(run_policy(p, policy), p.workers)
