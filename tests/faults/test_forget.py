"""Workers that left: forgotten on their own once silent long enough; ``forget`` strands nothing."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from rfqueue.table import FailureTable
from tests.faults.conftest import scenario_line
from tests.integration.conftest import nodename, rfqueue_cli, wait_for_seqs
from tests.integration.test_routing import wait_until_routable

#: departed after 4 s of silence, forgotten after 6 s (the defaults: 10 x timeout, an hour)
SHORT = {"RFQUEUE_DEPARTED_AFTER": "4", "RFQUEUE_FORGET_AFTER": "6"}
TASKS = 50


def test_a_departed_worker_is_forgotten_on_its_own(fleet: Fleet, redis_client: Any, app: Any):
    # Given three workers, of which w3 is killed (a scaled-in pod that never comes back)
    for name in ("w1", "w2", "w3"):
        fleet.start_worker(name, "--concurrency", "1", env=SHORT)
    for name in ("w1", "w2", "w3"):
        fleet.wait_ready(name)
    w3, table = nodename("w3"), FailureTable(redis_client)
    wait_until_routable(app, nodename("w1"), nodename("w2"), w3)
    fleet.workers.pop("w3").kill()
    killed = time.monotonic()

    # Then the survivors' rescuers forget it once it has been silent for 6 s, not before
    # (its last beat came up to one heartbeat interval, 0.5 s, before the kill)
    wait_for(lambda: w3 not in table.entries(), 30, interval=0.2, what="w3 forgotten")
    after = time.monotonic() - killed
    assert 6 - 0.5 <= after < 6 + 8, f"forgotten {after:.1f} s after the kill"
    event = next(e for e in table.events(50) if e.action == "forget")
    assert (event.worker, event.reason) == (w3, "departed")
    assert redis_client.hget(table.keys.heartbeats, w3) is None
    assert set(table.entries()) == {nodename("w1"), nodename("w2")}
    scenario_line("forget the departed", 0, 0, 0, f"w3 killed, forgotten after {after:.1f} s")


def test_forget_moves_a_waiting_queue_first_and_loses_nothing(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    from workers.tasks import record

    # Given w3 alone, stopped, with 50 tasks spread into its queue (nobody was up)
    fleet.start_worker("w3", "--concurrency", "1")
    fleet.wait_ready("w3")
    w3 = nodename("w3")
    wait_until_routable(app, w3)
    fleet.stop_worker("w3")
    table = FailureTable(redis_client)
    wait_for(lambda: table.entries()[w3].state.value == "down", 30, what="w3 down")
    for seq in range(TASKS):
        record.apply_async(kwargs={"seq": seq, "sent": time.time()})
    assert redis_client.llen(f"rfqueue.{w3}") == TASKS

    # When it is forgotten while no worker is up: refused, with the count, nothing changed
    refused = rfqueue_cli(redis_server, "forget", w3)
    assert refused.returncode == 2, refused.stderr
    assert f"holds {TASKS} tasks no up worker can take; nothing forgotten" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert w3 in table.entries()

    # When w1 and w2 are up (their rescuers off: only `forget` moves anything) and it is
    # forgotten again
    for name in ("w1", "w2"):
        fleet.start_worker(name, "--concurrency", "1", env={"RFQUEUE_RESCUE": "0"})
    for name in ("w1", "w2"):
        fleet.wait_ready(name)
    wait_until_routable(app, nodename("w1"), nodename("w2"))
    done = rfqueue_cli(redis_server, "forget", w3)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"moved {TASKS} waiting tasks of {w3} to up workers",
        f"forgot {w3}",
    ]

    # Then every task runs, once, on w1 or w2, and w3's queue is empty
    lines = wait_for_seqs(redis_client, set(range(TASKS)), 60)
    runs = Counter(line["seq"] for line in lines)
    assert {line["worker"] for line in lines} <= {nodename("w1"), nodename("w2")}
    assert redis_client.llen(f"rfqueue.{w3}") == 0 and w3 not in table.entries()
    twice = sum(1 for n in runs.values() if n > 1)
    assert twice == 0
    faults = f"w3 forgotten with {TASKS} tasks waiting: refused with none up, then moved"
    scenario_line("forget a full queue", TASKS, len(runs), twice, faults)
