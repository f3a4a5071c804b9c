"""Bad input never takes a process down: each case on real workers and a real redis-server.

Every test checks two things: the process that met the bad input is still the same
process, alive, and it keeps working (a normal ``record`` task sent to it afterwards
lands in the ledger).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, ManagedProcess, RedisServer, wait_for
from rfqueue.keys import Keys
from rfqueue.table import FailureTable
from tests.faults.conftest import scenario_line
from tests.integration.conftest import ROOT, nodename, rfqueue_cli, wait_for_seqs
from tests.integration.test_chaos import CHAOS
from tests.integration.test_routing import wait_until_routable
from workers.producer import PRODUCER_COMMAND

KEYS = Keys("rfqueue")

#: table rows no reader can use: not JSON, JSON missing fields, fields of the wrong types
MALFORMED_ENTRIES = {
    "junk-text@nowhere": "{not json at all",
    "junk-missing@nowhere": json.dumps({"worker": "junk-missing@nowhere", "state": "up"}),
    "junk-types@nowhere": json.dumps(
        {
            "worker": "junk-types@nowhere",
            "queue": ["rfqueue.junk"],
            "state": "sleeping",
            "since": "yesterday",
            "until": {"a": 1},
            "version": True,
        }
    ),
    "junk-array@nowhere": json.dumps([1, 2, 3]),
}


def send_to(app: Any, worker: str, seq: int) -> None:
    """A normal ``record`` task sent straight to ``worker``'s dedicated queue."""
    app.send_task("workers.tasks.record", args=(seq,), queue=f"rfqueue.{worker}")


def assert_survived(proc: ManagedProcess, name: str) -> None:
    """The very process started at first is alive, never crashed and never dropped its broker."""
    log = proc.log()
    assert proc.alive(), f"{name} exited:\n{log[-3000:]}"
    assert "Unrecoverable error" not in log, log[-3000:]
    # kombu treats some decoding errors as a lost connection and restarts the consumer
    assert "Connection to broker lost" not in log, log[-3000:]


def start_producer(fleet: Fleet, rate: float, duration: float) -> ManagedProcess:
    """The compose producer's command, as its own process."""
    argv = [sys.executable, *PRODUCER_COMMAND[1:], "--rate", str(rate), "--duration", str(duration)]
    return ManagedProcess(argv, fleet.workdir / "producer.log", fleet.env, ROOT)


def chaos_pauses_since(client: Any, since: float) -> list[dict[str, Any]]:
    """Chaos pauses recorded in the event log after ``since``."""
    events = [json.loads(raw) for raw in client.lrange(KEYS.events, 0, -1)]
    return [
        e
        for e in events
        if e.get("action") == "pause" and e.get("reason") == "chaos" and e["time"] > since
    ]


def test_malformed_table_entries_leave_routers_workers_status_and_chaos_working(
    three_workers: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    """Junk rows in the failure table while workers, beat's chaos job and a producer run."""
    # Given three workers, beat ticking chaos every 0.5 s, and a producer at 20 tasks/s
    fleet = three_workers
    names = [nodename(n) for n in ("w1", "w2", "w3")]
    wait_until_routable(app, *names)
    beat = fleet.start_beat(env=CHAOS)
    wait_for(lambda: chaos_pauses_since(redis_client, 0), 30, what="a first chaos pause")
    producer = start_producer(fleet, rate=20, duration=8)
    wait_for(lambda: redis_client.llen("rfqueue:ledger") >= 5, 30, what="the producer's tasks")

    # When junk rows are written into the table, and one real worker's own row is corrupted
    injected_at = time.time()
    ticks_before = int(redis_client.get(KEYS.chaos_ticks) or 0)
    redis_client.hset(KEYS.workers, mapping=MALFORMED_ENTRIES)
    redis_client.hset(KEYS.heartbeats, "junk-text@nowhere", "not a number")
    redis_client.hset(KEYS.workers, names[1], "garbage")

    # Then the producer sends everything and every task runs, on the real workers
    wait_for(lambda: not producer.alive(), 60, what="the producer to finish")
    out = producer.log()
    assert producer.proc.returncode == 0, out
    submitted = int(out.strip().splitlines()[-1].split()[-1])
    lines = wait_for_seqs(redis_client, set(range(submitted)), timeout=60)
    after = [line for line in lines if line["done"] > injected_at + 1]
    assert len({line["worker"] for line in after}) >= 2, after
    assert {line["worker"] for line in lines} <= set(names)
    # and the corrupted worker rewrote its own row at its next heartbeat
    table = FailureTable(redis_client)
    wait_for(lambda: names[1] in table.entries(), 10, what=f"{names[1]} to heal its row")
    # and the chaos job kept ticking and pausing real workers only
    wait_for(
        lambda: int(redis_client.get(KEYS.chaos_ticks) or 0) >= ticks_before + 4,
        30,
        what="chaos ticks after the junk",
    )
    pauses = wait_for(
        lambda: chaos_pauses_since(redis_client, injected_at), 30, what="a chaos pause after"
    )
    assert {p["worker"] for p in pauses} <= set(names), pauses
    # and `rfqueue status` prints the real workers, with one warning line for the junk
    status = rfqueue_cli(redis_server, "status")
    assert status.returncode == 0, status.stderr
    assert all(name in status.stdout for name in names), status.stdout
    assert "junk" not in status.stdout
    warnings = status.stderr.strip().splitlines()
    assert len(warnings) == 1, status.stderr
    assert "4 malformed" in warnings[0] and "junk-text@nowhere" in warnings[0], warnings
    doc = json.loads(rfqueue_cli(redis_server, "status", "--json").stdout)
    assert sorted(w["worker"] for w in doc["workers"]) == names
    # and no process died: the same workers, beat and the producer all lived through it
    for name in ("w1", "w2", "w3"):
        assert_survived(fleet.workers[name], name)
    assert_survived(beat, "beat")
    scenario_line(
        "malformed table entries",
        submitted,
        len({x["seq"] for x in lines}),
        len(lines) - len({x["seq"] for x in lines}),
        f"{len(MALFORMED_ENTRIES)} junk rows, 1 junk heartbeat, 1 corrupted worker row",
    )


@pytest.fixture
def one_worker(fleet: Fleet, app: Any) -> ManagedProcess:
    """Worker w1, started, ready and routable from this process."""
    proc = fleet.start_worker("w1", "--concurrency", "1")
    fleet.wait_ready("w1")
    wait_until_routable(app, nodename("w1"))
    return proc


def keeps_working(app: Any, client: Any, proc: ManagedProcess, seq: int) -> None:
    """The same worker process is alive and runs a normal task sent to its queue."""
    send_to(app, nodename("w1"), seq)
    wait_for_seqs(client, {seq}, timeout=30)
    assert_survived(proc, "w1")


def test_a_message_naming_an_unknown_task_is_refused_and_the_worker_goes_on(
    one_worker: ManagedProcess, redis_client: Any, app: Any
):
    """A well-formed message for a task no worker has, sent to a worker's own queue."""
    # Given a worker consuming its dedicated queue
    queue = f"rfqueue.{nodename('w1')}"
    # When a message naming a task nobody registered lands on that queue
    app.send_task("no.such.task", args=(1, 2), queue=queue)
    # Then the worker says so once and drops it: not left queued, not left unacknowledged
    wait_for(
        lambda: "unregistered task of type 'no.such.task'" in one_worker.log(),
        30,
        what="the worker to refuse the unknown task",
    )
    wait_for(lambda: redis_client.llen(queue) == 0, 10, what="the queue to be empty")
    wait_for(lambda: redis_client.hlen("unacked") == 0, 10, what="nothing left unacked")
    # and it keeps working
    keeps_working(app, redis_client, one_worker, seq=7)


def envelope(**properties: Any) -> bytes:
    """A kombu-looking envelope with the given properties."""
    message = {
        "body": "e30=",
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": {},
        "properties": properties,
    }
    return json.dumps(message).encode()


#: items pushed straight onto a worker's queue list, none of them a kombu message
GARBAGE = {
    "not JSON": b"\x00\x01 this is not JSON",
    "not UTF-8": b"\xff\xfe\xfa\xfb",
    "JSON, not an object": b"[1, 2, 3]",
    "JSON object, not a kombu envelope": json.dumps(
        {"task": "workers.tasks.record", "args": [1]}
    ).encode(),
    "envelope without a delivery tag": envelope(delivery_info={}),
    "envelope with a body in an unknown encoding": envelope(
        delivery_tag="t-1",
        body_encoding="rot13",
        delivery_info={"exchange": "", "routing_key": "x"},
    ),
}


@pytest.mark.parametrize("item", list(GARBAGE.values()), ids=list(GARBAGE))
def test_garbage_pushed_onto_a_worker_queue_is_dropped_and_the_worker_goes_on(
    one_worker: ManagedProcess, redis_client: Any, app: Any, item: bytes
):
    """Bytes that are no kombu message, LPUSHed straight onto a worker's queue list."""
    # Given a worker consuming its dedicated queue (a plain Redis list)
    queue = f"rfqueue.{nodename('w1')}"
    # When an item that is no kombu message is pushed onto that list
    redis_client.lpush(queue, item)  # bytes go out as they are
    # Then the worker logs one line saying it dropped it, and nothing is left behind
    wait_for(
        lambda: "dropped a queue item that is not a kombu message" in one_worker.log(),
        30,
        what="the worker to drop the item",
    )
    assert redis_client.llen(queue) == 0
    assert redis_client.hlen("unacked") == 0
    # and the very same worker process keeps working
    keeps_working(app, redis_client, one_worker, seq=8)


#: (environment, setting named in the one line); the URL's password must never be shown
BAD_SETTINGS = [
    ({"RFQUEUE_HEARTBEAT_INTERVAL": "soon"}, "RFQUEUE_HEARTBEAT_INTERVAL"),
    ({"RFQUEUE_MAX_PAUSED": "lots"}, "RFQUEUE_MAX_PAUSED"),
    ({"RFQUEUE_NO_WORKER_UP": "panic"}, "rfqueue_no_worker_up"),
    ({"RFQUEUE_REDIS_URL": "redis://:s3cret@127.0.0.1:port/0"}, "rfqueue_redis_url"),
    ({"RFQUEUE_REDIS_URL": "rediss://:s3cret@h/0?ssl_cert_reqs=maybe"}, "rfqueue_redis_url"),
]


@pytest.mark.parametrize("command", ["worker", "beat"])
@pytest.mark.parametrize(
    ("env", "setting"), BAD_SETTINGS, ids=[next(iter(e.values())) for e, _ in BAD_SETTINGS]
)
def test_a_bad_setting_stops_worker_and_beat_at_start_with_one_line_and_exit_2(
    fleet: Fleet, command: str, env: dict[str, str], setting: str
):
    """``celery -A workers.app worker|beat`` started with an RFQUEUE_* value it cannot use."""
    # Given a setting rfqueue cannot use
    # When a worker or beat starts with it
    proc = fleet.start_worker("bad", env=env) if command == "worker" else fleet.start_beat(env=env)
    # Then it exits 2 at start, before it is ready, with one line naming the setting
    wait_for(lambda: not proc.alive(), 30, what=f"{command} to exit")
    lines = proc.log().strip().splitlines()
    assert proc.proc.returncode == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"rfqueue: error: {setting}"), lines
    # and no password leaks into it
    assert "s3cret" not in lines[0]
