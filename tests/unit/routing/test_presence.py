"""Routers report how fresh their snapshot is, from their refresh thread; clean exits clean up."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from rfqueue.keys import Keys
from rfqueue.routing.presence import GONE_AFTER, Presence, router_id
from rfqueue.routing.router import Router
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from tests.unit.conftest import NAMESPACE

pytestmark = pytest.mark.usefixtures("use_fake_redis")

KEY = Keys(NAMESPACE).routers


def records(client: Any) -> dict[str, dict[str, float]]:
    return {k: json.loads(v) for k, v in client.hgetall(KEY).items()}


def test_the_snapshot_hook_reports_the_last_full_read(table: FailureTable, client: Any) -> None:
    # Given a router that has routed a task (its snapshot is started and read)
    table.register("w1@h", "rfqueue.w1@h")
    settings = Settings(
        redis_url="redis://fake:6379/0",
        namespace=NAMESPACE,
        refresh_interval=2,
        policy="round_robin",  # counts per worker queue
    )
    router = Router(settings=settings)
    assert router("t.add", (), {}, {})["queue"].name == "rfqueue.w1@h"
    router.snapshot.refresh()

    # When its refresh thread runs the hook
    router._flush_routed()

    # Then its field says when the snapshot was last read, its interval and when it said so
    record = records(client)[router_id()]
    assert record["read"] == router.snapshot.read_at
    assert record["interval"] == 2
    assert abs(record["reported"] - time.time()) < 5
    # And the hash expires if every router goes away
    assert 0 < client.ttl(KEY) <= GONE_AFTER


def test_a_clean_exit_removes_the_routers_field(client: Any) -> None:
    presence = Presence(client, KEY)
    presence.report(read_at=time.time(), interval=1.0, now=time.time())
    client.hset(KEY, "other:1", "{}")
    presence.remove()
    assert set(client.hgetall(KEY)) == {"other:1"}


def test_remove_is_quiet_when_redis_is_away(server: Any, client: Any) -> None:
    presence = Presence(client, KEY)
    server.connected = False
    presence.remove()  # at exit: nothing to raise into
