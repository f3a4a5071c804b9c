"""A mixed fleet of an app that is not the reference one, with everything at once.

The shop (tests/apps/shop.py) runs two pools: ``celery`` with c1, c2 (four times slower,
another build without ``shop.report``) and ``bad`` (a full disk: every task fails with
``OSError`` and is retried), and ``images`` with i1 and ``skew`` (its clock 20 s behind).
Under a steady mix of quick, medium and long tasks, the broken host is ejected, then c1
is replaced by a rolling deploy (c1b starts, c1 gets SIGTERM and drains). Every task
completes, none runs in the wrong pool or on a worker without it, the broken host runs
few, the skewed host is never marked down, and c1 takes nothing after its drain began.
"""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from rfqueue.table import Event, FailureTable
from tests.conftest import FAST, stop_fleet
from tests.faults.conftest import scenario_line
from tests.faults.test_clock_skew import _skewed_env
from tests.integration.conftest import ROOT, ledger, nodename
from tests.integration.test_routing import wait_until_routable

SHOP = "tests.apps.shop"
#: name -> (pool, environment): the fleet's hosts
HOSTS: dict[str, tuple[str, dict[str, str]]] = {
    "c1": ("celery", {}),
    "c2": ("celery", {"SHOP_SLOW": "4", "SHOP_LEAN": "1"}),
    "bad": ("celery", {"SHOP_BROKEN": "1"}),
    "i1": ("images", {}),
    "skew": ("images", {}),  # plus the clock, below
}
DURATION = 24.0  # seconds of load
TICK = 0.1  # one checkout every tick, a resize every second tick, a report every 20th


class Producer(threading.Thread):
    """Sends the shop's mix at a steady rate until ``DURATION`` has passed."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sent: list[tuple[str, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        from tests.apps.shop import checkout, report, resize

        start = time.monotonic()
        for i in range(int(DURATION / TICK)):
            if self.stopping.wait(max(0.0, start + i * TICK - time.monotonic())):
                return
            for task, every in ((checkout, 1), (resize, 2), (report, 20)):
                if i % every == 0:
                    task.delay(i, time.time())
                    self.sent.append((task.name, i))


def events(table: FailureTable, worker: str, action: str) -> list[Event]:
    return [e for e in table.events(1000) if e.worker == worker and e.action == action]


def start(fleet: Fleet, name: str, tmp_path: Path) -> None:
    pool, env = HOSTS.get(name.rstrip("b"), ("celery", {}))
    if name == "skew":
        env = {**env, **_skewed_env(tmp_path, fleet, -20.0)}
    fleet.start_worker(name, "--concurrency", "1", "-Q", pool, env=env)


def test_a_mixed_fleet_under_load_loses_nothing_and_keeps_tasks_where_they_belong(
    redis_server: RedisServer, redis_client: Any, tmp_path: Path
) -> None:
    from tests.apps.shop import LEDGER, app

    fleet = Fleet(redis_server.url, tmp_path, env=FAST, cwd=ROOT, app=SHOP)
    table = FailureTable(redis_client)
    producer = Producer()
    try:
        # Given the five hosts up, as the shop's own router sees them
        for name in HOSTS:
            start(fleet, name, tmp_path)
        for name in HOSTS:
            fleet.wait_ready(name, timeout=60)
        wait_until_routable(app, *(nodename(n) for n in HOSTS))

        # When the mix flows, the broken host is found out, and c1 is replaced meanwhile
        producer.start()
        bad = nodename("bad")
        wait_for(lambda: [e for e in events(table, bad, "pause") if e.reason == "outlier"],
                 20, 0.1, "the broken host ejected")  # fmt: skip
        start(fleet, "c1b", tmp_path)
        fleet.wait_ready("c1b", timeout=60)
        wait_until_routable(app, nodename("c1b"))
        leaving = fleet.workers.pop("c1")
        os.kill(leaving.pid, signal.SIGTERM)
        assert leaving.proc.wait(60) == 0
        leaving.stop()
        producer.join(DURATION + 30)

        # Then every task completes
        def done() -> set[tuple[str, int]]:
            return {(x["task"], x["n"]) for x in ledger(redis_client, LEDGER) if x["ok"]}

        wanted = set(producer.sent)
        wait_for(lambda: wanted <= done(), 90, 0.5, "every task done")
        lines = ledger(redis_client, LEDGER)
        check_placement(lines)
        check_lifecycle(table, lines, len(wanted))
        report(lines, len(wanted))
    finally:
        producer.stopping.set()
        stop_fleet(fleet)


def check_placement(lines: list[dict[str, Any]]) -> None:
    """Each task ran only in its pool, and never on a worker of a build without it."""
    where = {(x["task"], x["worker"].split("@")[0]) for x in lines}
    images = {"i1", "skew"}
    assert {w for t, w in where if t == "shop.resize"} <= images, where
    assert not {w for t, w in where if t != "shop.resize"} & images, where
    assert ("shop.report", "c2") not in where, "a report reached c2, which lacks it"
    assert {w for t, w in where if t == "shop.resize"} == images, "a pool host got none"


def check_lifecycle(table: FailureTable, lines: list[dict[str, Any]], sent: int) -> None:
    """The broken host ran few, the skewed host stayed up, c1 took nothing after its drain."""
    on_bad = [x for x in lines if x["worker"] == nodename("bad")]
    assert len(on_bad) <= sent // 10, f"the broken host ran {len(on_bad)} of {sent}"
    downs = events(table, nodename("skew"), "down")
    assert not downs, f"the skewed host was marked down: {downs}"
    drains = events(table, nodename("c1"), "drain")
    assert drains, "c1 never drained"
    late = [x for x in lines if x["worker"] == nodename("c1") and x["sent"] > drains[-1].time + 0.1]
    assert not late, late


def report(lines: list[dict[str, Any]], sent: int) -> None:
    first_ok = {}
    for x in lines:
        if x["ok"]:
            first_ok.setdefault((x["task"], x["n"]), x)
    quick = sorted(x["done"] - x["sent"] for (t, _), x in first_ok.items() if t == "shop.checkout")
    p99 = statistics.quantiles(quick, n=100)[98]
    by_worker = Counter(x["worker"].split("@")[0] for x in lines)
    scenario_line(
        "mixed fleet",
        sent,
        len(first_ok),
        sum(n > 1 for n in Counter((x["task"], x["n"]) for x in lines if x["ok"]).values()),
        f"two pools, a slow lean build, a broken host (ejected), a clock 20 s behind, c1 "
        f"rolled to c1b; checkout p50 {statistics.median(quick) * 1000:.0f} ms, p99 "
        f"{p99 * 1000:.0f} ms; attempts by worker {dict(by_worker)}",
    )
