"""The Fleet page's JSON document, from a table in fakeredis."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from rfqueue.brokers.redis_layout import queue_lists, redis_depth_reader
from rfqueue.flower.document import FleetSources, fleet_document, shown_state, worker_row
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Entry, Reason, State
from tests.unit.conftest import NAMESPACE, FakeClock, beat_while

W1, W2, W3 = "w1@h", "w2@h", "w3@h"


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


@pytest.fixture
def settings() -> Settings:
    return Settings(namespace=NAMESPACE, max_paused=1, min_up=1, heartbeat_timeout=5)


@pytest.fixture
def fleet(table: FailureTable, clock: FakeClock) -> FailureTable:
    """w1 up, w2 paused by hand for 90 s with 5 tasks waiting (2 of them on a priority
    list), w3 down; routers have sent 7 tasks to w1 and 3 to w2."""
    for worker in (W1, W2, W3):
        table.register(worker, q(worker))
    table.pause(W2, 90, Reason.MANUAL, note="disk swap")
    table.mark_down(W3, Reason.SHUTDOWN)
    main, *priority = queue_lists(q(W2))
    table.client.lpush(main, "a", "b", "c")
    table.client.lpush(priority[2], "d", "e")
    table.client.hset(table.keys.routed, mapping={q(W1): 7, q(W2): 3})
    beat_while(table, clock, 10, W1)  # w1 beats every second; w2 and w3 have been silent
    clock.advance(0.5)
    return table


def document(fleet: FailureTable, settings: Settings, clock: FakeClock) -> dict[str, Any]:
    sources = FleetSources(fleet, redis_depth_reader(fleet.client), settings)
    return fleet_document(sources, now=clock.now)


def test_every_worker_with_its_state_depth_and_routed_tasks(
    fleet: FailureTable, settings: Settings, clock: FakeClock
) -> None:
    doc = document(fleet, settings, clock)
    rows = {w["worker"]: w for w in doc["workers"]}
    assert list(rows) == [W1, W2, W3]
    w1, w2, w3 = rows[W1], rows[W2], rows[W3]
    assert (w1["shown"], w1["depth"], w1["routed"], w1["remaining"]) == ("up", 0, 7, None)
    assert w1["heartbeat_age"] == pytest.approx(0.5)
    # the paused worker: its reason, the note, the time left, the true depth of its queue
    assert (w2["shown"], w2["reason"], w2["note"], w2["depth"], w2["routed"]) == (
        "paused",
        "manual",
        "disk swap",
        5,
        3,
    )
    assert w2["remaining"] == pytest.approx(79.5)
    assert w2["until"] == pytest.approx(clock.now + 79.5)
    assert (w3["shown"], w3["reason"], w3["depth"], w3["routed"]) == ("down", "shutdown", 0, 0)
    assert w2["silent"] is True and w1["silent"] is False and w3["silent"] is False
    assert doc["depths_known"] is True and doc["actions"] == ["pause", "drain", "resume"]
    json.dumps(doc)  # JSON as it is, no custom encoder


def test_budget_counts_every_worker_not_up(
    fleet: FailureTable, settings: Settings, clock: FakeClock
) -> None:
    budget = document(fleet, settings, clock)["budget"]
    assert budget == {
        "max_paused": 1,
        "limit": 1,
        "min_up": 1,
        "total": 3,
        "up": 1,
        "not_up": 2,
        "room": 0,
    }
    fraction = settings.replace(max_paused=0.7)
    assert document(fleet, fraction, clock)["budget"]["limit"] == 2  # floor(0.7 * 3)


def test_latest_events_newest_first(
    fleet: FailureTable, settings: Settings, clock: FakeClock
) -> None:
    events = document(fleet, settings, clock)["events"]
    assert [(e["worker"], e["action"]) for e in events[:2]] == [(W3, "down"), (W2, "pause")]
    assert events[1]["note"] == "disk swap"


def test_an_expired_pause_shows_up(
    fleet: FailureTable, settings: Settings, clock: FakeClock
) -> None:
    clock.advance(100)
    w2 = document(fleet, settings, clock)["workers"][1]
    assert (w2["state"], w2["shown"], w2["remaining"]) == ("paused", "up", None)


def test_unreadable_depths_are_null_not_an_error(
    fleet: FailureTable, settings: Settings, clock: FakeClock
) -> None:
    def broken(queues: Any) -> dict[str, int]:
        raise OSError("broker gone")

    doc = fleet_document(FleetSources(fleet, broken, settings), now=clock.now)
    assert doc["depths_known"] is False
    assert {w["depth"] for w in doc["workers"]} == {None}


# The states of the coming issue: a pause whose reason is ``outlier`` and a pool list.


@dataclass(frozen=True, slots=True)
class EntryWithPools(Entry):
    pools: tuple[str, ...] = ()


def test_an_outlier_pause_is_shown_ejected(clock: FakeClock) -> None:
    outlier: Any = SimpleNamespace(value="outlier")
    entry = Entry(W1, q(W1), State.PAUSED, outlier, clock.now, clock.now + 30, 1, clock.now)
    assert shown_state(entry, clock.now) == "ejected"
    row = worker_row(entry, clock.now, Settings(), {}, {})
    assert (row["shown"], row["remaining"]) == ("ejected", pytest.approx(30))


def test_pools_and_their_depths_show_when_present(clock: FakeClock) -> None:
    entry = EntryWithPools(
        W1, q(W1), State.UP, None, clock.now, None, 1, clock.now, pools=("video", "pdf")
    )
    depths = {q(W1): 2, "video": 4}
    row = worker_row(entry, clock.now, Settings(), depths, {})
    assert (row["pools"], row["pool_depths"]) == (["video", "pdf"], {"video": 4, "pdf": 0})
