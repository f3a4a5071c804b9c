"""Pause and resume by hand: the shared code of the CLI and the Fleet page."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from rfqueue.control import Refused, RemoteControl, pause_worker, resume_worker
from rfqueue.table import FailureTable
from rfqueue.table.entry import Entry, Reason, State

W1 = "w1@h"


class Recorder(RemoteControl):
    """Remote control that remembers what it would have sent."""

    def __init__(self) -> None:
        super().__init__(None)
        self.sent: list[tuple[str, State]] = []

    def sync(self, entry: Entry) -> None:
        self.sent.append((entry.worker, entry.state))


@pytest.fixture
def fleet(table: FailureTable) -> FailureTable:
    table.register(W1, f"rfqueue.{W1}")
    return table


def test_pause_writes_the_table_and_tells_the_worker(fleet: FailureTable) -> None:
    control = Recorder()
    outcome = pause_worker(fleet, control, W1, 90, max_pause=3600, note="disk")
    entry = fleet.entries()[W1]
    assert (entry.state, entry.reason, entry.note) == (State.PAUSED, Reason.MANUAL, "disk")
    assert outcome.changed and outcome.message.startswith(f"paused {W1} until ")
    assert outcome.message.endswith("(90 s)")
    assert control.sent == [(W1, State.PAUSED)]


def test_resume_ends_the_pause(fleet: FailureTable) -> None:
    fleet.pause(W1, 60, Reason.CHAOS)
    control = Recorder()
    outcome = resume_worker(fleet, control, W1)
    assert (outcome.changed, outcome.message) == (True, f"resumed {W1}")
    assert fleet.entries()[W1].state is State.UP
    assert control.sent == [(W1, State.UP)]


def test_resume_of_an_up_worker_changes_nothing(fleet: FailureTable) -> None:
    control = Recorder()
    outcome = resume_worker(fleet, control, W1)
    assert (outcome.changed, outcome.message) == (False, f"{W1} was not paused (state: up)")
    assert control.sent == []


@pytest.mark.parametrize(
    ("worker", "seconds", "argument", "words"),
    [
        ("nobody@h", 10, "worker", f"no worker named 'nobody@h' in the table (known: {W1})"),
        (W1, 3600.5, "seconds", "3600.5 s is longer than rfqueue_max_pause (3600 s)"),
        (W1, 0, "seconds", "0 is not a positive number of seconds"),
        (W1, -5, "seconds", "-5 is not a positive number of seconds"),
        (W1, math.nan, "seconds", "nan is not a positive number of seconds"),
        (W1, math.inf, "seconds", "inf is not a positive number of seconds"),
    ],
)
def test_a_refused_pause_writes_nothing(
    fleet: FailureTable,
    dump: Callable[[Any], dict[str, Any]],
    worker: str,
    seconds: float,
    argument: str,
    words: str,
) -> None:
    before = dump(fleet.client)
    control = Recorder()
    with pytest.raises(Refused) as refused:
        pause_worker(fleet, control, worker, seconds, max_pause=3600)
    assert (refused.value.argument, refused.value.message) == (argument, words)
    assert "\n" not in refused.value.message
    assert dump(fleet.client) == before and control.sent == []


def test_resume_of_an_unknown_worker_is_refused(
    fleet: FailureTable, dump: Callable[[Any], dict[str, Any]]
) -> None:
    before = dump(fleet.client)
    with pytest.raises(Refused) as refused:
        resume_worker(fleet, Recorder(), "nobody@h")
    assert refused.value.argument == "worker"
    assert dump(fleet.client) == before
