"""Fork safety: a prefork child forked at any moment routes; no lock is held over Redis I/O."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

import rfqueue.table.registry
from rfqueue.routing.router import Router
from rfqueue.table import FailureTable
from rfqueue.table.registry import snapshot_for
from tests.unit.conftest import run_forked
from tests.unit.routing.test_router import fleet, make_settings  # noqa: F401

pytestmark = [
    pytest.mark.usefixtures("use_fake_redis", "fleet"),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only"),
]


def routes(router: Router) -> bool:
    answer = router("tasks.add", (1, 2), {}, {})
    return answer is not None and answer["queue"].name.startswith("rfqueue.")


def test_a_child_forked_while_a_thread_starts_the_router_routes() -> None:
    # Given a router whose start lock another thread holds at the moment of the fork
    router = Router(settings=make_settings())
    with router._start_lock:
        # When the process forks, Then the child's first route completes
        outcome = run_forked(lambda: routes(router), timeout=5)
    assert outcome == "ok"
    assert routes(router)  # and the parent still routes


def test_a_child_forked_while_the_snapshot_registry_is_locked_gets_a_snapshot() -> None:
    with rfqueue.table.registry._snapshots_lock:
        outcome = run_forked(lambda: snapshot_for(make_settings()) is not None, timeout=5)
    assert outcome == "ok"


def test_starting_holds_no_lock_while_it_reads_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a first read of the table that blocks until the test lets it go
    router = Router(settings=make_settings())
    reading, release = threading.Event(), threading.Event()
    real_read = FailureTable.read

    def slow_read(self: FailureTable) -> Any:
        reading.set()
        assert release.wait(5)
        return real_read(self)

    monkeypatch.setattr(FailureTable, "read", slow_read)
    starter = threading.Thread(target=routes, args=(router,))
    starter.start()
    try:
        assert reading.wait(5)
        # Then, while the router's first read is on the wire, no lock a child could inherit is held
        snapshot = snapshot_for(make_settings())
        held = {
            "router start": router._start_lock.locked(),
            "snapshot registry": rfqueue.table.registry._snapshots_lock.locked(),
            "snapshot": snapshot._lock.locked(),
        }
        assert held == dict.fromkeys(held, False)
    finally:
        release.set()
        starter.join(5)
    assert routes(router)
