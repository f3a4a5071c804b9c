"""Real parts: a private redis-server and plain ``celery`` processes, stopped by pid.

The redis-server (see tests/conftest.py) runs on a free loopback port in a temporary
directory for the whole session; every test starts from an empty database. Workers
are started with the README's command (``celery -A workers.app worker --hostname NAME@%h``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from tests.conftest import FAST, stop_fleet
from tests.reference import APP

ROOT = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()
LEDGER = "rfqueue:ledger"


def nodename(name: str) -> str:
    return f"{name}@{HOST}"


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[Any]:
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def fleet(redis_client: Any, redis_server: RedisServer, tmp_path: Path) -> Iterator[Fleet]:
    """A started-nothing fleet; everything it starts is stopped by pid afterwards."""
    fleet = Fleet(redis_server.url, tmp_path, env=FAST, cwd=ROOT, app=APP)
    yield fleet
    stop_fleet(fleet)


@pytest.fixture
def three_workers(fleet: Fleet) -> Fleet:
    """Three started workers, w1..w3, each with one pool process."""
    for name in ("w1", "w2", "w3"):
        fleet.start_worker(name, "--concurrency", "1")
    for name in ("w1", "w2", "w3"):
        fleet.wait_ready(name)
    return fleet


@pytest.fixture
def app(redis_server: RedisServer) -> Any:
    """The reference app, as a producer in this process."""
    from workers.app import app

    # The producer side must talk to the private server and nothing else.
    assert app.conf.broker_url == redis_server.url
    return app


def ledger(client: Any, key: str = LEDGER) -> list[dict[str, Any]]:
    """Every execution recorded by ``workers.tasks.record``."""
    return [json.loads(line) for line in client.lrange(key, 0, -1)]


def wait_for_seqs(
    client: Any, expected: set[int], timeout: float, key: str = LEDGER
) -> list[dict[str, Any]]:
    """Wait until every seq in ``expected`` ran at least once; return the ledger ``key``."""

    def done() -> list[dict[str, Any]] | None:
        lines = ledger(client, key)
        return lines if expected <= {line["seq"] for line in lines} else None

    try:
        return wait_for(done, timeout, interval=0.2, what="all tasks to complete")
    except TimeoutError:
        missing = expected - {line["seq"] for line in ledger(client, key)}
        raise AssertionError(
            f"{len(missing)} tasks never completed: {sorted(missing)[:20]}"
        ) from None


def rfqueue_cli(redis_server: RedisServer, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``rfqueue`` console script."""
    exe = Path(sys.executable).with_name("rfqueue")
    env = {**os.environ, "RFQUEUE_REDIS_URL": redis_server.url}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=30)


def active_queues(redis_server: RedisServer, worker: str) -> list[str]:
    """Queue names ``worker`` consumes, asked with Celery's own ``celery inspect``."""
    exe = Path(sys.executable).with_name("celery")
    out = subprocess.run(
        [str(exe), "-A", "workers.app", "inspect", "active_queues", "-d", worker, "-j", "-t", "3"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "CELERY_BROKER_URL": redis_server.url},
    )
    assert out.returncode == 0, out.stderr + out.stdout
    replies = json.loads(out.stdout)
    return [q["name"] for q in replies[worker]]
