"""Uneven fleets: rfqueue's policies against plain Celery's shared queue, in the same run.

Two scenarios of issue 13, three ``-c 1`` workers with prefetch 1 and late acks on both
sides: one worker 5x slower (5 ms of work, 25 ms on the slow one: ``BENCH_SLOWDOWN``),
and equal workers where one task in ten works 100 ms and the rest 5 ms. Plain Celery's
three workers all consume one queue; rfqueue's three (``rfqueue.install``) consume the
default queue as their pool and their own queues, and a producer routed by each policy
sends to them. Both fleets run side by side for a scenario (on different queues, with
different names). The fleet's capacity is measured first, as the rate at which plain
Celery's fleet drains a backlog of the scenario's tasks; then, at 60 % and 85 % of it, an
open-loop producer sends to each side in turn for a few seconds, round after round,
the order reversed every other round (a busy moment of the machine must hit every side
alike: at 85 % a few seconds of a slower machine build a queue), and every task
records its latency from send to done. Each round gives each side a p50 and a p99; a
row's ratio is the median over rounds of the worse of the two ratios to plain Celery's
in the same round, as the other families pair their runs. The target holds for the
default policy.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery

from rfqueue.bench.chaos import latency
from rfqueue.bench.common import SLOWDOWN, Bench, BenchFleet, Row, median, percentile
from rfqueue.bench.routing import rfqueue_app, stop_sampler
from rfqueue.demo.fleet import wait_for

#: the queue plain Celery's workers share
SHARED = "bench-shared"
#: rfqueue's policies measured: the default first (the only one with a target)
POLICIES = ("pull", "p2c", "least_loaded")
LOADS = (0.60, 0.85)
TARGET = "<= 1.5"


@dataclass(frozen=True)
class Scenario:
    name: str
    #: seconds of work of task i (the pattern repeats)
    works: tuple[float, ...]
    #: the third worker's slowdown
    slowdown: float = 1.0

    def work(self, i: int) -> float:
        return self.works[i % len(self.works)]


SCENARIOS = (
    Scenario("one worker 5x slower", (0.005,), slowdown=5.0),
    Scenario("1 task in 10 of 100 ms", (0.100, *(0.005,) * 9)),
)


def start_fleet(bench: Bench, plain: bool, scenario: Scenario) -> BenchFleet:
    """Three workers, the third slowed down; plain ones all consume the shared queue."""
    fleet = BenchFleet(bench, plain)
    prefix = "p" if plain else "r"
    fleet.start([f"{prefix}1", f"{prefix}2"], [SHARED] * 2)
    fleet.start([f"{prefix}3"], [SHARED], **{SLOWDOWN: str(scenario.slowdown)})
    return fleet


def plain_task(url: str) -> Any:
    app = Celery("bench-shared", broker=url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
    app.conf.task_routes = {"bench.latency": {"queue": SHARED}}
    return app.task(name="bench.latency", shared=False)(latency)


def collect(bench: Bench, key: str, count: int) -> list[float]:
    client = bench.client()
    wait_for(lambda: client.llen(key) >= count, 120, 0.02, f"{count} latencies")
    values = [float(v) for v in client.lrange(key, 0, -1)]
    client.delete(key)
    return values


def capacity(bench: Bench, task: Any, scenario: Scenario, count: int) -> float:
    """Tasks per second plain Celery's fleet drains from a backlog of the scenario's tasks."""
    key = bench.keys.bench("capacity")
    start = time.perf_counter()
    for i in range(count):
        task.apply_async((time.time(), key, scenario.work(i)))
    collect(bench, key, count)
    return count / (time.perf_counter() - start)


def open_loop(
    bench: Bench, task: Any, scenario: Scenario, rate: float, seconds: float
) -> list[float]:
    """Send at ``rate`` for ``seconds`` whatever the workers do; every task's latency."""
    key = bench.keys.bench("uneven")
    start, sent = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
        task.apply_async((time.time(), key, scenario.work(sent)))
        sent += 1
    return collect(bench, key, sent)


def one_scenario(bench: Bench, scenario: Scenario, rounds: int, seconds: float) -> list[Row]:
    bench.flush()
    fleets: list[BenchFleet] = []
    apps = {policy: rfqueue_app(bench.url, policy) for policy in POLICIES}
    try:
        fleets += [start_fleet(bench, True, scenario), start_fleet(bench, False, scenario)]
        tasks: dict[str, Any] = {"plain": plain_task(bench.url)}
        for policy, app in apps.items():
            tasks[policy] = app.task(name="bench.latency", shared=False)(latency)
        snapshot = apps[POLICIES[0]].conf.task_routes[0].snapshot  # one per process
        wait_for(lambda: len(snapshot.up_queues) == 3, 30, what="3 workers up")
        full = capacity(bench, tasks["plain"], scenario, bench.pick(100, 300))
        bench.log(f"  {scenario.name}: capacity {full:.0f} tasks/s")
        rows = []
        for load in LOADS:
            # side -> (p50, p99) of each round; the order alternates: the load drifts
            figures: dict[str, list[tuple[float, float]]] = {side: [] for side in tasks}
            for turn in range(rounds):
                for side in list(tasks) if turn % 2 == 0 else list(tasks)[::-1]:
                    values = open_loop(bench, tasks[side], scenario, load * full, seconds)
                    figures[side].append((percentile(values, 50), percentile(values, 99)))
            rows += rows_at(scenario, load, full * load, (rounds, seconds), figures)
        return rows
    finally:
        for app in apps.values():
            stop_sampler(app)
        for fleet in fleets:
            fleet.stop()


def rows_at(
    scenario: Scenario,
    load: float,
    rate: float,
    runs: tuple[int, float],
    figures: Mapping[str, Sequence[tuple[float, float]]],
) -> list[Row]:
    """Per policy: its median p50 and p99 over rounds, and the median over rounds of the
    worse of its two ratios to plain Celery's in the same round."""
    plain = figures["plain"]
    rows = []
    for policy in POLICIES:
        ours = figures[policy]
        ratios = [max(o[0] / p[0], o[1] / p[1]) for o, p in zip(ours, plain, strict=True)]
        (o50, o99), (p50, p99) = (
            tuple(median([f[i] for f in side]) for i in (0, 1)) for side in (ours, plain)
        )
        rows.append(
            Row(
                f"uneven: {scenario.name}, {load:.0%} ({policy})",
                f"p50 {o50 * 1e3:.1f} ms, p99 {o99 * 1e3:.1f} ms",
                f"p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms plain Celery",
                median(ratios),
                TARGET if policy == POLICIES[0] else "",
                f"ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}; {runs[0]} rounds "
                f"x {runs[1]:g} s at {rate:.0f} tasks/s per side, 3 workers -c 1",
            )
        )
    return rows


def run(bench: Bench) -> list[Row]:
    rounds, seconds = bench.pick((3, 2.0), (5, 3.0))
    return [row for sc in SCENARIOS for row in one_scenario(bench, sc, rounds, seconds)]
