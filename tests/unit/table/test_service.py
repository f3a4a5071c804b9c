"""What a worker serves: pools and task sets in the table, kept current by its beats."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rfqueue.table import FailureTable
from rfqueue.table.entry import Entry, Reason, State
from rfqueue.table.service import Service, task_digest

W1 = "w1@h"
Q1 = "rfqueue.w1@h"
VIDEO = Service.of(["video"], ["app.encode", "app.thumb", "celery.ping"])


def entry_of(table: FailureTable, worker: str = W1) -> Entry:
    return table.entries()[worker]


def actions(table: FailureTable) -> list[tuple[str, str | None]]:
    return [(e.action, e.reason) for e in reversed(table.events(1000))]


class TestDigest:
    def test_same_names_in_any_order_give_one_digest(self) -> None:
        assert task_digest(["b", "a", "a"]) == task_digest(["a", "b"])
        assert len(task_digest(["a"])) == 16

    def test_other_names_give_another_digest(self) -> None:
        assert task_digest(["a", "b"]) != task_digest(["a", "c"])

    def test_pools_are_sorted_without_duplicates(self) -> None:
        assert Service.of(["video", "celery", "video"]).pools == ("celery", "video")


class TestRegister:
    def test_records_pools_tasks_and_the_task_set(self, table: FailureTable) -> None:
        # When a worker of the video pool registers
        change = table.register(W1, Q1, VIDEO)
        # Then its entry names the pool and the digest, and the set holds the names
        e = entry_of(table)
        assert change.status == "ok" and e.pools == ("video",)
        assert e.tasks == VIDEO.digest
        assert table.task_set(VIDEO.digest) == VIDEO.tasks

    def test_without_a_service_the_entry_has_none(self, table: FailureTable) -> None:
        table.register(W1, Q1)
        e = entry_of(table)
        assert (e.pools, e.tasks) == ((), None)
        assert "pools" not in json.loads(table.client.hget(table.keys.workers, W1))  # type: ignore[arg-type]

    def test_a_restart_with_other_tasks_changes_the_digest(self, table: FailureTable) -> None:
        # Given a worker that had two tasks
        table.register(W1, Q1, VIDEO)
        # When it restarts after a deploy that removed one
        fewer = Service.of(["video"], ["app.encode", "celery.ping"])
        table.mark_down(W1, Reason.SHUTDOWN)
        table.register(W1, Q1, fewer)
        # Then its entry names the new set, and both sets are there
        assert entry_of(table).tasks == fewer.digest != VIDEO.digest
        assert table.task_set(fewer.digest) == fewer.tasks
        assert table.task_set(VIDEO.digest) == VIDEO.tasks

    def test_a_restart_while_paused_stays_paused_with_the_new_service(
        self, table: FailureTable
    ) -> None:
        # Given a paused worker
        table.register(W1, Q1, VIDEO)
        table.pause(W1, 60, Reason.MANUAL)
        # When it restarts consuming another pool
        other = Service.of(["batch"], VIDEO.tasks)
        change = table.register(W1, Q1, other)
        # Then it is still paused, and serves the new pool
        e = entry_of(table)
        assert change.status == "ok" and e.state is State.PAUSED
        assert e.pools == ("batch",)
        assert actions(table)[-1] == ("serve", "start")

    def test_a_restart_while_paused_with_the_same_service_is_a_noop(
        self, table: FailureTable
    ) -> None:
        table.register(W1, Q1, VIDEO)
        table.pause(W1, 60, Reason.MANUAL)
        assert table.register(W1, Q1, VIDEO).status == "noop"


class TestHeartbeat:
    def test_an_unchanged_beat_saves_nothing(self, table: FailureTable) -> None:
        table.register(W1, Q1, VIDEO)
        version = table.version()
        assert table.heartbeat(W1, Q1, service=VIDEO).status == "noop"
        assert table.version() == version

    def test_a_new_pool_is_saved_with_a_serve_event(self, table: FailureTable) -> None:
        # Given a worker of the video pool
        table.register(W1, Q1, VIDEO)
        version = table.version()
        # When it consumes another queue at run time (add_consumer) and beats
        more = Service.of(["video", "audio"], VIDEO.tasks)
        change = table.heartbeat(W1, Q1, service=more)
        # Then the entry serves both, in a new version, with one serve event
        assert change.status == "ok" and change.entry is not None
        assert change.entry.pools == ("audio", "video")
        assert table.version() == version + 1
        assert actions(table)[-1] == ("serve", "heartbeat")

    def test_a_beat_without_a_service_keeps_the_entrys(self, table: FailureTable) -> None:
        table.register(W1, Q1, VIDEO)
        assert table.heartbeat(W1, Q1).status == "noop"
        assert entry_of(table).pools == ("video",)

    def test_a_beat_while_paused_keeps_the_pause(self, table: FailureTable) -> None:
        table.register(W1, Q1, VIDEO)
        table.pause(W1, 60, Reason.MANUAL)
        table.heartbeat(W1, Q1, service=Service.of(["audio"], VIDEO.tasks))
        e = entry_of(table)
        assert (e.state, e.pools) == (State.PAUSED, ("audio",))

    def test_the_task_set_is_written_once_per_digest(self, table: FailureTable) -> None:
        table.register(W1, Q1, VIDEO)
        table.client.delete(table.keys.task_set(VIDEO.digest))
        table.heartbeat(W1, Q1, service=VIDEO)
        assert not table.client.exists(table.keys.task_set(VIDEO.digest))


class TestOldEntries:
    OLD = {"worker": W1, "queue": Q1, "state": "up", "since": 1.0, "version": 1}

    def test_an_entry_from_before_pools_decodes_with_none(self, table: FailureTable) -> None:
        table.client.hset(table.keys.workers, W1, json.dumps(self.OLD))
        e = entry_of(table)
        assert (e.pools, e.tasks) == ((), None)

    def test_its_first_beat_adds_them(self, table: FailureTable) -> None:
        table.client.hset(table.keys.workers, W1, json.dumps(self.OLD))
        assert table.heartbeat(W1, Q1, service=VIDEO).status == "ok"
        assert entry_of(table).pools == ("video",)

    def test_pause_and_resume_keep_them(self, table: FailureTable) -> None:
        table.register(W1, Q1, VIDEO)
        table.pause(W1, 60, Reason.MANUAL)
        table.resume(W1)
        table.mark_down(W1, Reason.SHUTDOWN)
        e = entry_of(table)
        assert (e.pools, e.tasks) == (("video",), VIDEO.digest)


BAD_SERVICE: dict[str, Any] = {
    "pools_not_a_list": {"pools": "video"},
    "pool_not_text": {"pools": ["video", 3]},
    "empty_pool": {"pools": [""]},
    "tasks_not_text": {"tasks": 12},
}


@pytest.mark.parametrize("bad", sorted(BAD_SERVICE))
def test_a_malformed_service_is_malformed_for_every_reader(table: FailureTable, bad: str) -> None:
    # Given an entry whose pools or tasks are not what rfqueue writes
    row = {**TestOldEntries.OLD, **BAD_SERVICE[bad]}
    table.client.hset(table.keys.workers, W1, json.dumps(row))
    # Then Python skips it, and the scripts treat it as absent (a beat replaces it)
    assert table.entries() == {}
    assert table.pause(W1, 10, Reason.MANUAL).status == "unknown"
    assert table.heartbeat(W1, Q1, service=VIDEO).status == "ok"
    assert entry_of(table).pools == ("video",)
