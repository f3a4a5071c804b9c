"""End to end: publish N tasks and wait until three workers have drained them.

rfqueue's side: three workers of the bench app with ``rfqueue.install`` (dedicated
queues, heartbeats, the enforcer, the rescuer) and a producer routed by rfqueue.
Plain Celery's side: three workers of the same app without rfqueue, each consuming
the same queue name with ``-Q``, and a producer whose router is a plain function
taking the three queues in turn. The task is a no-op acknowledged late; the clock
runs from the first publish until every queue and kombu's ``unacked`` hash are empty.
Sides alternate run by run; the row is the median of the paired throughput ratios.
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


def one_run(bench: Bench, plain: bool, count: int) -> float:
    bench.flush()
    queues = [queue_name(n) for n in NAMES]
    with fleet(bench, NAMES, plain=plain):
        app = plain_app(bench.url, queues) if plain else rfqueue_app(bench.url)
        task = task_of(app)
        if not plain:  # the producer's snapshot must see the three workers up
            router = app.conf.task_routes[0]
            wait_for(lambda: len(router.snapshot.up_queues) == 3, 30, what="3 workers up")
        return publish_and_drain(bench, task, count, queues)


def run(bench: Bench) -> list[Row]:
    runs, count = bench.pick((1, 300), (6, 2500))
    ours: list[float] = []
    plain: list[float] = []
    for i in range(runs):
        for side in ("rfqueue", "plain") if i % 2 == 0 else ("plain", "rfqueue"):
            seconds = one_run(bench, side == "plain", count)
            (plain if side == "plain" else ours).append(seconds)
            bench.log(f"  end to end, {side}: {count / seconds:,.0f} tasks/s")
    ratios = [p / o for o, p in zip(ours, plain, strict=True)]
    return [
        Row(
            "end to end: publish + drain, 3 workers",
            f"{count / median(ours):,.0f} tasks/s",
            f"{count / median(plain):,.0f} tasks/s plain Celery",
            median(ratios),
            ">= 0.95",
            f"{runs} run(s) per side x {count:,} no-op tasks, static round robin baseline",
        )
    ]
