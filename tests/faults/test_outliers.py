"""Gray failure: a worker whose every task fails is ejected; a pool that fails alike is not."""

from __future__ import annotations

import time
from typing import Any

from rfqueue.demo.fleet import Fleet, wait_for
from rfqueue.table import Event, FailureTable
from tests.faults.conftest import scenario_line
from tests.faults.test_bad_input import start_producer
from tests.integration.conftest import ledger, nodename, wait_for_seqs
from tests.integration.test_routing import wait_until_routable

#: 300 tasks at 30/s, as in the issue
RATE, DURATION = 30, 10
TASKS = RATE * DURATION
#: a short first ejection, so the test sees the worker come back; a low volume to judge by
OUTLIER_ENV = {"RFQUEUE_OUTLIER_BASE_EJECTION": "12", "RFQUEUE_OUTLIER_MIN_REQUESTS": "5"}
BROKEN = {**OUTLIER_ENV, "WORKERS_FAIL": "1"}


def start_three(fleet: Fleet, app: Any, broken: set[str]) -> None:
    """w1..w3, one pool process each; those in ``broken`` fail every task."""
    for name in ("w1", "w2", "w3"):
        env = BROKEN if name in broken else OUTLIER_ENV
        fleet.start_worker(name, "--concurrency", "1", env=env)
    for name in ("w1", "w2", "w3"):
        fleet.wait_ready(name)
    wait_until_routable(app, *(nodename(n) for n in ("w1", "w2", "w3")))


def outlier_events(table: FailureTable, worker: str | None = None) -> list[Event]:
    """Ejections in the event log, oldest first."""
    events = [e for e in table.events(1000) if e.reason == "outlier"]
    return [e for e in reversed(events) if worker is None or e.worker == worker]


def test_a_black_hole_worker_is_ejected_and_comes_back(fleet: Fleet, redis_client: Any, app: Any):
    # Given three workers, of which w1 fails every task it runs
    start_three(fleet, app, broken={"w1"})
    w1, table = nodename("w1"), FailureTable(redis_client)

    # When 300 tasks arrive at 30/s
    producer = start_producer(fleet, rate=RATE, duration=DURATION)

    # Then w1 is ejected (paused, reason outlier) within 2 s of its fifth failure
    wait_for(lambda: outlier_events(table, w1), 30, interval=0.1, what="w1 ejected")
    ejection = outlier_events(table, w1)[0]
    fifth = sorted(line["done"] for line in ledger(redis_client) if line["worker"] == w1)[4]
    assert ejection.action == "pause" and ejection.until is not None
    assert ejection.time - fifth < 2.0, f"ejected {ejection.time - fifth:.2f} s after the 5th"

    # And every task runs; w1 ran at most 10 % of them
    wait_for(lambda: producer.proc.poll() is not None, 60, what="the producer's end")
    lines = wait_for_seqs(redis_client, set(range(TASKS)), 60)
    on_w1 = sum(1 for line in lines if line["worker"] == w1)
    assert on_w1 <= TASKS // 10, f"w1 ran {on_w1} of {TASKS}"

    # And it comes back when the ejection time is over (12 s), not before
    wait_for(lambda: table.entries()[w1].effective_state(table.now()).value == "up", 30,
             interval=0.1, what="w1 back")  # fmt: skip
    back_after = table.now() - ejection.time
    assert 12 - 0.5 <= back_after < 12 + 5, f"back {back_after:.1f} s after the ejection"
    scenario_line(
        "black hole",
        TASKS,
        len({line["seq"] for line in lines}),
        0,
        f"w1 fails every task: ran {on_w1}, ejected {ejection.time - fifth:.2f} s after its "
        f"5th failure for 12 s, back after {back_after:.1f} s",
    )


def test_a_pool_that_fails_alike_ejects_nobody(fleet: Fleet, redis_client: Any, app: Any):
    # Given three workers that all fail every task (the database is down)
    start_three(fleet, app, broken={"w1", "w2", "w3"})
    table = FailureTable(redis_client)

    # When 150 tasks arrive at 30/s and all fail
    producer = start_producer(fleet, rate=RATE, duration=5)
    wait_for(lambda: producer.proc.poll() is not None, 60, what="the producer's end")
    lines = wait_for_seqs(redis_client, set(range(150)), 60)
    settle = time.monotonic()  # the last failures reach the table with the next beats
    wait_for(lambda: time.monotonic() - settle > 1.5, 5, what="the last beats")

    # Then nobody was ejected: it is the tasks' fault, not a worker's
    assert outlier_events(table) == []
    states = {e.worker: e.effective_state(table.now()).value for e in table.entries().values()}
    assert set(states.values()) == {"up"}, states
    scenario_line("whole pool fails", 150, len({line["seq"] for line in lines}), 0,
                  "every worker fails every task: nobody ejected")  # fmt: skip
