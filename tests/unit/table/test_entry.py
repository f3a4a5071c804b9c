"""Entry: decoding a stored row, its effective state, and what counts as malformed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rfqueue.table.entry import Entry, MalformedEntry, Reason, State


def row(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "worker": "w1@h",
        "queue": "rfqueue.w1@h",
        "state": "up",
        "reason": None,
        "since": 100.0,
        "until": None,
        "version": 3,
        "note": None,
    }
    base.update(changes)
    return base


def entry(**changes: Any) -> Entry:
    return Entry.from_json(json.dumps(row(**changes)))


class TestEffectiveState:
    def test_unexpired_pause_is_paused(self) -> None:
        # Given a pause that ends at 200
        e = entry(state="paused", reason="chaos", until=200.0)
        # Then before 200 it is paused
        assert e.effective_state(199.9) is State.PAUSED

    @pytest.mark.parametrize("now", [200.0, 250.0])
    def test_pause_at_or_after_its_end_counts_as_up(self, now: float) -> None:
        e = entry(state="paused", reason="chaos", until=200.0)
        assert e.effective_state(now) is State.UP

    def test_pause_without_end_counts_as_up(self) -> None:
        # Every pause expires: one without an end is no pause at all
        assert entry(state="paused", until=None).effective_state(0.0) is State.UP

    def test_down_stays_down_even_with_a_passed_until(self) -> None:
        assert entry(state="down", until=50.0).effective_state(100.0) is State.DOWN
        assert entry(state="down", until=500.0).effective_state(100.0) is State.DOWN

    def test_up_is_up(self) -> None:
        assert entry().effective_state(1e12) is State.UP


class TestDecode:
    def test_full_row(self) -> None:
        # Given a stored row with every field
        raw = json.dumps(row(state="paused", reason="manual", until=160, note="deploy"))
        # When it is decoded with a heartbeat
        e = Entry.from_json(raw, heartbeat=99.5)
        # Then every field is typed
        assert e == Entry(
            worker="w1@h",
            queue="rfqueue.w1@h",
            state=State.PAUSED,
            reason=Reason.MANUAL,
            since=100.0,
            until=160.0,
            version=3,
            heartbeat=99.5,
            note="deploy",
        )
        assert isinstance(e.until, float)
        assert isinstance(e.since, float)

    def test_bytes_and_empty_optionals(self) -> None:
        raw = json.dumps(row(reason="", note="")).encode()
        e = Entry.from_json(raw)
        assert e.reason is None
        assert e.note is None
        assert e.heartbeat is None

    def test_extra_fields_are_ignored(self) -> None:
        # The Lua scripts keep ``pause_reason`` on a down worker that owes a pause
        e = entry(state="down", reason="shutdown", until=300.0, pause_reason="chaos")
        assert e.state is State.DOWN
        assert e.until == 300.0

    def test_as_dict_round_trips(self) -> None:
        e = entry(state="paused", reason="chaos", until=150.0, note="n")
        data = e.as_dict()
        assert data["state"] == "paused"
        assert data["reason"] == "chaos"
        assert json.loads(json.dumps(data))["until"] == 150.0
        assert Entry.from_json(json.dumps(data)) == e

    def test_as_dict_without_reason(self) -> None:
        assert entry().as_dict()["reason"] is None

    @pytest.mark.parametrize(
        "raw",
        [
            "{not json",
            "",
            "null",
            "[1, 2]",
            '"w1@h"',
            "42",
            json.dumps({"worker": "w1@h", "state": "up"}),
            json.dumps(row(state="sleeping")),
            json.dumps(row(reason="bored")),
            json.dumps(row(worker="")),
            json.dumps(row(worker=7)),
            json.dumps(row(queue=None)),
            json.dumps(row(since=None)),
            json.dumps(row(since="100")),
            json.dumps(row(since=True)),
            json.dumps(row(version="3")),
            json.dumps(row(state="paused", until="soon")),
            '{"worker": "w1@h", "queue": "q", "state": "paused", "since": 1, "version": 1,'
            ' "until": NaN}',
        ],
        ids=lambda raw: raw[:40],
    )
    def test_malformed_rows_raise_malformed_entry(self, raw: str) -> None:
        with pytest.raises(MalformedEntry):
            Entry.from_json(raw)

    def test_malformed_entry_is_a_value_error(self) -> None:
        assert issubclass(MalformedEntry, ValueError)
