"""Per-task cost by fleet size: every policy's route() at 10, 1,000 and 10,000 workers.

A router's work per task must not grow with the fleet (issue 13): no sum over every
queue (``least_loaded`` keeps a heap per depth read), no ring compared or rebuilt
inside ``apply_async`` (``hash`` builds it when the registered workers change, on the
snapshot's thread), one dict per process for the routed counts. This family registers
the workers (all up, none consuming) in a private Redis, grows the fleet from the
smallest size to the largest, and times ``app.amqp.router.route()`` for each policy at
each size. The row's ratio is the cost at the largest size over the cost at 10. The
table's own cost by size (the refresh thread's full read) is the ``scale`` family's:
here the snapshot is not re-read while the router is timed.
"""

from __future__ import annotations

import gc

from rfqueue.bench.common import Bench, Row, median
from rfqueue.bench.routing import POLICIES, per_call_us, rfqueue_app, stop_sampler
from rfqueue.table import FailureTable

#: fleet sizes measured; the first is every row's baseline
SIZES = (10, 1_000, 10_000)
QUICK_SIZES = (10, 1_000)


def grow(table: FailureTable, registered: int, size: int) -> None:
    """Register workers ``registered`` to ``size - 1`` (w0@bench, w1@bench...)."""
    for i in range(registered, size):
        table.register(f"w{i}@bench", f"rfqueue.w{i}@bench")


def cost_at(bench: Bench, policy: str, rounds: int, calls: int) -> float:
    """Median per-call microseconds of ``policy``'s router over the registered fleet."""
    # refresh_interval: the timed loop shares no GIL with a full read of the table
    app = rfqueue_app(bench.url, policy, refresh_interval=3600)
    router = app.amqp.router
    snapshot = app.conf.task_routes[0].snapshot
    snapshot.refresh()  # the fleet just grew: this process's one snapshot must see it
    router.route({}, "bench.noop", (), {"user": 7})  # start: snapshot, sampler, ring
    per_call_us(router, calls)  # warm: the eligible queues, a heap per depth read
    costs = [per_call_us(router, calls) for _ in range(rounds)]
    stop_sampler(app)
    app.close()
    del app, router
    gc.collect()  # the policy's snapshot hook (hash: its ring) goes with it
    return median(costs)


def run(bench: Bench) -> list[Row]:
    """One row per policy: its route() cost at each size, the largest over the smallest."""
    bench.flush()
    sizes = bench.pick(QUICK_SIZES, SIZES)
    rounds, calls = bench.pick((3, 5_000), (5, 20_000))
    table = FailureTable(bench.client())
    costs: dict[str, dict[int, float]] = {policy: {} for policy in POLICIES}
    registered = 0
    for size in sizes:
        grow(table, registered, size)
        registered = size
        for policy in POLICIES:
            costs[policy][size] = cost_at(bench, policy, rounds, calls)
    return [row(policy, by_size, rounds, calls) for policy, by_size in costs.items()]


def row(policy: str, by_size: dict[int, float], rounds: int, calls: int) -> Row:
    sizes = sorted(by_size)
    first, last = sizes[0], sizes[-1]
    return Row(
        f"per-task cost by fleet size ({policy})",
        " / ".join(f"{by_size[n]:.2f}" for n in sizes) + " us",
        f"at {' / '.join(f'{n:,}' for n in sizes)} workers",
        by_size[last] / by_size[first],
        "<= 1.5",
        f"route() at {last:,} over {first:,} workers; median of {rounds} x {calls:,} calls",
    )
