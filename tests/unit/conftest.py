"""Fixtures for the unit tests: an in-process fake Redis (with Lua), a clock we move by hand.

Nothing here talks to a real Redis or broker: every client is a ``fakeredis`` client on
a private ``FakeServer``, and the CLI and router are pointed at it by monkeypatching.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import fakeredis
import fakeredis.commands_mixins.server_mixin
import pytest

import rfqueue.router
import rfqueue.table
import rfqueue.table.failure_table
import rfqueue.table.registry
import rfqueue.table.snapshot
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.snapshot import Snapshot

NAMESPACE = "t"


class FakeClock:
    """The fake Redis server's clock (what ``TIME`` says in the table's scripts), moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        """As ``time.time``: fakeredis's ``TIME`` command reads it."""
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.contextmanager
def server_time(now: float) -> Iterator[FakeClock]:
    """Inside the block, the fake Redis servers' clock stands at ``now`` (move it by hand)."""
    fake = FakeClock(now)
    with mock.patch.object(fakeredis.commands_mixins.server_mixin, "time", fake):
        yield fake


def beat_while(table: FailureTable, clock: FakeClock, seconds: int, *workers: str) -> None:
    """Advance ``clock`` by ``seconds`` in 1 s steps; ``workers`` beat at every step."""
    for _ in range(seconds):
        clock.advance(1)
        for worker in workers:
            table.heartbeat(worker, f"rfqueue.{worker}")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``RFQUEUE_*`` or broker URL from the outside world leaks into a unit test."""
    for name in list(os.environ):
        if name.startswith("RFQUEUE_") or name == "CELERY_BROKER_URL":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _fresh_malformed_warnings() -> None:
    """Each test sees the warning for a malformed row (a process warns once per row)."""
    rfqueue.table.failure_table._warn_malformed.cache_clear()


@pytest.fixture(autouse=True)
def _no_shared_snapshots() -> Iterator[None]:
    """Every test starts without cached router snapshots and leaves no thread behind."""
    rfqueue.table.registry._snapshots.clear()
    yield
    for snapshot in list(rfqueue.table.registry._snapshots.values()):
        stop_snapshot(snapshot)
    rfqueue.table.registry._snapshots.clear()


def stop_snapshot(snapshot: Snapshot) -> None:
    """Stop a snapshot's thread now, instead of after its current wait (up to a refresh)."""
    snapshot._stopping.set()
    with contextlib.suppress(Exception):  # wake a thread blocked on the channel
        snapshot.table.client.publish(snapshot.table.keys.channel, "{}")
    snapshot.stop()


@pytest.fixture
def stop() -> Callable[[Snapshot], None]:
    return stop_snapshot


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The fake Redis server's clock: every script stamps and compares times by it."""
    # Close to the real time, so that what is not judged by the table's clock still works.
    fake = FakeClock(float(int(time.time())))
    monkeypatch.setattr(fakeredis.commands_mixins.server_mixin, "time", fake)
    return fake


@pytest.fixture
def clock_factory() -> type[FakeClock]:
    return FakeClock


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server, decode_responses=True)


@pytest.fixture
def table(client: fakeredis.FakeRedis, clock: FakeClock) -> FailureTable:
    return FailureTable(client, NAMESPACE, events_max=50)


@pytest.fixture
def use_fake_redis(monkeypatch: pytest.MonkeyPatch, client: fakeredis.FakeRedis) -> None:
    """Every ``Settings.redis_client()`` (router, CLI, chaos) returns the fake client."""
    monkeypatch.setattr(Settings, "redis_client", lambda self, **kwargs: client)


def dump_db(client: Any) -> dict[str, Any]:
    """Every key and its value: to prove that nothing at all was written."""
    out: dict[str, Any] = {}
    for key in sorted(client.keys("*")):
        kind = client.type(key)
        if kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "list":
            out[key] = client.lrange(key, 0, -1)
        elif kind == "string":
            out[key] = client.get(key)
        else:  # pragma: no cover - rfqueue writes no other type
            out[key] = kind
    return out


@pytest.fixture
def dump() -> Callable[[Any], dict[str, Any]]:
    return dump_db


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@pytest.fixture
def poll() -> Callable[..., bool]:
    return wait_until


def run_forked(child: Callable[[], bool], timeout: float = 10.0) -> str:
    """Run ``child()`` in a forked process: "ok", "failed", or "hung" (killed at ``timeout``)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports by its exit code only
        code = 1
        try:
            code = 0 if child() else 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "ok" if os.waitstatus_to_exitcode(status) == 0 else "failed"
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hung"
