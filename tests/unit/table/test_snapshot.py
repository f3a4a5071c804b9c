"""Snapshot: the router's local copy of the table, kept fresh by a thread, open on failure."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis.commands_mixins.server_mixin
import pytest
import redis

import rfqueue.log
import rfqueue.table.snapshot
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason, State
from rfqueue.table.snapshot import Snapshot
from tests.unit.conftest import beat_while

W1, W2, W3, W4 = "w1@h", "w2@h", "w3@h", "w4@h"


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


class FakeTime:
    """Stands in for the ``time`` module inside rfqueue.table.snapshot and rfqueue.log."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = time.time()

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(rfqueue.table.snapshot, "time", fake)
    monkeypatch.setattr(rfqueue.log, "time", fake)
    return fake


@pytest.fixture
def fleet(table: FailureTable) -> FailureTable:
    """Four up workers, registered out of name order."""
    for worker in (W3, W1, W4, W2):
        table.register(worker, q(worker))
    return table


@pytest.fixture
def snapshots(stop: Callable[[Snapshot], None]) -> Iterator[Callable[..., Snapshot]]:
    made: list[Snapshot] = []

    def make(table: FailureTable, refresh_interval: float = 1.0) -> Snapshot:
        snap = Snapshot(table, refresh_interval)
        made.append(snap)
        return snap

    yield make
    for snap in made:
        stop(snap)


def broken_reads(table: FailureTable, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make every table read fail as if Redis were gone; return the times of the attempts."""
    calls: list[float] = []

    def fail() -> Any:
        calls.append(time.monotonic())
        raise redis.ConnectionError("Error 111 connecting to redis: Connection refused.")

    monkeypatch.setattr(table, "read", fail)
    return calls


class TestLoad:
    def test_initial_load(self, fleet: FailureTable, snapshots: Callable[..., Snapshot]) -> None:
        # Given a new snapshot of a table of four workers
        snap = snapshots(fleet)
        assert not snap.loaded
        assert snap.up_queues == ()
        # When it is refreshed
        assert snap.refresh() is True
        # Then it holds every worker; queues are in worker-name order
        assert snap.loaded
        assert snap.version == fleet.version() == 4
        assert sorted(snap.entries) == [W1, W2, W3, W4]
        assert snap.up_queues == tuple(q(w) for w in (W1, W2, W3, W4))
        assert snap.all_queues == snap.up_queues

    def test_up_queues_skip_paused_and_down_but_not_expired(
        self, fleet: FailureTable, clock: Any, snapshots: Callable[..., Snapshot]
    ) -> None:
        # Given W1 paused for a minute, W2 down, and W3 paused in the past (expired,
        # never resumed by anyone)
        clock.now = time.time()
        fleet.pause(W1, 60, Reason.MANUAL)
        fleet.mark_down(W2, Reason.SHUTDOWN)
        clock.now = time.time() - 100
        fleet.pause(W3, 10, Reason.CHAOS)
        clock.now = time.time()
        assert fleet.entries()[W3].state is State.PAUSED
        # When the snapshot loads
        snap = snapshots(fleet)
        snap.refresh()
        # Then only W3 (expired) and W4 may be chosen; every queue is still known
        assert snap.up_queues == (q(W3), q(W4))
        assert snap.all_queues == tuple(q(w) for w in (W1, W2, W3, W4))

    def test_listeners_hear_of_changes_only(
        self, fleet: FailureTable, snapshots: Callable[..., Snapshot]
    ) -> None:
        snap = snapshots(fleet)
        heard: list[int] = []
        snap.add_listener(lambda s: heard.append(s.version))
        snap.refresh()
        snap.refresh()  # nothing changed
        fleet.pause(W1, 60, Reason.MANUAL)
        snap.refresh()
        assert heard == [4, 5]

    def test_a_change_right_after_a_read_is_not_lost(
        self,
        fleet: FailureTable,
        monkeypatch: pytest.MonkeyPatch,
        snapshots: Callable[..., Snapshot],
    ) -> None:
        # Given a change (W1 paused) that lands right after the snapshot's read
        snap = snapshots(fleet)
        other = FailureTable(fleet.client, fleet.keys.namespace)
        injected: list[Any] = []

        def inject_after(read: Callable[[], Any]) -> Callable[[], Any]:
            def wrapped() -> Any:
                result = read()
                if not injected:
                    injected.append(other.pause(W1, 60, Reason.MANUAL))
                return result

            return wrapped

        monkeypatch.setattr(fleet, "read", inject_after(fleet.read))
        seen: list[bool] = []
        snap.add_listener(lambda s: seen.append(q(W1) in s.up_queues))
        # When it refreshes, and again after the change's announcement
        snap.refresh()
        snap.refresh()
        # Then the listeners were told of the state that includes the pause
        assert injected
        assert seen[-1] is False
        assert q(W1) not in snap.up_queues


class TestThread:
    def test_change_arrives_by_pubsub_quickly(
        self, fleet: FailureTable, clock: Any, snapshots: Callable[..., Snapshot], poll: Any
    ) -> None:
        # Given a running snapshot whose periodic refresh is far away
        clock.now = time.time()
        snap = snapshots(fleet, refresh_interval=30)
        snap.ensure_started()
        assert q(W1) in snap.up_queues
        # When W1 is paused
        started = time.monotonic()
        fleet.pause(W1, 60, Reason.MANUAL)
        # Then the snapshot drops it well within a second
        assert poll(lambda: q(W1) not in snap.up_queues, timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert snap.version == fleet.version()

    def test_a_running_copy_follows_changes_without_reading_the_table(
        self,
        fleet: FailureTable,
        clock: Any,
        snapshots: Callable[..., Snapshot],
        poll: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Given a running snapshot whose periodic refresh is far away
        clock.now = time.time()
        snap = snapshots(fleet, refresh_interval=30)
        snap.ensure_started()
        reads = TestAnnouncedChanges.counting_reads(fleet, monkeypatch)
        # When W1 is paused, then resumed
        fleet.pause(W1, 60, Reason.MANUAL)
        assert poll(lambda: q(W1) not in snap.up_queues, timeout=1.0)
        fleet.resume(W1)
        assert poll(lambda: q(W1) in snap.up_queues, timeout=1.0)
        # Then both arrived by the channel alone: no full read of the table
        assert reads == []
        assert snap.version == fleet.version()

    def test_pause_end_triggers_a_refresh(
        self,
        fleet: FailureTable,
        monkeypatch: pytest.MonkeyPatch,
        snapshots: Callable[..., Snapshot],
        poll: Any,
    ) -> None:
        # Given a server whose clock runs, a running snapshot and a pause of 0.3 s, with
        # no refresh due for 30 s
        monkeypatch.setattr(fakeredis.commands_mixins.server_mixin, "time", time)
        fleet.pause(W1, 0.3, Reason.MANUAL)
        snap = snapshots(fleet, refresh_interval=30)
        snap.ensure_started()
        assert q(W1) not in snap.up_queues
        # Then W1 is back in the up queues soon after its pause ends, nobody resuming it
        assert poll(lambda: q(W1) in snap.up_queues, timeout=2.0)
        assert fleet.entries()[W1].state is State.PAUSED

    def test_ensure_started_once_and_stop(
        self, fleet: FailureTable, snapshots: Callable[..., Snapshot]
    ) -> None:
        snap = snapshots(fleet, refresh_interval=0.2)
        snap.ensure_started()
        thread = snap._thread
        snap.ensure_started()
        assert snap._thread is thread
        assert thread is not None and thread.is_alive()
        snap.stop()
        assert not thread.is_alive()
        assert not snap.started
        snap.ensure_started()
        assert snap._thread is not thread and snap.started

    def test_thread_backs_off_while_reads_fail(
        self,
        fleet: FailureTable,
        monkeypatch: pytest.MonkeyPatch,
        snapshots: Callable[..., Snapshot],
        poll: Any,
    ) -> None:
        # Given reads that fail while the channel still works
        calls = broken_reads(fleet, monkeypatch)
        snap = snapshots(fleet, refresh_interval=0.2)
        # When the thread runs for a few attempts
        snap.ensure_started()
        assert poll(lambda: len(calls) >= 6, timeout=5.0)
        snap.stop()
        # Then it retries at the refresh pace, not in a busy loop
        assert calls[5] - calls[2] >= 0.3, [round(b - a, 4) for a, b in itertools.pairwise(calls)]

    def test_reconnects_when_the_channel_fails(
        self,
        fleet: FailureTable,
        clock: Any,
        monkeypatch: pytest.MonkeyPatch,
        snapshots: Callable[..., Snapshot],
        poll: Any,
    ) -> None:
        # Given a channel that fails on the first subscribe
        clock.now = time.time()
        real_pubsub = fleet.client.pubsub
        attempts: list[int] = []

        def flaky_pubsub(**kwargs: Any) -> Any:
            attempts.append(1)
            if len(attempts) == 1:
                raise redis.ConnectionError("connection reset")
            return real_pubsub(**kwargs)  # type: ignore[no-untyped-call]

        monkeypatch.setattr(fleet.client, "pubsub", flaky_pubsub)
        snap = snapshots(fleet, refresh_interval=0.1)
        snap.ensure_started()
        # Then it subscribes again and still hears of changes
        assert poll(lambda: len(attempts) >= 2, timeout=3.0)
        fleet.pause(W2, 60, Reason.MANUAL)
        assert poll(lambda: q(W2) not in snap.up_queues, timeout=2.0)


class TestFailOpen:
    def test_keeps_the_last_copy(
        self,
        fleet: FailureTable,
        monkeypatch: pytest.MonkeyPatch,
        fake_time: FakeTime,
        snapshots: Callable[..., Snapshot],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        # Given a loaded snapshot with W1 paused
        fleet.pause(W1, 600, Reason.MANUAL)
        snap = snapshots(fleet)
        assert snap.refresh()
        before = (snap.up_queues, snap.all_queues, snap.version, dict(snap.entries))
        assert snap.age() == 0
        # When Redis goes away
        broken_reads(fleet, monkeypatch)
        caplog.set_level(logging.WARNING, logger="rfqueue.table.snapshot")
        results = []
        for _ in range(5):
            fake_time.advance(2)
            results.append(snap.refresh())
        # Then every refresh fails, the copy is kept and grows old
        assert results == [False] * 5
        assert (snap.up_queues, snap.all_queues, snap.version, dict(snap.entries)) == before
        assert snap.age() == pytest.approx(10)
        # And one warning was logged, not five
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "cannot read the failure table" in warnings[0]
        assert "routing from the last copy" in warnings[0]

    def test_warning_is_rate_limited_to_once_per_30s(
        self,
        fleet: FailureTable,
        monkeypatch: pytest.MonkeyPatch,
        fake_time: FakeTime,
        snapshots: Callable[..., Snapshot],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        snap = snapshots(fleet)
        snap.refresh()
        broken_reads(fleet, monkeypatch)
        caplog.set_level(logging.WARNING, logger="rfqueue.table.snapshot")
        snap.refresh()  # warns
        fake_time.advance(29)
        snap.refresh()  # held back
        snap.refresh()  # held back
        assert len(caplog.records) == 1
        fake_time.advance(1.5)
        snap.refresh()  # 30.5 s after the first: warns again, counting the held back
        assert len(caplog.records) == 2
        assert "2 similar warnings held back" in caplog.records[1].getMessage()

    def test_recovers_when_redis_is_back(
        self,
        fleet: FailureTable,
        monkeypatch: pytest.MonkeyPatch,
        fake_time: FakeTime,
        snapshots: Callable[..., Snapshot],
    ) -> None:
        # Given a snapshot that lost Redis
        snap = snapshots(fleet)
        snap.refresh()
        with monkeypatch.context() as patch:
            broken_reads(fleet, patch)
            fake_time.advance(5)
            assert not snap.refresh()
            # while Redis was away, W4 went down
            FailureTable(fleet.client, fleet.keys.namespace).mark_down(W4, Reason.SHUTDOWN)
            assert q(W4) in snap.up_queues
        # When Redis works again
        assert snap.refresh() is True
        # Then the copy is current and young
        assert q(W4) not in snap.up_queues
        assert snap.age() == 0
        assert snap.version == fleet.version()

    def test_unreachable_from_the_start(
        self,
        fleet: FailureTable,
        monkeypatch: pytest.MonkeyPatch,
        snapshots: Callable[..., Snapshot],
    ) -> None:
        broken_reads(fleet, monkeypatch)
        snap = snapshots(fleet)
        assert snap.refresh() is False
        assert not snap.loaded
        assert snap.up_queues == ()
        assert snap.age() == float("inf")


class TestSilentWorkers:
    """A worker whose heartbeat stopped is not routed to, even before a tick marks it down."""

    def test_silent_worker_is_not_routable_and_returns_when_it_beats(
        self, fleet: FailureTable, clock: Any, fake_time: FakeTime
    ) -> None:
        # Given a snapshot with a 5 s heartbeat timeout, and W2 silent for 6 s
        clock.now = fake_time.wall
        snap = Snapshot(fleet, refresh_interval=1.0, heartbeat_timeout=5.0)
        for _ in range(6):
            clock.now += 1
            fake_time.advance(1)
            for worker in (W1, W3, W4):
                fleet.heartbeat(worker, q(worker))
        # When it refreshes
        assert snap.refresh()
        # Then W2 is still up in the table, but not among the routable queues
        assert snap.entries[W2].state is State.UP
        assert q(W2) not in snap.up_queues and q(W2) in snap.all_queues
        assert set(snap.up_queues) == {q(W1), q(W3), q(W4)}
        # When W2 beats again, it is routable again
        fleet.heartbeat(W2, q(W2))
        assert snap.refresh()
        assert q(W2) in snap.up_queues

    def test_an_outage_does_not_age_the_heartbeats(
        self,
        fleet: FailureTable,
        clock: Any,
        fake_time: FakeTime,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Given a fresh snapshot of four beating workers
        clock.now = fake_time.wall
        snap = Snapshot(fleet, refresh_interval=1.0, heartbeat_timeout=5.0)
        assert snap.refresh() and len(snap.up_queues) == 4
        # When Redis is away for a minute
        broken_reads(fleet, monkeypatch)
        fake_time.advance(60)
        # Then the copy it routes from still has every worker up (fail-open)
        assert snap.refresh() is False
        assert len(snap.up_queues) == 4

    def test_without_a_timeout_silence_is_ignored(
        self, fleet: FailureTable, clock: Any, fake_time: FakeTime
    ) -> None:
        clock.now = fake_time.wall
        snap = Snapshot(fleet, refresh_interval=1.0)
        fake_time.advance(600)
        assert snap.refresh() and len(snap.up_queues) == 4


class TestAnnouncedChanges:
    """A change announced right after the copy's version is applied without a read."""

    @staticmethod
    def announced(table: FailureTable, change: Callable[[], Any]) -> list[dict[str, Any]]:
        """The messages the table's change channel carries while ``change()`` runs."""
        pubsub = table.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(table.keys.channel)
        try:
            change()
            messages = []
            deadline = time.monotonic() + 0.3  # None also stands for a swallowed subscribe
            while time.monotonic() < deadline:
                message = pubsub.get_message(timeout=0.05)
                if message is not None:
                    messages.append(message)
            return messages
        finally:
            pubsub.close()

    @staticmethod
    def counting_reads(table: FailureTable, monkeypatch: pytest.MonkeyPatch) -> list[int]:
        reads: list[int] = []
        real = table.read

        def read() -> Any:
            reads.append(1)
            return real()

        monkeypatch.setattr(table, "read", read)
        return reads

    def test_consecutive_changes_apply_without_a_read(
        self, fleet: FailureTable, clock: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a loaded copy
        clock.now = time.time()
        snap = Snapshot(fleet, refresh_interval=60)
        assert snap.refresh()
        reads = self.counting_reads(fleet, monkeypatch)
        heard: list[int] = []
        snap.add_listener(lambda s: heard.append(s.version))
        # When W1 is paused and W2 marked down, and their announcements are applied
        messages = self.announced(
            fleet,
            lambda: (fleet.pause(W1, 60, Reason.MANUAL), fleet.mark_down(W2, Reason.SHUTDOWN)),
        )
        assert snap.apply(messages)
        # Then the copy matches the table, with no read, and listeners heard once
        assert reads == []
        assert snap.version == fleet.version() and heard == [fleet.version()]
        assert snap.entries[W1].state is State.PAUSED and snap.entries[W2].state is State.DOWN
        assert set(snap.up_queues) == {q(W3), q(W4)}
        assert {k: v.state for k, v in snap.entries.items()} == {
            k: v.state for k, v in fleet.entries().items()
        }

    def test_a_gap_asks_for_a_read_and_changes_nothing(
        self, fleet: FailureTable, clock: Any
    ) -> None:
        clock.now = time.time()
        snap = Snapshot(fleet, refresh_interval=60)
        assert snap.refresh()
        before = (snap.version, snap.up_queues)
        # Given two changes of which only the second was heard
        messages = self.announced(
            fleet, lambda: (fleet.pause(W1, 60, Reason.MANUAL), fleet.pause(W2, 60, Reason.MANUAL))
        )
        # Then applying it is refused: the copy needs a full read
        assert not snap.apply(messages[1:])
        assert (snap.version, snap.up_queues) == before

    def test_a_forgotten_worker_or_junk_asks_for_a_read(
        self, fleet: FailureTable, clock: Any
    ) -> None:
        clock.now = time.time()
        fleet.mark_down(W4, Reason.SHUTDOWN)
        snap = Snapshot(fleet, refresh_interval=60)
        assert snap.refresh()
        assert not snap.apply(self.announced(fleet, lambda: fleet.forget(W4)))
        assert not snap.apply([{"type": "message", "data": "not json"}])

    def test_announcements_already_read_are_skipped(self, fleet: FailureTable, clock: Any) -> None:
        clock.now = time.time()
        snap = Snapshot(fleet, refresh_interval=60)
        messages = self.announced(fleet, lambda: fleet.pause(W1, 60, Reason.MANUAL))
        assert snap.refresh()  # the read already holds the pause
        version = snap.version
        assert snap.apply(messages)
        assert snap.version == version and q(W1) not in snap.up_queues

    def test_a_worker_that_registers_is_routable_at_once(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Given a copy with a 5 s heartbeat timeout and a fleet of one
        clock.now = time.time()
        table.register(W1, q(W1))
        snap = Snapshot(table, refresh_interval=60, heartbeat_timeout=5.0)
        assert snap.refresh()
        # When W2 registers (its first beat is in the same step)
        assert snap.apply(self.announced(table, lambda: table.register(W2, q(W2))))
        # Then it is routable without waiting for a read to bring its heartbeat
        assert set(snap.up_queues) == {q(W1), q(W2)}

    @pytest.mark.parametrize("ending", ["expired", "lifted"])
    def test_a_pause_that_ends_does_not_revive_a_silent_worker(
        self, table: FailureTable, clock: Any, ending: str
    ) -> None:
        """Only a heartbeat is a heartbeat: the ``since`` of a resume is no sign of life."""
        # Given W2 paused for 30 s, then silent (dead) while W1 beats, and a copy read then
        clock.now = time.time()
        for worker in (W1, W2):
            table.register(worker, q(worker))
        table.pause(W2, 30, Reason.CHAOS)
        beat_while(table, clock, 10, W1)
        snap = Snapshot(table, refresh_interval=60, heartbeat_timeout=5.0)
        assert snap.refresh() and snap.up_queues == (q(W1),)
        # When its pause ends (by a tick's expiry, or lifted by hand) and that is announced
        if ending == "expired":
            beat_while(table, clock, 25, W1)
            change: Callable[[], Any] = table.resume_expired
        else:
            change = lambda: table.resume(W2)  # noqa: E731
        assert snap.apply(self.announced(table, change))
        # Then the dead worker is up in the copy, yet still silent: not routable
        assert snap.entries[W2].state is State.UP
        assert snap.up_queues == (q(W1),)
