"""Router cost: rfqueue's route() under each policy against Celery's static dict route.

Every router is a real Celery app's ``app.amqp.router`` (what ``apply_async`` calls),
all in this process, against one private Redis with three registered workers. Rounds
alternate between the routers; each row is the median over rounds of the per-round
ratio, so a slow moment of the machine hits both sides of a pair.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from rfqueue.bench.common import Bench, Row, median
from rfqueue.routing.router import Router
from rfqueue.settings import Settings
from rfqueue.table import FailureTable

WORKERS = ("w1@bench", "w2@bench", "w3@bench")
#: policy -> extra settings it needs
POLICIES: dict[str, dict[str, Any]] = {
    "pull": {},
    "round_robin": {},
    "random": {},
    "p2c": {},
    "least_loaded": {},
    "weighted": {"weights": ("w1@bench=3", "w2@bench=2")},
    "hash": {"hash_key": "user"},
}


def register_workers(bench: Bench) -> FailureTable:
    """Three up workers in the table (no processes: routing only reads the table)."""
    table = FailureTable(bench.client())
    for worker in WORKERS:
        table.register(worker, f"rfqueue.{worker}")
    return table


def bench_settings(url: str, policy: str = "round_robin", **extra: Any) -> Settings:
    # Registered, never heartbeating: a long timeout keeps them routable for the run.
    options = {"heartbeat_timeout": 3600, **POLICIES.get(policy, {}), **extra}
    return Settings(redis_url=url, policy=policy, **options)


def rfqueue_app(url: str, policy: str = "round_robin", **extra: Any) -> Any:
    """A producer app routed by rfqueue alone (no Unpin, no install: the router itself)."""
    app = Celery(f"bench-{policy}", broker=url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
    app.conf.task_routes = [Router(app, settings=bench_settings(url, policy, **extra))]
    return app


def stop_sampler(app: Any) -> None:
    """Stop the depth sampler of ``app``'s rfqueue policy, if it has one."""
    sampler = getattr(app.conf.task_routes[0]._policy, "sampler", None)
    if sampler is not None:
        sampler.stop()


def static_app(url: str) -> Any:
    """The baseline: Celery's own static dict route, to one of the same queues."""
    app = Celery("bench-static", broker=url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
    app.conf.task_routes = {"bench.noop": {"queue": f"rfqueue.{WORKERS[0]}"}}
    return app


def per_call_us(router: Any, calls: int) -> float:
    route, kwargs = router.route, {"user": 7}
    start = time.perf_counter()
    for _ in range(calls):
        route({}, "bench.noop", (), kwargs)
    return (time.perf_counter() - start) / calls * 1e6


def run(bench: Bench) -> list[Row]:
    """One row per policy: route() cost over the static route's, median of paired rounds."""
    bench.flush()
    register_workers(bench)
    apps = {name: rfqueue_app(bench.url, name) for name in POLICIES}
    routers = {name: app.amqp.router for name, app in apps.items()}
    static = static_app(bench.url).amqp.router
    for router in [*routers.values(), static]:
        router.route({}, "bench.noop", (), {"user": 7})  # load snapshots, start samplers
    rounds, calls = bench.pick((5, 10_000), (15, 50_000))
    ours: dict[str, list[float]] = {name: [] for name in routers}
    base: dict[str, list[float]] = {name: [] for name in routers}
    for _ in range(rounds):
        for name, router in routers.items():
            # The static route is timed right next to each policy: a paired round.
            base[name].append(per_call_us(static, calls))
            ours[name].append(per_call_us(router, calls))
    for app in apps.values():
        stop_sampler(app)
    return [
        Row(
            f"router cost ({name})",
            f"{median(ours[name]):.2f} us",
            f"{median(base[name]):.2f} us static",
            median([a / b for a, b in zip(ours[name], base[name], strict=True)]),
            "<= 1.2" if name == "round_robin" else "",
            f"{rounds} rounds x {calls:,} route() calls",
        )
        for name in routers
    ]
