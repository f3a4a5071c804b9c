"""``rfqueue drain`` and ``rfqueue check``: what they write, print and exit with."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import Result

import rfqueue.cli
from rfqueue.cli.lifecycle import CHECK_EXIT
from rfqueue.control import RemoteControl
from rfqueue.table import FailureTable
from rfqueue.table.entry import Entry, Reason, State
from tests.unit.cli import test_cli
from tests.unit.cli.test_cli import W1, W2, W3, q, run

pytestmark = pytest.mark.usefixtures("use_fake_redis")

#: three up workers in the default namespace (test_cli's fixture)
fleet = test_cli.fleet


class FakeWorkers(RemoteControl):
    """Remote control whose workers answer from dicts instead of a broker."""

    def __init__(self) -> None:
        super().__init__(None)
        self.sent: list[tuple[str, State]] = []
        self.queues: dict[str, list[str]] = {}
        #: what each ask of ``held`` answers, in turn (the last one repeats)
        self.running: dict[str, list[int | None]] = {}

    def sync(self, entry: Entry) -> None:
        """The worker looks at its entry: it stops consuming its queue unless up."""
        self.sent.append((entry.worker, entry.state))
        if entry.state is not State.UP:
            queues = self.queues.get(entry.worker, [])
            self.queues[entry.worker] = [name for name in queues if name != entry.queue]

    def held(self, worker: str, timeout: float = 1.0) -> int | None:
        answers = self.running.get(worker, [None])
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def consumed(self, worker: str, timeout: float = 1.0) -> list[str] | None:
        return self.queues.get(worker)


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> FakeWorkers:
    fake = FakeWorkers()
    fake.queues = {w: [q(w), "rfqueue-control"] for w in (W1, W2, W3)}
    monkeypatch.setattr(rfqueue.cli.Context, "control", lambda self: fake)
    monkeypatch.setattr("rfqueue.cli.lifecycle.POLL", 0.01)
    return fake


class TestDrain:
    def test_drain_writes_draining_and_cancels(
        self, fleet: FailureTable, workers: FakeWorkers
    ) -> None:
        result = run("drain", W1, "--reason", "deploy")
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"draining {W1} (at the latest until ")
        entry = fleet.entries()[W1]
        assert (entry.state, entry.reason, entry.note) == (State.DRAINING, Reason.MANUAL, "deploy")
        assert entry.until is not None  # an operator's drain ends by itself (max_pause)
        assert workers.sent == [(W1, State.DRAINING)]

    def test_wait_returns_once_it_runs_nothing(
        self, fleet: FailureTable, workers: FakeWorkers
    ) -> None:
        workers.running[W1] = [2, 1, None, 0]
        result = run("drain", W1, "--wait")
        assert result.exit_code == 0, result.output
        assert f"drained {W1} after " in result.output
        assert workers.running[W1] == [0]  # it asked until the worker said 0

    def test_wait_times_out_with_exit_1(self, fleet: FailureTable, workers: FakeWorkers) -> None:
        workers.running[W1] = [1]
        code = rfqueue.cli.main(["drain", W1, "--wait", "--timeout", "0.2"])
        assert code == 1

    def test_wait_ends_when_the_worker_stops(
        self, fleet: FailureTable, workers: FakeWorkers
    ) -> None:
        fleet.mark_down(W1, Reason.SHUTDOWN)
        result = run("drain", W1, "--wait")
        assert (result.exit_code, result.output) == (0, f"{W1} is down: nothing to drain\n")

    def test_resume_undoes_it(self, fleet: FailureTable, workers: FakeWorkers) -> None:
        run("drain", W1)
        result = run("resume", W1)
        assert (result.exit_code, result.output) == (0, f"resumed {W1}\n")
        assert fleet.entries()[W1].state is State.UP
        assert workers.sent[-1] == (W1, State.UP)

    def test_a_shutting_down_worker_is_not_resumed(
        self, fleet: FailureTable, workers: FakeWorkers
    ) -> None:
        fleet.drain(W1, Reason.SHUTDOWN)
        result = run("resume", W1)
        assert result.output == f"{W1} is shutting down: it cannot be resumed\n"
        assert fleet.entries()[W1].state is State.DRAINING

    def test_status_shows_draining(self, fleet: FailureTable, workers: FakeWorkers) -> None:
        fleet.drain(W2, Reason.SHUTDOWN)
        row = next(ln for ln in run("status").output.splitlines() if q(W2) in ln)
        assert " draining " in row and "shutdown" in row


class TestCheck:
    def check(self, worker: str, *options: str) -> Result:
        return run("check", worker, *options)

    def test_exit_codes(self, fleet: FailureTable, workers: FakeWorkers) -> None:
        fleet.drain(W1, Reason.MANUAL, seconds=60)
        fleet.pause(W2, 60, Reason.MANUAL)
        fleet.register("w4@h", q("w4@h"))
        fleet.mark_down("w4@h", Reason.SHUTDOWN)
        workers.queues[W3] = ["rfqueue-control"]  # up in the table, its queue cancelled
        answers = {
            W1: ("draining", 3),
            W2: ("paused", 4),
            "w4@h": ("down", 5),
            "nobody@h": ("unknown (not in the table)", 6),
            W3: ("not consuming (its queue is cancelled)", 7),
        }
        for worker, (said, code) in answers.items():
            result = self.check(worker)
            assert (result.exit_code, result.output) == (code, f"{worker}: {said}\n")
        assert set(CHECK_EXIT.values()) == {0, 3, 4, 5, 6, 7}

    def test_ready(self, fleet: FailureTable, workers: FakeWorkers) -> None:
        result = self.check(W1)
        assert (result.exit_code, result.output) == (0, f"{W1}: ready\n")

    def test_no_answer_is_not_ready_unless_table_only(
        self, fleet: FailureTable, workers: FakeWorkers
    ) -> None:
        del workers.queues[W1]
        assert self.check(W1).exit_code == 7
        assert self.check(W1, "--table-only").exit_code == 0

    def test_a_silent_worker_is_down(self, fleet: FailureTable, workers: FakeWorkers, clock: Any):
        clock.advance(60)
        result = self.check(W1, "--table-only")
        assert (result.exit_code, result.output) == (5, f"{W1}: down (silent: no heartbeat)\n")
