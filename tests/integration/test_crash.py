"""A worker killed with SIGKILL: routers stop choosing it and the survivors mark it down."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from tests.integration.conftest import nodename, rfqueue_cli, wait_for_seqs
from tests.integration.test_pause import send
from tests.integration.test_routing import wait_until_routable

pytestmark = pytest.mark.integration


def test_killed_worker_is_skipped_and_marked_down_without_beat(
    three_workers: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    from rfqueue.settings import Settings
    from rfqueue.table.registry import snapshot_for

    w1, w2, w3 = (nodename(n) for n in ("w1", "w2", "w3"))
    wait_until_routable(app, w1, w2, w3)
    snapshot = snapshot_for(Settings.load(app.conf))

    # Given w3 killed with SIGKILL: no clean shutdown, no `down` in the table
    three_workers.workers.pop("w3").kill()

    # When its heartbeat is older than the timeout (3 s in tests)
    wait_for(
        lambda: f"rfqueue.{w3}" not in snapshot.up_queues,
        3 + 2,
        interval=0.1,
        what="routers to skip the silent worker",
    )

    # Then the router skips it, and the surviving workers mark it down for want of a
    # heartbeat (no beat process runs here)
    send(range(90))
    ran = Counter(line["worker"] for line in wait_for_seqs(redis_client, set(range(90)), 60))
    assert set(ran) == {w1, w2}, ran

    def marked_down() -> bool:
        status = json.loads(rfqueue_cli(redis_server, "status", "--json").stdout)
        row = {r["worker"]: r for r in status["workers"]}[w3]
        return (row["state"], row["reason"]) == ("down", "heartbeat")

    wait_for(marked_down, 10, interval=0.2, what="w3 marked down by the survivors")
