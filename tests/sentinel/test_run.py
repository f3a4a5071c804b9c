"""A failover of the table's Redis in the middle of a real run: no pause and no task is lost.

Two real workers; the broker is a plain Redis of its own, the failure table is reached
through Sentinel. The example tasks' ledger is kept in the broker's Redis: Redis
replicates asynchronously, and a ledger line only the killed master held would vanish
with it although its task ran (a table change waits for its replica; a ledger line does
not). One worker is paused, acknowledged,
before anything is sent; the table's master is killed with SIGKILL while a producer
sends tasks; Sentinel promotes the replica.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from rfqueue.demo.fleet import Fleet, ManagedProcess, RedisServer, wait_for
from rfqueue.demo.ledger import LEDGER_REDIS_URL
from rfqueue.table.entry import State
from tests.conftest import FAST
from tests.faults.conftest import scenario_line
from tests.integration.conftest import LEDGER, ROOT, nodename, wait_for_seqs
from tests.reference import APP
from tests.sentinel.conftest import rfqueue_cli, sentinel_env, table_through_sentinel
from tests.sentinel.servers import SentinelCluster, wait_for_failover
from workers.producer import PRODUCER_COMMAND

RATE, DURATION = 25, 10


def test_a_failover_mid_run_keeps_the_pause_and_every_task(
    cluster: SentinelCluster, redis_server: RedisServer, redis_client: Any, tmp_path: Path
):
    # Given two workers whose table is reached through Sentinel, the broker elsewhere;
    # heartbeat_timeout at its default (5 s), above the failover time (about 3 s here)
    env = {**FAST, "RFQUEUE_HEARTBEAT_TIMEOUT": "5", **sentinel_env(cluster)}
    env[LEDGER_REDIS_URL] = redis_server.url
    fleet = Fleet(redis_server.url, tmp_path, env=env, cwd=ROOT, app=APP)
    producer: ManagedProcess | None = None
    try:
        for name in ("w1", "w2"):
            fleet.start_worker(name, "--concurrency", "1")
        for name in ("w1", "w2"):
            fleet.wait_ready(name)
        w1, w2 = nodename("w1"), nodename("w2")
        table = table_through_sentinel(cluster)
        wait_for(lambda: {w1, w2} <= set(table.entries()), 10, what="both workers registered")

        # And w1 paused by an operator, acknowledged (on the replica) before anything is sent
        out = rfqueue_cli(env, "pause", w1, "--for", "60", "--reason", "before the failover")
        assert out.returncode == 0, out.stderr
        paused = table.entries()[w1]

        # When a producer sends tasks and the table's master is killed (-9) mid-run
        argv = [sys.executable, *PRODUCER_COMMAND[1:], "--rate", str(RATE)]
        argv += ["--duration", str(DURATION)]
        producer = ManagedProcess(argv, tmp_path / "producer.log", fleet.env, ROOT)
        wait_for(
            lambda: redis_client.llen(LEDGER) >= 50, 30, interval=0.1, what="the run under way"
        )
        done_before = redis_client.llen(LEDGER)
        old = cluster.kill_master()
        failover = wait_for_failover(cluster, old)

        # Then the producer finishes its run and exits 0
        wait_for(lambda: not producer.alive(), 60, what="the producer to finish")
        assert producer.proc.returncode == 0, producer.log()[-3000:]
        submitted = int(producer.log().strip().splitlines()[-1].split()[-1])
        # And every task completes
        lines = wait_for_seqs(redis_client, set(range(submitted)), 60)
        runs = Counter(line["seq"] for line in lines)
        scenario_line(
            "sentinel failover",
            submitted,
            len(runs),
            sum(n > 1 for n in runs.values()),
            f"the table's master killed -9 after {done_before} tasks; Sentinel promoted "
            f"the replica in {failover:.1f} s",
        )
        assert set(runs) == set(range(submitted))
        # And the pause is still in the table, unchanged, and w1 ran nothing during it
        after = table.entries()[w1]
        assert (after.state, after.until) == (State.PAUSED, paused.until)
        assert [line for line in lines if line["worker"] == w1] == []
        # And both workers are still the processes that started, up to date on the table
        assert all(p.alive() for p in fleet.workers.values())
        wait_for(lambda: table.entries()[w2].state is State.UP, 10, what="w2 up on the new master")
    finally:
        if producer is not None:
            producer.stop()
        fleet.stop()
