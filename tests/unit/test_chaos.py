"""The chaos job: tick order, who it pauses and for how long, the budget, dry runs, seeds."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import fakeredis
import pytest

from rfqueue.chaos import ChaosJob, ChaosRefused, TickReport
from rfqueue.control import RemoteControl
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Entry, Reason, State
from tests.unit.conftest import beat_while, server_time

WORKERS = [f"w{i}@h" for i in range(1, 6)]
W1, W2, W3, W4, W5 = WORKERS


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


def chaos_settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "chaos_probability": 1.0,
        "chaos_k": 1,
        "chaos_min_duration": 10.0,
        "chaos_max_duration": 20.0,
        "max_paused": 1,
        "min_up": 1,
    }
    values.update(changes)
    return Settings(**values)


class RecordingControl:
    """Stands in for RemoteControl: remembers the fast-path calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, State]] = []

    def sync(self, entry: Entry) -> None:
        self.calls.append((entry.worker, entry.state))


@pytest.fixture
def fleet(table: FailureTable, clock: Any) -> FailureTable:
    """Five up workers that beat just now (the clock stands still near the real time)."""
    clock.now = time.time()
    for worker in WORKERS:
        table.register(worker, q(worker))
    return table


@pytest.fixture
def control() -> RecordingControl:
    return RecordingControl()


def job(table: FailureTable, control: Any = None, **changes: Any) -> ChaosJob:
    return ChaosJob(chaos_settings(**changes), table, control)


def out(table: FailureTable) -> set[str]:
    now = table.now()
    return {w for w, e in table.entries().items() if e.effective_state(now) is not State.UP}


def resume_all(table: FailureTable) -> None:
    for worker, e in table.entries().items():
        if e.state is State.PAUSED:
            table.resume(worker)


class TestTickOrder:
    def test_resume_then_reap_then_pause(
        self, table: FailureTable, clock: Any, control: RecordingControl
    ) -> None:
        # Given, long ago, W1 paused for 10 s; since then W2 fell silent, the others beat
        now = time.time()
        clock.now = now - 1000
        for worker in WORKERS[:4]:
            table.register(worker, q(worker))
        table.pause(W1, 10, Reason.CHAOS)
        clock.now = now
        for worker in (W1, W3, W4):
            table.client.hset(table.keys.heartbeats, worker, now)
        events_before = len(table.events(1000))
        # When a tick runs (room for two out: W2 down plus one pause)
        report = job(table, control, max_paused=2, seed=1).tick()
        # Then it resumed W1, reaped W2 and paused one up worker, in that order
        assert [e.worker for e in report.resumed] == [W1]
        assert [e.worker for e in report.marked_down] == [W2]
        assert len(report.paused) == 1
        paused = report.paused[0].worker
        assert paused in {W1, W3, W4}
        new = list(reversed(table.events(1000)[: len(table.events(1000)) - events_before]))
        assert [(e.worker, e.action, e.reason) for e in new] == [
            (W1, "resume", "expired"),
            (W2, "down", "heartbeat"),
            (paused, "pause", "chaos"),
        ]
        # And the fast path told the resumed worker to consume and the paused one to stop
        assert control.calls == [(W1, State.UP), (paused, State.PAUSED)]

    def test_reaped_workers_count_before_pausing(self, table: FailureTable, clock: Any) -> None:
        # Given W2 silent for 12 s while W1 and W3 kept beating, and a budget of one out
        now = time.time()
        clock.now = now - 12
        for worker in WORKERS[:3]:
            table.register(worker, q(worker))
        for ago in (8, 4, 0):
            clock.now = now - ago
            table.heartbeat(W1, q(W1))
            table.heartbeat(W3, q(W3))
        # When a tick runs
        report = job(table, seed=2).tick()
        # Then W2 going down used the budget: nobody is paused on top of it
        assert [e.worker for e in report.marked_down] == [W2]
        assert report.paused == []
        assert len(report.refused) == 1 and report.refused[0][1] == "budget exhausted"
        assert out(table) == {W2}

    def test_tick_counter_grows(self, fleet: FailureTable) -> None:
        chaos = job(fleet, chaos_probability=0)
        assert [chaos.tick().tick for _ in range(3)] == [1, 2, 3]


class TestWhoAndHowLong:
    def test_probability_zero_pauses_nobody(self, fleet: FailureTable) -> None:
        chaos = job(fleet, chaos_probability=0, chaos_k=5, max_paused=4)
        reports = [chaos.tick() for _ in range(20)]
        assert all(r.paused == [] and r.refused == [] for r in reports)
        assert all(0 <= r.rolled < 1 for r in reports)
        assert out(fleet) == set()

    def test_probability_one_pauses_k(self, fleet: FailureTable) -> None:
        report = job(fleet, chaos_k=2, max_paused=2).tick()
        assert len(report.paused) == 2
        assert out(fleet) == {e.worker for e in report.paused}
        assert all(e.reason is Reason.CHAOS for e in report.paused)

    def test_protected_workers_are_never_chosen(self, fleet: FailureTable) -> None:
        # Given every worker but W5 protected, and room to pause all five
        chaos = job(fleet, chaos_k=5, max_paused=5, min_up=0, protected=(W1, W2, W3, W4))
        for _ in range(10):
            # When ticks run
            report = chaos.tick()
            # Then only W5 is ever paused
            assert [e.worker for e in report.paused] == [W5]
            resume_all(fleet)

    def test_budget_count(self, fleet: FailureTable) -> None:
        report = job(fleet, chaos_k=5, max_paused=2, min_up=1).tick()
        assert len(report.paused) == 2
        assert [why for _, why in report.refused] == ["budget exhausted"] * 3
        assert len(out(fleet)) == 2

    def test_budget_min_up(self, fleet: FailureTable) -> None:
        report = job(fleet, chaos_k=5, max_paused=5, min_up=4).tick()
        assert len(report.paused) == 1
        assert len(out(fleet)) == 1

    def test_budget_fraction(self, fleet: FailureTable) -> None:
        # 40 % of five workers is two
        report = job(fleet, chaos_k=5, max_paused=0.4, min_up=0).tick()
        assert len(report.paused) == 2

    def test_budget_holds_across_ticks(self, fleet: FailureTable) -> None:
        chaos = job(fleet, chaos_k=3, max_paused=2)
        for _ in range(10):
            chaos.tick()
            assert len(out(fleet)) <= 2

    def test_durations_within_bounds(self, fleet: FailureTable, clock: Any) -> None:
        chaos = job(fleet, chaos_min_duration=12.5, chaos_max_duration=17.5)
        seconds = []
        for _ in range(40):
            report = chaos.tick()
            seconds += [e.until - clock.now for e in report.paused]
            resume_all(fleet)
        assert len(seconds) == 40
        assert all(12.5 <= s <= 17.5 for s in seconds)
        assert len({round(s, 6) for s in seconds}) > 30  # random, not fixed


def seeded_run(
    seed: int, start: float, ticks: int = 8, first_tick: int = 1
) -> list[tuple[Any, ...]]:
    """Ticks on a brand-new server with a standing clock: what was chosen, for how long."""
    with server_time(start):
        return _seeded_ticks(seed, ticks, first_tick)


def _seeded_ticks(seed: int, ticks: int, first_tick: int) -> list[tuple[Any, ...]]:
    table = FailureTable(
        fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True), "seeded"
    )
    for worker in WORKERS:
        table.register(worker, q(worker))
    table.client.set(table.keys.chaos_ticks, first_tick - 1)
    chaos = job(table, seed=seed, chaos_probability=0.6, chaos_k=2, max_paused=2)
    out = []
    for _ in range(ticks):
        report = chaos.tick()
        out.append((report.tick, report.rolled, [(e.worker, e.until) for e in report.paused]))
        resume_all(table)
    return out


class TestSeed:
    def test_same_seed_same_choices_on_another_server(self) -> None:
        start = float(int(time.time()))
        first = seeded_run(42, start)
        assert first == seeded_run(42, start)
        assert any(paused for *_, paused in first)

    def test_the_tick_number_is_part_of_the_seed(self) -> None:
        # Given one process that ran ticks 1-8 and another whose first tick is number 5
        start = float(int(time.time()))
        full = seeded_run(42, start)
        late = seeded_run(42, start, ticks=4, first_tick=5)
        # Then tick N makes the same choices whoever runs it, and the ticks differ
        assert late == full[4:]
        assert len({rolled for _, rolled, _ in full}) == len(full)

    def test_other_seed_other_choices(self) -> None:
        start = float(int(time.time()))
        assert seeded_run(42, start) != seeded_run(43, start)


class TestDryRun:
    def test_changes_nothing_but_the_event_log(
        self, table: FailureTable, clock: Any, control: RecordingControl
    ) -> None:
        # Given an expired pause (W1) and a silent worker (W2) among five
        now = time.time()
        clock.now = now - 1000
        for worker in WORKERS:
            table.register(worker, q(worker))
        table.pause(W1, 10, Reason.CHAOS)
        clock.now = now
        for worker in (W1, W3, W4, W5):
            table.client.hset(table.keys.heartbeats, worker, now)
        workers = table.client.hgetall(table.keys.workers)
        beats = table.client.hgetall(table.keys.heartbeats)
        version = table.version()
        # When a dry-run tick would pause two
        report = job(table, control, dry_run=True, chaos_k=2, max_paused=3, seed=5).tick()
        # Then no entry changed and no worker was told anything
        assert table.client.hgetall(table.keys.workers) == workers
        assert table.client.hgetall(table.keys.heartbeats) == beats
        assert table.version() == version
        assert (report.paused, report.resumed, report.marked_down) == ([], [], [])
        assert control.calls == []
        # But the would-be pauses are reported and recorded as events
        assert len(report.would_pause) == 2
        assert all(10 <= s <= 20 for _, s in report.would_pause)
        recorded = [e for e in table.events(100) if e.action == "dry_run_pause"]
        assert sorted(e.worker for e in recorded) == sorted(w for w, _ in report.would_pause)
        assert all(e.reason == "chaos" and e.until is not None for e in recorded)
        assert any(line.startswith("would pause ") for line in report.lines())

    def test_dry_run_respects_the_budget(self, fleet: FailureTable) -> None:
        # A preview must not promise more than the real tick would do
        report = job(fleet, dry_run=True, chaos_k=4, max_paused=1).tick()
        assert len(report.would_pause) == 1
        assert [why for _, why in report.refused] == ["budget exhausted"] * 3

    def test_dry_run_events_are_capped(self, client: Any, clock: Any) -> None:
        clock.now = time.time()
        table = FailureTable(client, "capped", events_max=3)
        for worker in WORKERS:
            table.register(worker, q(worker))
        chaos = job(table, dry_run=True, chaos_k=2, max_paused=2)
        for _ in range(3):
            chaos.tick()
        assert client.llen(table.keys.events) == 3


class TestFleetCheck:
    def test_refuses_more_than_the_fleet(self, table: FailureTable, clock: Any) -> None:
        # Given three workers and max_paused 10
        clock.now = time.time()
        for worker in WORKERS[:3]:
            table.register(worker, q(worker))
        before = (table.client.hgetall(table.keys.workers), table.events(100))
        chaos = job(table, max_paused=10)
        # When a tick runs, Then it refuses, naming the setting, and writes nothing
        with pytest.raises(ChaosRefused, match=r"^rfqueue_max_paused: 10 .*\(3 workers\)"):
            chaos.tick()
        assert (table.client.hgetall(table.keys.workers), table.events(100)) == before
        assert table.client.get(table.keys.chaos_ticks) is None

    def test_fleet_size_and_fractions_are_fine(self, fleet: FailureTable) -> None:
        entries = fleet.entries()
        job(fleet, max_paused=5).check_fleet(entries)
        job(fleet, max_paused=0.9).check_fleet(entries)
        with pytest.raises(ChaosRefused):
            job(fleet, max_paused=6).check_fleet(entries)

    def test_empty_table(self, table: FailureTable) -> None:
        with pytest.raises(ChaosRefused):
            job(table).tick()


class TestRemoteControl:
    def entry(self) -> Entry:
        return Entry(W1, q(W1), State.PAUSED, Reason.CHAOS, 1.0, 2.0, 1)

    def test_without_an_app_it_does_nothing(self) -> None:
        RemoteControl(None).sync(self.entry())

    def test_one_sync_command_to_the_one_worker_whatever_its_pools(self) -> None:
        # One stateless command: Celery runs remote-control callbacks in no set order, so
        # a cancel per pool and an add per pool could cross (see rfqueue.worker.remote).
        sent: list[tuple[Any, ...]] = []

        class App:
            class control:  # mimics app.control
                @staticmethod
                def broadcast(command: str, **kwargs: Any) -> None:
                    sent.append((command, kwargs))

        paused = dataclasses.replace(self.entry(), pools=("audio", "video"))
        RemoteControl(App()).sync(paused)
        RemoteControl(App()).sync(dataclasses.replace(paused, state=State.UP))
        assert sent == [("rfqueue_sync", {"destination": [W1], "reply": False})] * 2

    def test_broker_errors_are_logged_not_raised(self, caplog: pytest.LogCaptureFixture) -> None:
        class App:
            class control:  # mimics app.control
                @staticmethod
                def broadcast(command: str, **kwargs: Any) -> None:
                    raise ConnectionRefusedError("broker down")

        with caplog.at_level(logging.WARNING, logger="rfqueue.control"):
            RemoteControl(App()).sync(self.entry())
        assert W1 in caplog.text and "broker down" in caplog.text

    def test_chaos_without_control_uses_the_no_op(self, fleet: FailureTable) -> None:
        chaos = ChaosJob(chaos_settings(), fleet)
        assert isinstance(chaos.control, RemoteControl) and chaos.control.app is None
        assert len(chaos.tick().paused) == 1


def test_report_lines() -> None:
    assert TickReport(tick=1).lines() == ["nothing to do"]
    e = Entry(W1, q(W1), State.UP, None, 1.0, None, 1)
    report = TickReport(
        tick=2,
        resumed=[e],
        marked_down=[e],
        refused=[(W2, "budget exhausted")],
        would_pause=[(W3, 12.345)],
    )
    assert report.lines() == [
        f"resumed {W1} (pause expired)",
        f"marked {W1} down (no heartbeat)",
        f"would pause {W3} for 12.3s (dry run)",
        f"did not pause {W2}: budget exhausted",
    ]


class TestScheduledTask:
    """``run_tick``, the body of the ``rfqueue.chaos`` task: it skips, it never crashes."""

    @pytest.fixture
    def app(self, use_fake_redis: None) -> Any:
        from celery import Celery

        app = Celery("t", broker="memory://", set_as_current=False)
        app.conf.rfqueue_namespace = "t"
        return app

    def test_runs_with_the_settings_beat_sent(
        self, app: Any, fleet: FailureTable, dump: Any
    ) -> None:
        from rfqueue.chaos import chaos_overrides, run_tick

        # Given beat's chaos settings: always pause one worker for 10..20 s
        overrides = chaos_overrides(chaos_settings())
        # When a worker runs the scheduled tick
        result = run_tick(app, overrides)
        # Then it paused exactly one worker, as beat asked
        assert result["tick"] == 1
        assert sum(line.startswith("paused ") for line in result["actions"]) == 1
        assert sum(e.state is State.PAUSED for e in fleet.entries().values()) == 1

    @pytest.mark.parametrize(
        "overrides, why",
        [
            ({"bogus": 1}, "unknown arguments ['bogus']"),
            ({"chaos_probability": 2}, "rfqueue_chaos_probability:"),
            ({"max_paused": 9}, "rfqueue_max_paused: 9 is larger than the fleet"),
            ({"pool_max_paused": ["audio=1"]}, "rfqueue_pool_max_paused: no registered worker"),
            ({"pool_min_up": "video=x"}, "rfqueue_pool_min_up: video needs a whole number"),
        ],
    )
    def test_bad_arguments_skip_the_tick_and_change_nothing(
        self,
        app: Any,
        fleet: FailureTable,
        dump: Any,
        overrides: dict[str, Any],
        why: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        from rfqueue.chaos import run_tick

        before = dump(fleet.client)
        with caplog.at_level(logging.ERROR, logger="rfqueue.chaos"):
            result = run_tick(app, overrides)
        assert why in result["skipped"]
        assert any("tick skipped" in r.getMessage() for r in caplog.records)
        assert dump(fleet.client) == before

    def test_unreadable_table_skips_the_tick(
        self, app: Any, fleet: FailureTable, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import redis

        from rfqueue.chaos import run_tick

        # Given a table that cannot be read
        def refuse(self: Any) -> Any:
            raise redis.ConnectionError("Connection refused")

        monkeypatch.setattr(FailureTable, "read", refuse)
        # When the tick runs, then it skips instead of raising or acting
        result = run_tick(app, {"chaos_probability": 1.0})
        assert result["skipped"].startswith("cannot read the failure table")


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_departed_worker_does_not_block_chaos(
    fleet: FailureTable, clock: Any, dry_run: bool
) -> None:
    # Given max_paused=1 and one worker down and silent for 60 s while the others beat
    gone, *beating = WORKERS
    fleet.mark_down(gone, Reason.HEARTBEAT)
    beat_while(fleet, clock, 60, *beating)
    # Then it has departed after 50 s (10 x heartbeat_timeout): chaos may pause one more
    report = job(fleet, dry_run=dry_run).tick()
    assert len(report.paused or report.would_pause) == 1
    # While with departed_after past its silence it still counts: the budget is spent
    for worker in beating:
        fleet.resume(worker)
    report = job(fleet, dry_run=dry_run, departed_after=120).tick()
    assert not (report.paused or report.would_pause)
    assert [why for _, why in report.refused] == ["budget exhausted"]
