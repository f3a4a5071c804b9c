"""End to end: publish N tasks and wait until three workers have drained them.

rfqueue's side: three workers of the bench app with ``rfqueue.install`` (dedicated
queues, heartbeats, the enforcer, the rescuer) and a producer routed by rfqueue.
Plain Celery's side: three workers of the same app without rfqueue, and a producer
whose router is a plain function taking the three workers' queues in turn. Each plain
worker consumes, with ``-Q``, the same queue name as rfqueue's and the app's default
queue ``celery``, as an rfqueue worker consumes its pool: what a Celery fleet routing
to each worker has (Celery's own ``worker_direct`` adds a queue per worker to the
default one). A third side, reported only, has plain workers on their one queue: on
Redis a worker's poll names every queue it consumes, so each one costs per task.
The task is a no-op acknowledged late; the clock runs from the first publish until
every queue and kombu's ``unacked`` hash are empty. The sides take turns in an order
that rotates run by run; each row is the median of the paired throughput ratios.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery

from rfqueue.bench.common import Bench, Row, drained, fleet, median, queue_name
from rfqueue.bench.publish import task_of
from rfqueue.bench.routing import rfqueue_app
from rfqueue.demo.fleet import wait_for

NAMES = ("w1", "w2", "w3")
#: the app's default queue: rfqueue's workers consume it as their pool
POOL = "celery"
#: the sides of a run: rfqueue, plain Celery as a fleet routing to each worker, and
#: plain workers consuming one queue each (reported)
SIDES = ("rfqueue", "plain", "plain, one queue")


def static_round_robin(queues: Sequence[str]) -> Callable[..., dict[str, str]]:
    """What a plain Celery user writes: a router taking fixed queues in turn."""
    turn = itertools.cycle(queues)

    def route(name: str, args: Any, kwargs: Any, options: Any, **_: Any) -> dict[str, str]:
        return {"queue": next(turn)}

    return route


def plain_app(url: str, queues: Sequence[str]) -> Any:
    app = Celery("bench-plain", broker=url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
    app.conf.task_routes = [static_round_robin(queues)]
    return app


def publish_and_drain(bench: Bench, task: Any, count: int, queues: Sequence[str]) -> float:
    """Seconds from the first publish until nothing waits and nothing is unacknowledged."""
    client = bench.client()
    start = time.perf_counter()
    for n in range(count):
        task.apply_async((n,))
    wait_for(lambda: drained(client, queues), 120, interval=0.002, what="the queues to drain")
    return time.perf_counter() - start


def one_run(bench: Bench, side: str, count: int) -> float:
    bench.flush()
    queues = [queue_name(n) for n in NAMES]
    plain = side != "rfqueue"
    with fleet(bench, NAMES, plain=plain, pool=POOL if side == "plain" else ""):
        app = plain_app(bench.url, queues) if plain else rfqueue_app(bench.url)
        task = task_of(app)
        if not plain:  # the producer's snapshot must see the three workers up
            router = app.conf.task_routes[0]
            wait_for(lambda: len(router.snapshot.up_queues) == 3, 30, what="3 workers up")
        return publish_and_drain(bench, task, count, queues)


def run(bench: Bench) -> list[Row]:
    runs, count = bench.pick((1, 300), (10, 2500))
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    for i in range(runs):
        for side in SIDES[i % len(SIDES) :] + SIDES[: i % len(SIDES)]:
            seconds[side].append(one_run(bench, side, count))
            bench.log(f"  end to end, {side}: {count / seconds[side][-1]:,.0f} tasks/s")
    ours = seconds["rfqueue"]
    return [
        _row(
            "end to end: publish + drain, 3 workers",
            ours,
            seconds["plain"],
            count,
            "plain Celery",
            ">= 0.95",
            "own queue + celery",
        ),
        _row(
            "end to end: plain on one queue",
            ours,
            seconds["plain, one queue"],
            count,
            "plain, one queue each",
            "",
            "the plain workers consume only their own queue",
        ),
    ]


def _row(
    name: str,
    ours: list[float],
    plain: list[float],
    count: int,
    baseline: str,
    target: str,
    queues: str,
) -> Row:
    """A row of paired throughput ratios; ``target`` empty: reported only."""
    ratios = [p / o for o, p in zip(ours, plain, strict=True)]
    return Row(
        name,
        f"{count / median(ours):,.0f} tasks/s",
        f"{count / median(plain):,.0f} tasks/s {baseline}",
        median(ratios),
        target,
        f"{len(ours)} run(s) per side x {count:,} no-op tasks, static round robin baseline"
        f" ({queues})",
    )
