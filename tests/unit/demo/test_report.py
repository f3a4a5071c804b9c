"""The demo's reconciliation: counts, latency, shares and each worker's timeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rfqueue.demo.report import Band, build_report, per_second, percentiles, timeline, write_report
from rfqueue.table import Event

T0 = 1_000_000.0


def event(t: float, worker: str, action: str, state: str, until: float | None = None, v: int = 0):
    return Event(
        T0 + t, worker, action, "chaos", state, None if until is None else T0 + until, None, v
    )


def line(seq: int, worker: str, sent: float, done: float) -> dict[str, object]:
    return {
        "seq": seq,
        "worker": worker,
        "queue": f"rfqueue.{worker}",
        "sent": T0 + sent,
        "done": T0 + done,
    }


def test_a_pause_shows_as_a_band_between_its_pause_and_resume_events():
    # Given a worker that registered, was paused at 3 s and resumed at 5 s
    events = [
        event(-1, "w1", "register", "up", v=1),
        event(3, "w1", "pause", "paused", until=9, v=2),
        event(5, "w1", "resume", "up", v=3),
    ]

    # When its timeline over the first 10 s is rebuilt
    bands = timeline(events, "w1", T0, T0 + 10)

    # Then it was up, paused from 3 to 5 s, then up again
    assert bands == [Band("up", 0, 3), Band("paused", 3, 5), Band("up", 5, 10)]


def test_a_pause_without_a_resume_event_ends_at_its_until():
    # Given a pause until 4 s that nobody resumed explicitly
    events = [event(0, "w1", "register", "up", v=1), event(2, "w1", "pause", "paused", 4, v=2)]

    # When the timeline is rebuilt, then the pause stops at its expiry, as every reader sees it
    assert timeline(events, "w1", T0, T0 + 6) == [
        Band("up", 0, 2),
        Band("paused", 2, 4),
        Band("up", 4, 6),
    ]


def test_before_registering_a_worker_is_down_and_later_events_are_cut_off():
    events = [
        event(1, "w2", "register", "up", v=1),
        event(7, "w2", "down", "down", v=2),  # after the window: ignored
        event(0.5, "w1", "register", "up", v=3),  # another worker: ignored
    ]
    assert timeline(events, "w2", T0, T0 + 5) == [Band("down", 0, 1), Band("up", 1, 5)]


def test_percentiles_of_nothing_one_value_and_many():
    assert percentiles([])["p50"] is None
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "max": 7.0}
    many = percentiles([float(v) for v in range(1, 101)])
    assert many["p50"] == pytest.approx(50.5)
    assert many["p99"] == pytest.approx(99.01)
    assert many["max"] == 100.0


def test_per_second_counts_only_inside_the_window():
    assert per_second([T0 + 0.1, T0 + 0.9, T0 + 1.5, T0 - 1, T0 + 3.2], T0, 3) == [2, 1, 0]


def test_the_report_counts_lost_and_twice_completed_tasks_and_shares():
    # Given 4 submitted tasks: 0 ran twice, 3 never ran, and w2 was paused for 2 s
    lines = [
        line(0, "w1", 0.0, 0.010),
        line(1, "w2", 0.1, 0.130),
        line(2, "w1", 1.2, 1.220),
        line(0, "w2", 0.0, 2.000),  # a second execution of task 0
    ]
    events = [
        event(-1, "w1", "register", "up", v=1),
        event(-1, "w2", "register", "up", v=2),
        event(1, "w2", "pause", "paused", until=3, v=3),
    ]

    # When the report is built over a 4 s window
    report = build_report({"workers": 2}, 4, lines, events, ["w1", "w2"], (T0, T0 + 4))

    # Then it reconciles submitted, completed, lost and twice-completed tasks
    assert (report["submitted"], report["completed"], report["lost"]) == (4, 3, 1)
    assert report["lost_examples"] == [3]
    assert report["completed_more_than_once"] == 1
    assert report["executions"] == 4
    # And latency uses each task's first completion: 10, 30 and 20 ms
    assert report["latency_ms"]["p50"] == pytest.approx(20.0)
    assert report["latency_ms"]["max"] == pytest.approx(30.0)
    # And each worker's share and time paused
    assert report["workers"]["w1"] == {
        "tasks": 2,
        "share": 0.5,
        "paused_s": 0.0,
        "down_s": 0.0,
        "pauses": 0,
    }
    assert report["workers"]["w2"]["paused_s"] == pytest.approx(2.0)
    assert report["workers"]["w2"]["pauses"] == 1
    assert report["timeline"]["w2"][1] == {"state": "paused", "start": 1.0, "end": 3.0}
    assert report["throughput_per_s"]["w1"] == [1, 1, 0, 0]
    assert report["latency_by_second_sent_ms"]["p50"][2] is None


def test_the_report_is_written_as_json(tmp_path: Path):
    path = write_report(tmp_path / "run", {"submitted": 1, "lost": 0})
    assert path == tmp_path / "run" / "report.json"
    assert json.loads(path.read_text()) == {"submitted": 1, "lost": 0}


def test_the_figure_is_a_png_drawn_from_the_report_alone(tmp_path: Path):
    # Given a report, read back from its JSON as a later reader would
    lines = [line(s, "w1" if s % 2 else "w2", s / 10, s / 10 + 0.02) for s in range(40)]
    events = [
        event(-1, "w1", "register", "up", v=1),
        event(-1, "w2", "register", "up", v=2),
        event(1, "w2", "pause", "paused", until=2.5, v=3),
    ]
    report = build_report(
        {"workers": 2, "rate": 10, "duration": 4, "chaos": True},
        40,
        lines,
        events,
        ["w1", "w2"],
        (T0, T0 + 4),
    )
    document = json.loads(write_report(tmp_path, report).read_text())

    # When it is drawn
    from rfqueue.demo.figure import draw_report

    path = draw_report(document, tmp_path / "report.png")

    # Then the file is a PNG of a sensible size
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 1000 and height >= 500
