"""Per-task cost by fleet size: every policy's route() at 10, 1,000 and 10,000 workers.

A router's work per task must not grow with the fleet (issue 13): no sum over every
queue (``least_loaded`` keeps a heap per depth read), no ring compared or rebuilt
inside ``apply_async`` (``hash`` builds it when the registered workers change, on the
snapshot's thread), one dict per process for the routed counts. This family registers
one fleet per size (all up, none consuming) in a namespace of its own, and for each
policy times ``app.amqp.router.route()`` over each fleet in turn, round after round,
so that a busy moment of the machine hits every size alike. The row's ratio is the
median over rounds of the cost at the largest size over the cost at 10. The table's
own cost by size (the refresh thread's full read) is the ``scale`` family's: here each
snapshot is re-read every ``REFRESH`` seconds only, while the depth samplers of ``p2c``
and ``least_loaded`` keep their default interval (their reads are part of their cost).
"""

from __future__ import annotations

import gc
import threading
from typing import Any

from rfqueue.bench.common import Bench, Row, median
from rfqueue.bench.routing import POLICIES, bench_settings, per_call_us, rfqueue_app, stop_sampler
from rfqueue.table import FailureTable
from rfqueue.table.registry import snapshot_for

#: fleet sizes measured; the first is every row's baseline
SIZES = (10, 1_000, 10_000)
QUICK_SIZES = (10, 1_000)
#: seconds between two full reads of each fleet's table while routes are timed
REFRESH = 10.0


def namespace(size: int) -> str:
    return f"rfqueue-cost{size}"


def register(bench: Bench, size: int) -> None:
    table = FailureTable(bench.client(), namespace(size))
    for i in range(size):
        table.register(f"w{i}@bench", f"rfqueue.w{i}@bench")


def started(bench: Bench, policy: str, size: int) -> Any:
    """An app routed by ``policy`` over the fleet of ``size``, started and warmed."""
    app = rfqueue_app(bench.url, policy, namespace=namespace(size), refresh_interval=REFRESH)
    router = app.amqp.router
    router.route({}, "bench.noop", (), {"user": 7})  # start: snapshot, sampler, ring
    # Warm: the eligible queues, and the kombu.Queue of each worker's queue, made once
    # per app at its first task (10 calls per worker: random leaves none unseen)
    per_call_us(router, max(1000, 10 * size))
    return app


def one_policy(bench: Bench, policy: str, sizes: tuple[int, ...], rounds: int, calls: int) -> Row:
    apps = {size: started(bench, policy, size) for size in sizes}
    costs: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(rounds):
        for size, app in apps.items():
            costs[size].append(per_call_us(app.amqp.router, calls))
    for app in apps.values():
        stop_sampler(app)
        app.close()
    del apps
    gc.collect()  # the policy's snapshot hook (hash: its ring) goes with it
    first, last = sizes[0], sizes[-1]
    return Row(
        f"per-task cost by fleet size ({policy})",
        " / ".join(f"{median(costs[n]):.2f}" for n in sizes) + " us",
        f"at {' / '.join(f'{n:,}' for n in sizes)} workers",
        median([b / a for a, b in zip(costs[first], costs[last], strict=True)]),
        "<= 1.5",
        f"route() at {last:,} over {first:,} workers, median of {rounds} paired rounds "
        f"x {calls:,} calls",
    )


def run(bench: Bench) -> list[Row]:
    """One row per policy: its route() cost at each size, the largest over the smallest."""
    bench.flush()
    sizes = bench.pick(QUICK_SIZES, SIZES)
    rounds, calls = bench.pick((3, 5_000), (11, 5_000))
    for size in sizes:
        register(bench, size)
    rows = [one_policy(bench, policy, sizes, rounds, calls) for policy in POLICIES]
    stopping = [
        threading.Thread(
            target=snapshot_for(bench_settings(bench.url, namespace=namespace(n))).stop
        )
        for n in sizes
    ]
    for thread in stopping:  # each exits within one wait of REFRESH: wait for them at once
        thread.start()
    for thread in stopping:
        thread.join()
    return rows
