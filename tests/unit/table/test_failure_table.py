"""The failure table: every Lua transition, the budget, the event log and the channel."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfqueue.table import Budget, FailureTable
from rfqueue.table.entry import Entry, Reason, State
from tests.unit.conftest import beat_while, server_time

W1, W2, W3 = "w1@h", "w2@h", "w3@h"


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


def register(table: FailureTable, *workers: str) -> None:
    for worker in workers:
        assert table.register(worker, q(worker)).status == "ok"


def entry_of(table: FailureTable, worker: str) -> Entry:
    return table.entries()[worker]


def raw_of(table: FailureTable, worker: str) -> str | None:
    return table.client.hget(table.keys.workers, worker)  # type: ignore[return-value]


def actions(table: FailureTable) -> list[tuple[str, str, str | None]]:
    """(worker, action, reason) of every event, oldest first."""
    return [(e.worker, e.action, e.reason) for e in reversed(table.events(1000))]


class Channel:
    """A subscriber to the table's change channel."""

    def __init__(self, table: FailureTable) -> None:
        self.pubsub = table.client.pubsub()  # type: ignore[no-untyped-call]
        self.pubsub.subscribe(table.keys.channel)
        self.messages()  # the subscribe confirmation

    def messages(self) -> list[dict[str, Any]]:
        out = []
        while (message := self.pubsub.get_message(timeout=0.05)) is not None:
            if message["type"] == "message":
                out.append(json.loads(message["data"]))
        return out


@pytest.fixture
def channel(table: FailureTable) -> Iterator[Channel]:
    sub = Channel(table)
    yield sub
    sub.pubsub.close()


class TestRegister:
    def test_new_worker_is_up(self, table: FailureTable, clock: Any) -> None:
        # Given an empty table
        # When a worker registers
        change = table.register(W1, q(W1))
        # Then it is up since now, with a heartbeat, and one start event
        assert change.status == "ok"
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until, e.queue) == (State.UP, None, None, q(W1))
        assert e.since == clock.now
        assert e.heartbeat == clock.now
        assert e.version == table.version() == 1
        assert actions(table) == [(W1, "register", "start")]

    def test_restart_during_unexpired_pause_stays_paused(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Given a worker paused for 60 s that crashed (its entry still says paused)
        register(table, W1)
        until = table.pause(W1, 60, Reason.CHAOS).entry.until  # type: ignore[union-attr]
        version = table.version()
        clock.advance(10)
        # When it registers again
        change = table.register(W1, q(W1))
        # Then it is still paused with the same end, and nothing changed but the beat
        assert change.status == "noop"
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until) == (State.PAUSED, Reason.CHAOS, until)
        assert e.heartbeat == clock.now
        assert table.version() == version

    def test_restart_after_shutdown_resumes_the_owed_pause(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Given a worker paused by chaos for 60 s that then shut down cleanly
        register(table, W1)
        table.pause(W1, 60, Reason.CHAOS)
        table.mark_down(W1, Reason.SHUTDOWN)
        clock.advance(5)
        # When it starts again
        change = table.register(W1, q(W1))
        # Then it is paused again until the same end, for the original reason
        assert change.status == "ok"
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until) == (State.PAUSED, Reason.CHAOS, clock.now - 5 + 60)

    @pytest.mark.parametrize("shut_down", [False, True])
    def test_restart_after_pause_expired_is_up(
        self, table: FailureTable, clock: Any, shut_down: bool
    ) -> None:
        # Given a 10 s pause (with or without a shutdown in between) that has passed
        register(table, W1)
        table.pause(W1, 10, Reason.MANUAL)
        if shut_down:
            table.mark_down(W1, Reason.SHUTDOWN)
        clock.advance(11)
        # When the worker registers
        change = table.register(W1, q(W1))
        # Then it is up
        assert change.status == "ok"
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until) == (State.UP, None, None)

    def test_register_records_a_new_queue(self, table: FailureTable) -> None:
        register(table, W1)
        table.register(W1, "other-queue")
        assert entry_of(table, W1).queue == "other-queue"


class TestHeartbeat:
    def test_beat_of_an_up_worker_only_records_the_beat(
        self, table: FailureTable, clock: Any, channel: Channel
    ) -> None:
        # Given an up worker
        register(table, W1)
        channel.messages()
        version, n_events = table.version(), len(table.events(100))
        clock.advance(3)
        # When it beats
        change = table.heartbeat(W1, q(W1))
        # Then only the heartbeat moved: no version, no event, no announcement
        assert change.status == "noop"
        assert change.entry is not None and change.entry.state is State.UP
        assert entry_of(table, W1).heartbeat == clock.now
        assert table.version() == version
        assert len(table.events(100)) == n_events
        assert channel.messages() == []

    def test_down_worker_that_beats_is_up(self, table: FailureTable) -> None:
        register(table, W1)
        table.mark_down(W1, Reason.HEARTBEAT)
        change = table.heartbeat(W1, q(W1))
        assert change.status == "ok"
        assert entry_of(table, W1).state is State.UP
        assert actions(table)[-1] == (W1, "register", "heartbeat")

    def test_a_beat_delivered_late_never_moves_the_last_beat_back(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Given a worker whose latest beat is at t
        register(table, W1)
        clock.advance(5)
        table.heartbeat(W1, q(W1))
        latest = clock.now
        # When a beat it sent 3 s earlier arrives now (it waited in the network)
        clock.now = latest - 3
        table.heartbeat(W1, q(W1))
        # Then its last beat is still t
        clock.now = latest
        assert entry_of(table, W1).heartbeat == latest

    def test_a_beat_sent_before_the_worker_was_marked_down_does_not_revive_it(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Given W1, which saw its own entry at registration, cut off (silent) and marked
        # down while W2 beats
        register(table, W1, W2)
        seen = entry_of(table, W1).version
        beat_while(table, clock, 10, W2)
        assert [e.worker for e in table.reap(5)] == [W1]
        # When a beat W1 sent before it could know of the down arrives after it
        change = table.heartbeat(W1, q(W1), seen=seen)
        # Then W1 stays down: that beat is no sign of life now; the reply tells W1
        assert change.status == "noop"
        assert change.entry is not None and change.entry.state is State.DOWN
        assert entry_of(table, W1).state is State.DOWN
        # And its next beat, sent knowing the down, revives it
        clock.advance(1)
        assert table.heartbeat(W1, q(W1), seen=change.entry.version).status == "ok"
        assert entry_of(table, W1).state is State.UP

    def test_down_worker_with_unexpired_pause_beats_into_the_pause(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Given a worker paused for 60 s, then reaped as silent while W2 beats
        register(table, W1, W2)
        table.pause(W1, 60, Reason.CHAOS)
        until = clock.now + 60
        beat_while(table, clock, 10, W2)
        table.reap(5)
        assert entry_of(table, W1).state is State.DOWN
        # When it beats again
        table.heartbeat(W1, q(W1))
        # Then it is paused until the original end
        e = entry_of(table, W1)
        assert (e.state, e.until, e.reason) == (State.PAUSED, until, Reason.CHAOS)

    def test_beat_ends_an_expired_pause(self, table: FailureTable, clock: Any) -> None:
        # Given a 10 s pause that has passed
        register(table, W1)
        table.pause(W1, 10, Reason.MANUAL)
        clock.advance(10.5)
        # When the worker beats
        change = table.heartbeat(W1, q(W1))
        # Then it is up and the event says the pause expired
        assert change.status == "ok"
        e = entry_of(table, W1)
        assert (e.state, e.until, e.reason) == (State.UP, None, None)
        assert actions(table)[-1] == (W1, "resume", "expired")

    def test_beat_during_unexpired_pause_keeps_it(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        table.pause(W1, 10, Reason.MANUAL)
        clock.advance(9)
        assert table.heartbeat(W1, q(W1)).status == "noop"
        assert entry_of(table, W1).state is State.PAUSED

    def test_beat_without_entry_recreates_it(self, table: FailureTable, clock: Any) -> None:
        # Given a worker whose entry was forgotten while it still runs
        register(table, W1)
        table.mark_down(W1, Reason.SHUTDOWN)
        table.forget(W1)
        assert W1 not in table.entries()
        # When it beats
        change = table.heartbeat(W1, q(W1))
        # Then it is back, up, on its queue
        assert change.status == "ok"
        e = entry_of(table, W1)
        assert (e.state, e.queue, e.heartbeat) == (State.UP, q(W1), clock.now)


class TestPause:
    def test_manual_pause_of_an_up_worker(self, table: FailureTable, clock: Any) -> None:
        # Given an up worker
        register(table, W1)
        # When an operator pauses it for 30 s with a note
        change = table.pause(W1, 30, Reason.MANUAL, note="deploy")
        # Then it is paused until now + 30, and the event carries the note
        assert change.status == "ok"
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until, e.note) == (
            State.PAUSED,
            Reason.MANUAL,
            clock.now + 30,
            "deploy",
        )
        assert e.since == clock.now
        event = table.events(1)[0]
        assert (event.action, event.reason, event.note, event.until) == (
            "pause",
            "manual",
            "deploy",
            clock.now + 30,
        )

    @pytest.mark.parametrize("seconds", [0, -1, -0.001, float("nan"), float("inf")])
    def test_pause_needs_a_positive_finite_duration(
        self, table: FailureTable, seconds: float, dump: Callable[[Any], dict[str, Any]]
    ) -> None:
        register(table, W1)
        before = dump(table.client)
        with pytest.raises(ValueError, match="positive duration"):
            table.pause(W1, seconds, Reason.MANUAL)
        assert dump(table.client) == before

    def test_unknown_worker(
        self, table: FailureTable, dump: Callable[[Any], dict[str, Any]]
    ) -> None:
        register(table, W1)
        before = dump(table.client)
        change = table.pause("nobody", 10, Reason.MANUAL)
        assert (change.status, change.entry, change.changed) == ("unknown", None, False)
        assert dump(table.client) == before

    def test_pause_of_a_down_worker_keeps_it_down_but_stores_until(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Given a down worker
        register(table, W1)
        table.mark_down(W1, Reason.SHUTDOWN)
        # When it is paused by hand
        change = table.pause(W1, 60, Reason.MANUAL)
        # Then it stays down, owing a pause until now + 60
        assert change.status == "ok"
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until) == (State.DOWN, Reason.SHUTDOWN, clock.now + 60)
        assert e.effective_state(clock.now) is State.DOWN
        # And when it comes back it serves that pause
        table.heartbeat(W1, q(W1))
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until) == (State.PAUSED, Reason.MANUAL, clock.now + 60)

    def test_manual_pause_ignores_the_budget(self, table: FailureTable) -> None:
        register(table, W1, W2)
        assert table.pause(W1, 10, Reason.MANUAL).status == "ok"
        assert table.pause(W2, 10, Reason.MANUAL).status == "ok"


class TestBudget:
    def test_count_limit(self, table: FailureTable) -> None:
        # Given three up workers and a budget of one
        register(table, W1, W2, W3)
        budget = Budget(max_paused=1)
        # When chaos pauses two
        first = table.pause(W1, 10, Reason.CHAOS, budget=budget)
        version = table.version()
        second = table.pause(W2, 10, Reason.CHAOS, budget=budget)
        # Then only the first is taken; the refusal writes nothing
        assert first.status == "ok"
        assert second.status == "budget"
        assert second.entry is not None and second.entry.state is State.UP
        assert entry_of(table, W2).state is State.UP
        assert table.version() == version

    def test_fraction_limit(self, table: FailureTable) -> None:
        # Given four workers and a budget of half the fleet
        register(table, W1, W2, W3, "w4@h")
        budget = Budget(max_paused=0.5, min_up=0)
        # Then two pauses fit and the third does not
        statuses = [table.pause(w, 10, Reason.CHAOS, budget=budget).status for w in (W1, W2, W3)]
        assert statuses == ["ok", "ok", "budget"]

    def test_fraction_rounds_down(self, table: FailureTable) -> None:
        # 25 % of three workers is 0.75, which allows nobody
        register(table, W1, W2, W3)
        change = table.pause(W1, 10, Reason.CHAOS, budget=Budget(max_paused=0.25, min_up=0))
        assert change.status == "budget"

    def test_min_up(self, table: FailureTable) -> None:
        # Given three workers, a generous max_paused but two that must stay up
        register(table, W1, W2, W3)
        budget = Budget(max_paused=3, min_up=2)
        # Then one pause fits (two stay up) and a second does not
        assert table.pause(W1, 10, Reason.CHAOS, budget=budget).status == "ok"
        assert table.pause(W2, 10, Reason.CHAOS, budget=budget).status == "budget"

    def test_down_workers_use_the_budget(self, table: FailureTable) -> None:
        register(table, W1, W2, W3)
        table.mark_down(W1, Reason.HEARTBEAT)
        assert table.pause(W2, 10, Reason.CHAOS, budget=Budget(1)).status == "budget"

    def test_expired_pauses_free_the_budget(self, table: FailureTable, clock: Any) -> None:
        # Given a chaos pause that has passed but was never resumed by anyone
        register(table, W1, W2, W3)
        table.pause(W1, 10, Reason.CHAOS, budget=Budget(1))
        clock.advance(10)
        # Then it no longer counts
        assert table.pause(W2, 10, Reason.CHAOS, budget=Budget(1)).status == "ok"

    @pytest.mark.parametrize("how", ["paused", "down"])
    def test_budgeted_pause_needs_an_up_worker(
        self, table: FailureTable, how: str, dump: Callable[[Any], dict[str, Any]]
    ) -> None:
        register(table, W1, W2, W3)
        if how == "paused":
            table.pause(W1, 10, Reason.MANUAL)
        else:
            table.mark_down(W1, Reason.SHUTDOWN)
        before = dump(table.client)
        change = table.pause(W1, 10, Reason.CHAOS, budget=Budget(3, min_up=0))
        assert change.status == "state"
        assert dump(table.client) == before

    def test_two_pauses_at_once_one_wins(self, server: fakeredis.FakeServer, clock: Any) -> None:
        # Given two processes (own connections, one server) and five up workers
        a, b = (
            FailureTable(fakeredis.FakeRedis(server=server, decode_responses=True), "t")
            for _ in range(2)
        )
        workers = [f"w{i}@h" for i in range(5)]
        register(a, *workers)
        # When both pause a different worker at the same moment
        barrier = threading.Barrier(2)
        results: dict[str, str] = {}

        def go(table: FailureTable, worker: str) -> None:
            barrier.wait()
            results[worker] = table.pause(worker, 30, Reason.CHAOS, budget=Budget(1)).status

        threads = [
            threading.Thread(target=go, args=(a, workers[0])),
            threading.Thread(target=go, args=(b, workers[1])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        # Then exactly one got it
        assert sorted(results.values()) == ["budget", "ok"]
        paused = [w for w, e in a.entries().items() if e.state is State.PAUSED]
        assert len(paused) == 1

    def test_race_never_exceeds_the_budget(self, server: fakeredis.FakeServer) -> None:
        # Given two chaos processes hammering five workers with a budget of one
        workers = [f"w{i}@h" for i in range(5)]
        tables = [
            FailureTable(fakeredis.FakeRedis(server=server, decode_responses=True), "race")
            for _ in range(2)
        ]
        register(tables[0], *workers)
        violations: list[int] = []
        oks = [0, 0]
        barrier = threading.Barrier(2)

        def hammer(index: int) -> None:
            table = tables[index]
            barrier.wait()
            for i in range(300):
                worker = workers[(i * 3 + index) % 5]
                if table.pause(worker, 30, Reason.CHAOS, budget=Budget(1)).changed:
                    oks[index] += 1
                not_up = sum(e.state is not State.UP for e in table.entries().values())
                if not_up > 1:
                    violations.append(not_up)
                if i % 2 == index:
                    table.resume(worker, Reason.MANUAL)
                not_up = sum(e.state is not State.UP for e in table.entries().values())
                if not_up > 1:
                    violations.append(not_up)

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # Then at no point were two workers out, yet both processes took pauses
        assert violations == []
        assert oks[0] > 0 and oks[1] > 0


class TestResume:
    def test_resume_a_paused_worker(self, table: FailureTable, channel: Channel) -> None:
        register(table, W1)
        table.pause(W1, 60, Reason.CHAOS)
        channel.messages()
        change = table.resume(W1)
        assert change.status == "ok"
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until) == (State.UP, None, None)
        assert actions(table)[-1] == (W1, "resume", "manual")
        assert [m["state"] for m in channel.messages()] == ["up"]

    def test_resume_an_up_worker_is_a_noop(self, table: FailureTable) -> None:
        register(table, W1)
        version = table.version()
        assert table.resume(W1).status == "noop"
        assert table.version() == version

    def test_resume_an_expired_pause_clears_it(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        table.pause(W1, 10, Reason.CHAOS)
        clock.advance(20)
        assert table.resume(W1, Reason.EXPIRED).status == "ok"
        assert entry_of(table, W1).state is State.UP
        assert actions(table)[-1] == (W1, "resume", "expired")

    def test_resume_of_a_down_worker_cancels_the_owed_pause(self, table: FailureTable) -> None:
        # Given a paused worker that went down and owes the rest of its pause
        register(table, W1)
        table.pause(W1, 60, Reason.CHAOS)
        table.mark_down(W1, Reason.SHUTDOWN)
        # When it is resumed
        assert table.resume(W1).status == "ok"
        # Then it stays down without a pause, and comes back up
        e = entry_of(table, W1)
        assert (e.state, e.until) == (State.DOWN, None)
        table.heartbeat(W1, q(W1))
        assert entry_of(table, W1).state is State.UP

    def test_resume_unknown(self, table: FailureTable) -> None:
        assert table.resume("nobody").status == "unknown"


class TestMarkDown:
    def test_up_worker_goes_down(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        clock.advance(1)
        assert table.mark_down(W1, Reason.SHUTDOWN).status == "ok"
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until, e.since) == (
            State.DOWN,
            Reason.SHUTDOWN,
            None,
            clock.now,
        )
        assert actions(table)[-1] == (W1, "down", "shutdown")

    def test_keeps_an_unexpired_pause(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        table.pause(W1, 60, Reason.CHAOS)
        table.mark_down(W1, Reason.SHUTDOWN)
        e = entry_of(table, W1)
        assert (e.state, e.until) == (State.DOWN, clock.now + 60)

    def test_drops_an_expired_pause(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        table.pause(W1, 10, Reason.CHAOS)
        clock.advance(11)
        table.mark_down(W1, Reason.SHUTDOWN)
        e = entry_of(table, W1)
        assert (e.state, e.until) == (State.DOWN, None)

    def test_down_twice_is_a_noop(self, table: FailureTable) -> None:
        register(table, W1)
        table.mark_down(W1, Reason.SHUTDOWN)
        version = table.version()
        assert table.mark_down(W1, Reason.HEARTBEAT).status == "noop"
        assert table.version() == version
        assert entry_of(table, W1).reason is Reason.SHUTDOWN

    def test_unknown(self, table: FailureTable) -> None:
        assert table.mark_down("nobody", Reason.SHUTDOWN).status == "unknown"


class TestResumeExpired:
    def test_only_expired_pauses_end(self, table: FailureTable, clock: Any) -> None:
        # Given one pause that has passed, one that has not, and one owed by a down worker
        register(table, W1, W2, W3)
        table.pause(W1, 10, Reason.CHAOS)
        table.pause(W2, 100, Reason.CHAOS)
        table.pause(W3, 10, Reason.CHAOS)
        table.mark_down(W3, Reason.SHUTDOWN)
        clock.advance(50)
        # When expired pauses are resumed
        resumed = table.resume_expired()
        # Then only the first
        assert [e.worker for e in resumed] == [W1]
        assert resumed[0].state is State.UP
        entries = table.entries()
        assert entries[W1].state is State.UP
        assert entries[W2].state is State.PAUSED
        assert entries[W3].state is State.DOWN
        assert actions(table)[-1] == (W1, "resume", "expired")

    def test_nothing_to_do_changes_nothing(self, table: FailureTable) -> None:
        register(table, W1)
        version = table.version()
        assert table.resume_expired() == []
        assert table.version() == version


class TestReap:
    def test_stale_workers_go_down(self, table: FailureTable, clock: Any) -> None:
        # Given W1 silent for 10 s, W2 beating, W3 already down, all with a 5 s timeout
        register(table, W1, W2, W3)
        table.mark_down(W3, Reason.SHUTDOWN)
        beat_while(table, clock, 10, W2)
        version = table.version()
        # When the table is reaped
        reaped = table.reap(5)
        # Then only W1 goes down, for want of a heartbeat
        assert [e.worker for e in reaped] == [W1]
        e = entry_of(table, W1)
        assert (e.state, e.reason) == (State.DOWN, Reason.HEARTBEAT)
        assert entry_of(table, W2).state is State.UP
        assert entry_of(table, W3).reason is Reason.SHUTDOWN
        assert table.version() == version + 1
        assert actions(table)[-1] == (W1, "down", "heartbeat")

    def test_exactly_at_the_timeout_is_not_stale(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        clock.advance(5)
        assert table.reap(5) == []

    def test_reaped_paused_worker_keeps_its_pause(self, table: FailureTable, clock: Any) -> None:
        register(table, W1, W2)
        table.pause(W1, 60, Reason.CHAOS)
        beat_while(table, clock, 10, W2)
        table.reap(5)
        e = entry_of(table, W1)
        assert (e.state, e.until) == (State.DOWN, clock.now - 10 + 60)

    def test_worker_without_any_heartbeat_is_stale(self, table: FailureTable, clock: Any) -> None:
        register(table, W1, W2)
        table.client.hdel(table.keys.heartbeats, W1)
        beat_while(table, clock, 6, W2)
        assert [e.worker for e in table.reap(5)] == [W1]

    def test_after_a_fleet_wide_silence_nobody_is_reaped_at_once(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Given three beating workers, then 60 s in which nobody could beat (an outage)
        register(table, W1, W2, W3)
        beat_while(table, clock, 3, W1, W2, W3)
        clock.advance(60)
        # When only W1 has beaten again, and the table is reaped
        table.heartbeat(W1, q(W1))
        # Then W2 and W3 are not down: their silence counts from when beats resumed
        assert table.reap(5) == []
        # And once they stay silent past the timeout after that, they are
        beat_while(table, clock, 6, W1)
        assert sorted(e.worker for e in table.reap(5)) == [W2, W3]

    def test_a_reap_before_the_first_beat_after_an_outage_marks_nobody_down(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Given three beating workers, then 60 s in which nobody could reach the table
        register(table, W1, W2, W3)
        beat_while(table, clock, 3, W1, W2, W3)
        clock.advance(60)
        # When a rescuer reaps before any heartbeat got through (a failover, say)
        # Then nobody is marked down: the silence was the table's, not the workers'
        assert table.reap(5) == []
        assert {e.state for e in table.entries().values()} == {State.UP}

    def test_with_a_lease_one_caller_per_period_scans(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Given W1 silent past the timeout, W2 and W3 beating
        register(table, W1, W2, W3)
        beat_while(table, clock, 6, W2, W3)
        # When every worker's rescuer reaps in the same lease period
        first = table.reap(5, lease=60)
        # Then the first call scans and marks W1 down
        assert [e.worker for e in first] == [W1]
        # And when W2 falls silent too, later calls in that period do not scan
        beat_while(table, clock, 6, W3)
        assert table.reap(5, lease=60) == []
        assert entry_of(table, W2).state is State.UP
        # While a call without a lease (the chaos tick's) always scans
        assert [e.worker for e in table.reap(5)] == [W2]

    def test_a_lease_ends_and_the_next_caller_scans(
        self, table: FailureTable, clock: Any, poll: Any
    ) -> None:
        register(table, W1, W2)
        assert table.reap(5, lease=0.05) == []  # takes the lease; nobody is silent yet
        beat_while(table, clock, 6, W2)
        assert poll(lambda: [e.worker for e in table.reap(5, lease=0.05)] == [W1])


class TestForget:
    def test_forget_a_down_worker(self, table: FailureTable, channel: Channel) -> None:
        register(table, W1, W2)
        table.mark_down(W1, Reason.SHUTDOWN)
        version = table.version()
        channel.messages()
        change = table.forget(W1)
        assert change.status == "ok"
        assert W1 not in table.entries()
        assert table.client.hget(table.keys.heartbeats, W1) is None
        assert table.version() == version + 1
        assert actions(table)[-1] == (W1, "forget", "manual")
        assert channel.messages() == [{"worker": W1, "forgotten": True}]

    def test_a_paused_worker_only_by_force(self, table: FailureTable) -> None:
        register(table, W1)
        table.pause(W1, 60, Reason.MANUAL)
        assert table.forget(W1).status == "state"  # it still runs: it would beat back in
        assert table.forget(W1, force=True).status == "ok"
        assert table.entries() == {}
        assert actions(table)[-1] == (W1, "forget", "force")

    def test_the_automatic_forget_checks_the_silence_in_the_same_step(
        self, table: FailureTable, clock: Any
    ) -> None:
        register(table, W1, W2)
        table.mark_down(W1, Reason.SHUTDOWN)
        beat_while(table, clock, 30, W2)  # the fleet beats on; w1 stays silent
        assert table.forget(W1, silent_for=60).status == "state"  # not silent long enough
        assert table.forget(W2, silent_for=10).status == "state"  # up: never
        beat_while(table, clock, 31, W2)
        assert table.forget(W1, silent_for=60).status == "ok"
        assert actions(table)[-1] == (W1, "forget", "departed")

    @pytest.mark.parametrize("expired_pause", [False, True])
    def test_refuses_an_up_worker(
        self,
        table: FailureTable,
        clock: Any,
        expired_pause: bool,
        dump: Callable[[Any], dict[str, Any]],
    ) -> None:
        register(table, W1)
        if expired_pause:
            table.pause(W1, 5, Reason.MANUAL)
            clock.advance(6)
        before = dump(table.client)
        assert table.forget(W1).status == "state"
        assert dump(table.client) == before

    def test_unknown(self, table: FailureTable) -> None:
        assert table.forget("nobody").status == "unknown"


class TestLogAndChannel:
    def test_every_change_bumps_version_logs_once_and_announces(
        self, table: FailureTable, clock: Any, channel: Channel
    ) -> None:
        # Given a sequence of changes of every kind
        steps: list[Callable[[], Any]] = [
            lambda: table.register(W1, q(W1)),
            lambda: table.register(W2, q(W2)),
            lambda: table.pause(W1, 30, Reason.MANUAL),
            lambda: table.resume(W1),
            lambda: table.pause(W2, 30, Reason.CHAOS, budget=Budget(1)),
            lambda: table.mark_down(W2, Reason.SHUTDOWN),
            lambda: table.heartbeat(W2, q(W2)),
            lambda: clock.advance(31) or table.resume_expired(),
            lambda: beat_while(table, clock, 100, W3) or table.reap(5),
            lambda: table.forget(W1),
        ]
        versions = [table.version()]
        for step in steps:
            # When each one runs
            events_before = len(table.events(1000))
            step()
            # Then the version grows, one event per changed entry, one announcement each
            versions.append(table.version())
            assert versions[-1] > versions[-2]
            new_events = table.events(1000)[: len(table.events(1000)) - events_before]
            announced = channel.messages()
            assert len(new_events) == versions[-1] - versions[-2]
            assert len(announced) == len(new_events)
            assert [ev.version for ev in new_events] == list(range(versions[-1], versions[-2], -1))
            for message in announced:
                if not message.get("forgotten"):
                    stored = json.loads(raw_of(table, message["worker"]) or "null")
                    assert stored is not None
                    assert message["version"] <= stored["version"]

    def test_announcement_is_the_stored_entry(self, table: FailureTable, channel: Channel) -> None:
        register(table, W1)
        channel.messages()
        table.pause(W1, 30, Reason.MANUAL, note="n")
        [message] = channel.messages()
        assert message == json.loads(raw_of(table, W1) or "")
        assert Entry.from_json(json.dumps(message)).state is State.PAUSED

    def test_event_log_is_capped(self, client: Any, clock: Any) -> None:
        # Given a table that keeps five events
        table = FailureTable(client, "capped", events_max=5)
        register(table, W1)
        # When twelve changes happen
        for _ in range(6):
            table.pause(W1, 10, Reason.MANUAL)
            table.resume(W1)
        # Then the newest five are kept, newest first
        assert client.llen(table.keys.events) == 5
        assert [e.version for e in table.events(100)] == [13, 12, 11, 10, 9]

    def test_events_limit(self, table: FailureTable) -> None:
        register(table, W1, W2, W3)
        assert [e.worker for e in table.events(2)] == [W3, W2]
        assert table.events(0) == []

    def test_event_times_are_floats(self, table: FailureTable) -> None:
        register(table, W1)
        table.pause(W1, 10, Reason.MANUAL)
        for event in table.events(10):
            assert isinstance(event.time, float)
            assert event.until is None or isinstance(event.until, float)

    def test_malformed_events_are_skipped(
        self, table: FailureTable, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Given a log with a good event among garbage
        register(table, W1)
        for raw in ("{oops", "[1, 2]", '"text"', "{}", json.dumps({"worker": "x", "time": 1})):
            table.client.lpush(table.keys.events, raw)
        # When it is read
        with caplog.at_level(logging.WARNING, logger="rfqueue.table"):
            events = table.events(100)
        # Then only the good one is returned and each bad one is logged
        assert [(e.worker, e.action) for e in events] == [(W1, "register")]
        assert sum("malformed event" in r.getMessage() for r in caplog.records) == 5

    def test_version_of_an_empty_table(self, table: FailureTable) -> None:
        assert table.version() == 0
        assert table.entries() == {}


MALFORMED = {
    "garbage": "{not json",
    "list": "[1, 2, 3]",
    "string": '"bad@h"',
    "missing_fields": json.dumps({"worker": "bad@h", "state": "paused"}),
    "wrong_state": json.dumps(
        {"worker": "bad@h", "queue": "q", "state": "sleeping", "since": 1, "version": 1}
    ),
    "text_until": json.dumps(
        {
            "worker": "bad@h",
            "queue": "q",
            "state": "paused",
            "reason": "chaos",
            "since": 1,
            "until": "soon",
            "version": 1,
        }
    ),
    "text_since": json.dumps(
        {"worker": "bad@h", "queue": "q", "state": "down", "since": "1", "version": 1}
    ),
    "other_name": json.dumps(
        {"worker": W1, "queue": "q", "state": "down", "since": 1, "version": 99}
    ),
}


@pytest.fixture(params=sorted(MALFORMED))
def malformed(request: pytest.FixtureRequest, table: FailureTable) -> str:
    """Three good workers and one malformed row stored under ``bad@h``."""
    register(table, W1, W2, W3)
    raw = MALFORMED[request.param]
    table.client.hset(table.keys.workers, "bad@h", raw)
    return raw


class TestMalformedEntries:
    def test_entries_skips_and_logs(
        self, table: FailureTable, malformed: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="rfqueue.table"):
            entries = table.entries()
        assert sorted(entries) == [W1, W2, W3]
        assert entries[W1].queue == q(W1)  # never shadowed by a row that claims its name
        assert any("bad@h" in r.getMessage() for r in caplog.records)

    def test_scripts_neither_crash_nor_touch_it(
        self, table: FailureTable, clock: Any, malformed: str
    ) -> None:
        # Given a pause that expires and a worker gone silent
        table.pause(W1, 10, Reason.CHAOS)
        beat_while(table, clock, 20, W1, W3)
        # When expire and reap run over the whole table
        table.resume_expired()
        reaped = table.reap(5)
        # Then they did their work on the good rows and left the bad one alone
        assert [e.worker for e in reaped] == [W2]
        assert raw_of(table, "bad@h") == malformed
        assert sorted(table.entries()) == [W1, W2, W3]

    def test_budget_ignores_it(self, table: FailureTable, malformed: str) -> None:
        # A malformed row is neither a worker that is out nor one that is up
        change = table.pause(W1, 10, Reason.CHAOS, budget=Budget(1, min_up=2))
        assert change.status == "ok"
        assert table.pause(W2, 10, Reason.CHAOS, budget=Budget(2, min_up=2)).status == "budget"
        assert raw_of(table, "bad@h") == malformed

    def test_changes_to_it_report_unknown(self, table: FailureTable, malformed: str) -> None:
        assert table.pause("bad@h", 10, Reason.MANUAL).status == "unknown"
        assert table.resume("bad@h").status == "unknown"
        assert table.mark_down("bad@h", Reason.SHUTDOWN).status == "unknown"
        assert raw_of(table, "bad@h") == malformed

    def test_a_beat_replaces_it(self, table: FailureTable, malformed: str) -> None:
        change = table.heartbeat("bad@h", "rfqueue.bad@h")
        assert change.status == "ok"
        e = entry_of(table, "bad@h")
        assert (e.state, e.queue) == (State.UP, "rfqueue.bad@h")

    def test_forget_removes_it(self, table: FailureTable, malformed: str) -> None:
        assert table.forget("bad@h").status == "ok"
        assert raw_of(table, "bad@h") is None


# -- the budget invariant over random operation sequences ------------------------------

WORKERS = [f"w{i}@h" for i in range(5)]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("pause"), st.sampled_from(WORKERS), st.floats(1, 100)),
        st.tuples(st.just("resume"), st.sampled_from(WORKERS), st.just(0.0)),
        st.tuples(st.just("down"), st.sampled_from(WORKERS), st.just(0.0)),
        st.tuples(st.just("beat"), st.sampled_from(WORKERS), st.just(0.0)),
        st.tuples(st.just("expire"), st.just(""), st.floats(0, 60)),
    ),
    max_size=40,
)
budgets = st.one_of(
    st.builds(Budget, st.integers(0, 5), st.integers(0, 5)),
    st.builds(Budget, st.floats(0.01, 0.99), st.integers(0, 5)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(budget=budgets, ops=operations)
def test_budget_invariant(budget: Budget, ops: list[tuple[str, str, float]]) -> None:
    """Pauses that all go through a Budget never hold more workers than it allows.

    Workers also go down and come back on their own (``down``, ``beat``), which no
    budget controls. So the invariant is: the workers that hold an unexpired pause
    (paused, or down and owing one) never exceed the budget's limit; and right after
    each successful pause, the workers not up fit the limit and ``min_up`` are up.
    """
    with server_time(1_000_000.0) as clock:
        _check_budget_invariant(budget, ops, clock)


def _check_budget_invariant(budget: Budget, ops: list[tuple[str, str, float]], clock: Any) -> None:
    table = FailureTable(fakeredis.FakeRedis(decode_responses=True), "p", 20)
    register(table, *WORKERS)
    limit = (
        int(budget.max_paused * len(WORKERS))
        if isinstance(budget.max_paused, float)
        else budget.max_paused
    )
    last_version = table.version()
    for op, worker, value in ops:
        if op == "pause":
            change = table.pause(worker, value, Reason.CHAOS, budget=budget)
            if change.changed:
                states = [e.effective_state(clock.now) for e in table.entries().values()]
                not_up = sum(s is not State.UP for s in states)
                assert not_up <= limit
                assert len(states) - not_up >= budget.min_up
        elif op == "resume":
            change = table.resume(worker)
        elif op == "down":
            change = table.mark_down(worker, Reason.HEARTBEAT)
        elif op == "beat":
            change = table.heartbeat(worker, q(worker))
        else:
            clock.advance(value)
            table.resume_expired()
            change = None
        entries = table.entries().values()
        holding = [e for e in entries if e.until is not None and e.until > clock.now]
        assert len(holding) <= limit
        version = table.version()
        if change is not None:
            assert (version > last_version) == change.changed
        assert version >= last_version
        last_version = version
        assert len(table.events(1000)) <= 20
