"""Per-design figures of a broker-model run, each against plain Celery's shared queue.

Every comparison runs ``shared`` (plain Celery) first on the same workload and gives
each design's p50 and p99 latency as a ratio to it: the issue's goal is 1.5 or less.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context

import numpy as np

from rfqueue.simulate.broker import run_design
from rfqueue.simulate.broker_run import BrokerRun
from rfqueue.simulate.params import SimulationParams
from rfqueue.simulate.results import TAIL_SHARES, default_jobs
from rfqueue.simulate.workload import make_workload

#: the baseline every design is measured against
BASELINE = "shared"
#: the goal: a design's p50 and p99 within this factor of the baseline's
GOAL = 1.5


@dataclass(frozen=True)
class DesignResult:
    """What one design achieved. Latencies (send to done) in seconds."""

    policy: str
    p50: float
    p99: float
    max: float
    #: tasks served per worker over what its speed's share of the work would be, the highest
    max_fair_load: float
    #: share of tasks whose last routing sent them to the shared queue
    shared_share: float
    moved: int
    #: pub/sub messages per task that the design's feeds cost (announcements, completions)
    messages: float
    max_dedicated: int
    seconds: float
    #: (latency, share of tasks that took longer), for the tail curve
    tail: tuple[tuple[float, float], ...]
    #: p50 and p99 over the baseline's, set by :func:`compare_designs`
    p50_ratio: float = float("nan")
    p99_ratio: float = float("nan")

    @property
    def meets_goal(self) -> bool:
        return self.p50_ratio <= GOAL and self.p99_ratio <= GOAL


def summarise_design(run: BrokerRun, p: SimulationParams) -> DesignResult:
    latency = run.latency
    served = np.bincount(run.worker, minlength=p.workers)
    speeds = np.asarray([p.speed(w) for w in range(p.workers)])
    fair = speeds / speeds.sum() * len(latency)
    p50, p99 = np.quantile(latency, [0.5, 0.99]).tolist()
    levels = np.quantile(latency, 1 - np.asarray(TAIL_SHARES))
    return DesignResult(
        policy=run.policy,
        p50=p50,
        p99=p99,
        max=float(latency.max()),
        max_fair_load=float((served / fair).max()),
        shared_share=float(run.shared.mean()),
        moved=run.moved,
        messages=run.messages / len(latency),
        max_dedicated=run.max_dedicated,
        seconds=run.seconds,
        tail=tuple(zip(levels.tolist(), TAIL_SHARES, strict=True)),
    )


@dataclass(frozen=True)
class DesignComparison:
    """Every design of ``params`` on one workload, the baseline first."""

    params: SimulationParams
    results: tuple[DesignResult, ...]
    seconds: float
    jobs: int


def with_baseline(p: SimulationParams) -> SimulationParams:
    """``p`` with the baseline as its first policy."""
    rest = tuple(name for name in p.policies if name != BASELINE)
    return p.replace(policies=(BASELINE, *rest))


def compare_designs(p: SimulationParams, jobs: int | None = None) -> DesignComparison:
    """Run the baseline and every design of ``p``; in ``jobs`` processes when more than one."""
    began = time.perf_counter()
    p = with_baseline(p)
    jobs = default_jobs(p) if jobs is None else max(1, min(jobs, len(p.policies)))
    if jobs == 1:
        workload = make_workload(p)
        results = [summarise_design(run_design(p, name, workload), p) for name in p.policies]
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_one_design, [p] * len(p.policies), p.policies))
    base = results[0]
    rated = tuple(
        replace(r, p50_ratio=r.p50 / base.p50, p99_ratio=r.p99 / base.p99) for r in results
    )
    return DesignComparison(p, rated, time.perf_counter() - began, jobs)


def _one_design(p: SimulationParams, policy: str) -> DesignResult:
    return summarise_design(run_design(p, policy), p)
