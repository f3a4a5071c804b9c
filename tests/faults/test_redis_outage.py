"""Redis stops for 5 s in the middle of a run and comes back (AOF on): nothing is lost."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, ManagedProcess, RedisServer, wait_for
from tests.conftest import FAST, require_binary, stop_fleet
from tests.faults.conftest import scenario_line
from tests.integration.conftest import ROOT, ledger, nodename
from tests.reference import APP
from workers.producer import PRODUCER_COMMAND

OUTAGE = 5.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, with AOF, that the test stops and restarts."""
    require_binary("redis-server")
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


def test_redis_restart_during_a_run_loses_nothing(own_redis: RedisServer, tmp_path: Path):
    # Given three workers and a producer at 40 tasks/s for 16 s, all on this Redis
    fleet = Fleet(own_redis.url, tmp_path, env=FAST, cwd=ROOT, app=APP)
    producer: ManagedProcess | None = None
    try:
        names = ("w1", "w2", "w3")
        for name in names:
            fleet.start_worker(name, "--concurrency", "1")
        for name in names:
            fleet.wait_ready(name)
        client = own_redis.client()
        wait_for(lambda: client.hlen("{rfqueue}:workers") == 3, 10, what="3 registered")
        argv = [sys.executable, *PRODUCER_COMMAND[1:], "--rate", "40", "--duration", "16"]
        producer = ManagedProcess(argv, tmp_path / "producer.log", fleet.env, ROOT)
        wait_for(lambda: len(ledger(client)) >= 100, 30, what="the run under way")

        # When Redis stops for 5 s and starts again on the same port and files
        own_redis.stop()
        stopped = time.monotonic()
        wait_for(lambda: time.monotonic() - stopped >= OUTAGE, OUTAGE + 1, interval=0.1)
        own_redis.start()

        # Then the producer finishes its run and exits 0 (its publishes waited it out)
        wait_for(lambda: not producer.alive(), 60, what="the producer to finish")
        assert producer.proc.returncode == 0, producer.log()[-3000:]
        submitted = int(producer.log().strip().splitlines()[-1].split()[-1])
        # And every submitted task completes after the recovery
        client = own_redis.client()
        wait_for(
            lambda: _completed(client) >= submitted, 90, interval=0.5, what="every task to complete"
        )
        runs = Counter(line["seq"] for line in ledger(client))
        # And no worker died; the table still knows all three, and they are up again
        assert all(p.alive() for p in fleet.workers.values())
        wait_for(lambda: _all_up(client, names), 20, what="all three up in the table")
        scenario_line(
            "redis outage",
            submitted,
            len(runs),
            sum(n > 1 for n in runs.values()),
            f"redis-server stopped for {OUTAGE:g} s and restarted",
        )
        assert set(runs) == set(range(submitted))
    finally:
        if producer is not None:
            producer.stop()
        stop_fleet(fleet)


def _completed(client: Any) -> int:
    return len({line["seq"] for line in ledger(client)})


def _all_up(client: Any, names: tuple[str, ...]) -> bool:
    from rfqueue.table import FailureTable

    entries = FailureTable(client, "rfqueue").entries()
    now = time.time()
    return all(entries[nodename(n)].effective_state(now).value == "up" for n in names)
