"""Router cost, side by side: rfqueue's route() against Celery's static dict route.

    .venv/bin/python benchmarks/route_cost.py

Both routers run in one process against one private redis-server with three
registered workers; each figure is the median of 5 rounds of 100,000 calls to
``app.amqp.router.route``. Issue 4 replaces this with ``rfqueue bench``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from celery import Celery

from rfqueue.fleet import RedisServer
from rfqueue.router import Router, stop_snapshots
from rfqueue.settings import Settings
from rfqueue.table import FailureTable


def per_call_us(router: Any, calls: int = 100_000) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        router.route({}, "t", (), {})
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    server = RedisServer().start()
    try:
        table = FailureTable(server.client())
        for i in range(3):
            table.register(f"w{i}@h", f"rfqueue.w{i}@h")
        ours = Celery("ours", broker=server.url, set_as_current=False)
        ours.conf.task_routes = [Router(ours, settings=Settings(redis_url=server.url))]
        static = Celery("static", broker=server.url, set_as_current=False)
        static.conf.task_routes = {"t": {"queue": "rfqueue.w0@h"}}
        routers = {"rfqueue": ours.amqp.router, "static": static.amqp.router}
        for router in routers.values():
            router.route({}, "t", (), {})  # warm up: load the snapshot
        rounds: dict[str, list[float]] = {name: [] for name in routers}
        for _ in range(5):
            for name, router in routers.items():
                rounds[name].append(per_call_us(router))
        a, b = (statistics.median(rounds[n]) for n in ("rfqueue", "static"))
        print(f"rfqueue route {a:.2f} us, static dict route {b:.2f} us, ratio {a / b:.2f}")
    finally:
        stop_snapshots()
        server.stop()


if __name__ == "__main__":
    main()
