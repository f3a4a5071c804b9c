"""The snapshot's pool index: up workers per pool, task sets read once per digest."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from rfqueue.table.pools import PoolIndex
from rfqueue.table.service import Service
from rfqueue.table.snapshot import Snapshot

P1, V1, V2, OLD = "p1@h", "v1@h", "v2@h", "old@h"
TASKS = frozenset({"app.plain", "app.video", "celery.ping"})


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


@pytest.fixture
def fleet(table: FailureTable, clock: Any) -> FailureTable:
    """p1 consumes celery; v1 and v2 consume video; v2 lacks app.video."""
    clock.now = time.time()
    table.register(P1, q(P1), Service.of(["celery"], TASKS))
    table.register(V1, q(V1), Service.of(["video"], TASKS))
    table.register(V2, q(V2), Service.of(["video"], TASKS - {"app.video"}))
    return table


@pytest.fixture
def snapshot(fleet: FailureTable) -> Snapshot:
    snap = Snapshot(fleet)
    assert snap.refresh()
    return snap


class TestIndex:
    def test_up_workers_by_pool(self, snapshot: Snapshot) -> None:
        index = snapshot.pools
        assert index.up_in("video", "celery") == (q(V1), q(V2))
        assert index.up_in("celery", "celery") == (q(P1),)
        assert index.pools() == ("celery", "video")

    def test_only_workers_with_the_task(self, snapshot: Snapshot) -> None:
        index = snapshot.pools
        video = index.up_in("video", "celery")
        assert index.having(video, "app.video") == (q(V1),)
        assert index.having(video, "app.plain") == (q(V1), q(V2))
        assert index.having(video, "app.nobody") == ()

    def test_celery_and_rfqueue_tasks_are_everywhere(self, snapshot: Snapshot) -> None:
        video = snapshot.pools.up_in("video", "celery")
        assert snapshot.pools.having(video, "celery.chord_unlock") == video
        assert snapshot.pools.having(video, "rfqueue.chaos") == video

    def test_a_paused_worker_is_registered_not_up(
        self, fleet: FailureTable, snapshot: Snapshot
    ) -> None:
        fleet.pause(V1, 60, Reason.MANUAL)
        assert snapshot.refresh()
        assert snapshot.pools.up_in("video", "celery") == (q(V2),)
        assert snapshot.pools.registered_in("video", "celery") == (q(V1), q(V2))

    def test_a_pool_nobody_consumes(self, snapshot: Snapshot) -> None:
        assert not snapshot.pools.serves("audio", "celery")
        assert snapshot.pools.up_in("audio", "celery") == ()

    def test_an_entry_without_pools_serves_the_default_queue(
        self, fleet: FailureTable, snapshot: Snapshot
    ) -> None:
        # Given a worker registered before rfqueue knew pools (and its tasks)
        fleet.register(OLD, q(OLD))
        assert snapshot.refresh()
        index = snapshot.pools
        # Then it serves the default queue only, whatever it is called, with every task
        assert index.up_in("celery", "celery") == (q(OLD), q(P1))
        assert index.up_in("jobs", "jobs") == (q(OLD),)
        assert index.serves("jobs", "jobs") and not index.serves("jobs", "celery")
        assert index.having((q(OLD),), "app.anything") == (q(OLD),)

    def test_a_refresh_without_changes_keeps_the_same_index(self, snapshot: Snapshot) -> None:
        before = snapshot.pools
        assert snapshot.refresh()
        assert snapshot.pools is before


class TestTaskSets:
    def test_each_digest_is_read_once(
        self, fleet: FailureTable, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        reads: list[str] = []
        real = fleet.task_set
        monkeypatch.setattr(fleet, "task_set", lambda d: reads.append(d) or real(d))
        snap = Snapshot(fleet)
        for _ in range(3):
            assert snap.refresh()
        assert len(reads) == 2  # two distinct sets, however many reads and workers

    def test_an_announced_new_digest_makes_a_full_read(
        self, fleet: FailureTable, snapshot: Snapshot
    ) -> None:
        # Given a worker that restarts with another task set
        change = fleet.register(V2, q(V2), Service.of(["video"], TASKS | {"app.new"}))
        message = {"data": json.dumps(change.entry.as_dict())}  # type: ignore[union-attr]
        # Then its announcement alone cannot be applied: the set must be read first
        assert not snapshot.apply([message])
        assert snapshot.refresh()
        video = snapshot.pools.up_in("video", "celery")
        assert snapshot.pools.having(video, "app.new") == (q(V2),)

    def test_a_known_digest_is_applied_without_a_read(
        self, fleet: FailureTable, snapshot: Snapshot
    ) -> None:
        change = fleet.pause(V1, 60, Reason.MANUAL)
        message = {"data": json.dumps(change.entry.as_dict())}  # type: ignore[union-attr]
        assert snapshot.apply([message])
        assert snapshot.pools.up_in("video", "celery") == (q(V2),)

    def test_a_lost_set_means_every_task(self, fleet: FailureTable) -> None:
        # Given a task set that went missing from Redis
        digest = Service.of(["video"], TASKS - {"app.video"}).digest
        fleet.client.delete(fleet.keys.task_set(digest))
        snap = Snapshot(fleet)
        assert snap.refresh()
        # Then its worker counts as having every task (never drop: fail open)
        video = snap.pools.up_in("video", "celery")
        assert snap.pools.having(video, "app.video") == (q(V1), q(V2))


def test_build_from_nothing() -> None:
    index = PoolIndex.build([], lambda e: True, {})
    assert index.up_in("celery", "celery") == ()
    assert not index.serves("celery", "celery")
