"""Publishing: an ``apply_async`` loop routed by rfqueue vs by a static route, and
``dispatch_many`` vs that loop.

Both producers are real Celery apps publishing ``bench.noop`` to the same private
Redis; nothing consumes, and the queues are emptied between rounds. Rounds alternate
between the two sides; each row is the median of the per-round ratios.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rfqueue.bench.common import Bench, Row, median, timed
from rfqueue.bench.profile import breakdown, describe
from rfqueue.bench.routing import WORKERS, register_workers, rfqueue_app, static_app
from rfqueue.routing.dispatch import dispatch_many


def noop(n: int = 0, user: str = "") -> None:
    """The published task (``bench.noop`` of rfqueue/bench/app.py); never run here."""


def task_of(app: Any) -> Any:
    """``bench.noop`` registered in ``app``, to publish it from there."""
    return app.task(name="bench.noop", shared=False)(noop)


def loop(task: Any, count: int) -> Callable[[], None]:
    def publish() -> None:
        for n in range(count):
            task.apply_async((n,))

    return publish


def empty_queues(bench: Bench) -> None:
    bench.client().delete(*(f"rfqueue.{w}" for w in WORKERS))


def paired(
    bench: Bench, rounds: int, ours: Callable[[], Any], base: Callable[[], Any]
) -> tuple[list[float], list[float]]:
    """Seconds per round of each side, alternating which goes first."""
    a: list[float] = []
    b: list[float] = []
    for i in range(rounds):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            empty_queues(bench)
            (a if side == 0 else b).append(timed(ours if side == 0 else base))
    empty_queues(bench)
    return a, b


def run(bench: Bench) -> list[Row]:
    bench.flush()
    register_workers(bench)
    ours, static = task_of(rfqueue_app(bench.url)), task_of(static_app(bench.url))
    ours.apply_async((0,))  # connect, declare and load the snapshot before timing
    static.apply_async((0,))
    rounds, count = bench.pick((4, 150), (25, 800))
    loop_s, static_s = paired(bench, rounds, loop(ours, count), loop(static, count))
    throughput = [s / o for o, s in zip(loop_s, static_s, strict=True)]
    batch_rounds, batch_count = bench.pick((3, 400), (15, 2000))
    items = [(n,) for n in range(batch_count)]
    loop_b, batch_b = paired(
        bench, batch_rounds, loop(ours, batch_count), lambda: dispatch_many(ours, items)
    )
    speedup = [a / b for a, b in zip(loop_b, batch_b, strict=True)]
    empty_queues(bench)
    shares = describe(breakdown(lambda: dispatch_many(ours, items)))
    empty_queues(bench)
    return [
        Row(
            "publish throughput: apply_async loop",
            f"{count / median(loop_s):,.0f} tasks/s",
            f"{count / median(static_s):,.0f} tasks/s static",
            median(throughput),
            ">= 0.97",
            f"{rounds} rounds x {count:,} tasks per side",
        ),
        Row(
            "batch dispatch: dispatch_many vs apply_async loop",
            f"{batch_count / median(batch_b):,.0f} tasks/s",
            f"{batch_count / median(loop_b):,.0f} tasks/s loop",
            median(speedup),
            ">= 10",
            f"{batch_rounds} rounds x {batch_count:,} tasks, both routed by rfqueue; "
            f"one call under cProfile: {shares}",
        ),
    ]
