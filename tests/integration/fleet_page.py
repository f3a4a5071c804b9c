"""Shared by the Fleet page's tests: ``rfqueue flower`` as a process, and a paused worker
with tasks waiting in its queue."""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfqueue.brokers.redis_layout import queue_depths
from rfqueue.demo.fleet import Fleet, ManagedProcess, RedisServer, free_port, wait_for
from tests.integration.conftest import active_queues, nodename, rfqueue_cli
from tests.integration.test_routing import wait_until_routable

#: tasks sent while both workers are up (about half each), each running this long
BACKLOG, TASK_SECONDS = 24, 0.5


def depth(client: Any, worker: str) -> int:
    return queue_depths(client, [f"rfqueue.{worker}"])[f"rfqueue.{worker}"]


def decided(table: Any, worker: str) -> tuple[Any, ...]:
    """What only a decision changes in ``worker``'s entry (its heartbeat moves on by itself)."""
    entry = table.entries()[worker]
    return entry.state, entry.reason, entry.until, entry.note, entry.version


@dataclass
class RfqueueFlower:
    """A running ``rfqueue flower`` process and how to ask it things."""

    process: ManagedProcess
    port: int
    prefix: str = ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}{path}"

    def request(
        self, path: str, credentials: str | None, form: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """``(status, body)``: the body decoded from JSON when it is JSON."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.url(path), data=data)
        if credentials:
            token = base64.b64encode(credentials.encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status, raw = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read().decode()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw


def start_rfqueue_flower(
    fleet: Fleet, credentials: str, *flower_args: str, prefix: str = ""
) -> RfqueueFlower:
    """``rfqueue flower -A workers.app --port=N --address=127.0.0.1 --basic-auth=...``."""
    port = free_port()
    exe = Path(sys.executable).with_name("rfqueue")
    argv = [
        str(exe),
        "flower",
        "-A",
        "workers.app",
        f"--port={port}",
        "--address=127.0.0.1",
        f"--basic-auth={credentials}",
        *flower_args,
    ]
    if prefix:
        argv.append(f"--url_prefix={prefix.strip('/')}")
    log = fleet.workdir / f"rfqueue-flower-{port}.log"
    process = ManagedProcess(argv, log, fleet.env, fleet.cwd)
    fleet.others.append(process)
    served = RfqueueFlower(process, port, prefix)

    def answering() -> bool:
        if not process.alive():
            raise RuntimeError(f"rfqueue flower exited:\n{process.log()[-3000:]}")
        try:
            return served.request("/rfqueue/api/fleet", credentials)[0] == 200
        except OSError:
            return False

    wait_for(answering, 60, interval=0.25, what="rfqueue flower to answer")
    return served


@dataclass(frozen=True)
class PausedBacklog:
    """w1 up, w2 paused by hand with tasks waiting in its queue (the rescue is off)."""

    w1: str
    w2: str
    depth: int
    seqs: set[int]


def paused_with_backlog(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
) -> PausedBacklog:
    from workers.tasks import record

    # Given two one-process workers with the rescue off, so that what waits stays
    for name in ("w1", "w2"):
        fleet.start_worker(name, "--concurrency", "1", env={"RFQUEUE_RESCUE": "false"})
    for name in ("w1", "w2"):
        fleet.wait_ready(name)
    w1, w2 = nodename("w1"), nodename("w2")
    wait_until_routable(app, w1, w2)
    # And a backlog in each one's own queue (where a push policy routes; the default pull
    # policy would use the pool's shared queue, which a paused worker leaves to the other)
    for seq in range(BACKLOG):
        kwargs = {"seq": seq, "sent": time.time(), "sleep": TASK_SECONDS}
        record.apply_async(kwargs=kwargs, queue=f"rfqueue.{(w1, w2)[seq % 2]}")
    wait_for(lambda: depth(redis_client, w2) >= 6, 10, interval=0.05, what="w2's backlog")
    # When w2 is paused with the rfqueue command
    out = rfqueue_cli(redis_server, "pause", w2, "--for", "120", "--reason", "kernel upgrade")
    assert out.returncode == 0, out.stderr
    # Then, once w2 has stopped consuming, what waits in its queue stays there
    wait_for(
        lambda: f"rfqueue.{w2}" not in active_queues(redis_server, w2),
        20,
        interval=0.2,
        what="w2 to stop consuming its queue",
    )
    waiting = depth(redis_client, w2)
    assert waiting >= 2, f"only {waiting} tasks wait for w2"
    return PausedBacklog(w1, w2, waiting, set(range(BACKLOG)))
