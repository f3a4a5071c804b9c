"""The demo's dashboard: what it reads from Redis (monitor) and what it draws."""

from __future__ import annotations

import io
import json
import time
from typing import Any

from rich.console import Console

from rfqueue.brokers.redis_layout import queue_lists
from rfqueue.demo.dashboard import Dashboard, plain_line, render, state_text
from rfqueue.demo.monitor import LedgerTail, Monitor
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason

LEDGER = "{t}:ledger"


def _record(client: Any, seq: int, worker: str, done: float) -> None:
    client.rpush(
        LEDGER, json.dumps({"seq": seq, "worker": worker, "sent": done - 0.01, "done": done})
    )


def _fleet(table: FailureTable) -> None:
    for name in ("w1@h", "w2@h"):
        table.register(name, f"rfqueue.{name}")


def test_a_paused_worker_shows_its_countdown_and_its_true_depth(table: FailureTable, client):
    # Given two workers, w2 paused for 30 s with 3 tasks waiting, one of them with a priority
    _fleet(table)
    table.pause("w2@h", 30, Reason.CHAOS)
    plain, high = queue_lists("rfqueue.w2@h")[0], queue_lists("rfqueue.w2@h")[3]
    client.lpush(plain, "a", "b")
    client.lpush(high, "c")
    # And the ledger holds work done by w1 just now
    now = time.time()
    for seq in range(4):
        _record(client, seq, "w1@h", now - 0.5)

    # When the monitor samples
    view = Monitor(table, LedgerTail(client, LEDGER)).sample("producing", 3.0, 10.0)

    # Then w2 is paused with about 30 s left and a depth of 3 (priority list included)
    w1, w2 = view.rows
    assert (w2.state, w2.reason, w2.depth) == ("paused", "chaos", 3)
    assert w2.left is not None and 0 < w2.left <= 30
    assert state_text(w2).startswith("paused ") and state_text(w2).endswith("s (chaos)")
    # And w1 is up, did 4 tasks, at 2 tasks/s over the 2 s window
    assert (w1.state, w1.left, w1.done, w1.rate) == ("up", None, 4, 2.0)
    assert view.completed == 4 and view.depth == 3
    # And the pause is among the latest events
    assert [(e.worker, e.action) for e in view.events] == [("w2@h", "pause")]


def test_the_ledger_is_read_incrementally(client):
    tail = LedgerTail(client, LEDGER)
    _record(client, 0, "w1@h", 1.0)
    tail.poll()
    _record(client, 1, "w2@h", 2.0)
    _record(client, 0, "w2@h", 3.0)  # task 0 again
    tail.poll()
    assert [line["seq"] for line in tail.lines] == [0, 1, 0]
    assert tail.seqs == {0, 1}
    assert tail.done == {"w1@h": 1, "w2@h": 2}


def _view(table: FailureTable, client, phase: str = "producing", submitted: int | None = None):
    _fleet(table)
    table.pause("w2@h", 30, Reason.CHAOS)
    _record(client, 0, "w1@h", time.time())
    return Monitor(table, LedgerTail(client, LEDGER)).sample(phase, 12.0, 30.0, submitted)


def test_the_rendered_dashboard_has_workers_totals_events_and_progress(table, client):
    # Given a sampled view during production
    view = _view(table, client)

    # When it is drawn on a wide console
    console = Console(record=True, width=120, color_system=None)
    console.print(render(view))
    text = console.export_text()

    # Then each worker, the totals, the pause event and the progress are on screen
    assert "w1@h" in text and "w2@h" in text
    assert "paused" in text and "(chaos)" in text
    assert "total" in text and "1 up 1 paused" in text
    assert "pause" in text and "for 30.0s" in text
    assert "producing: 12 of 30 s" in text


def test_while_draining_progress_counts_completed_tasks(table, client):
    view = _view(table, client, phase="draining", submitted=10)
    assert "draining: 1 of 10 tasks completed" in plain_line(view)


def test_off_a_terminal_it_prints_a_plain_line_at_most_every_few_seconds(table, client):
    # Given a console that is not a terminal
    out = io.StringIO()
    view = _view(table, client)

    # When three refreshes come in quick succession, the last one forced
    with Dashboard(Console(file=out, force_terminal=False, width=200)) as dashboard:
        assert not dashboard.live
        dashboard.update(view)
        dashboard.update(view)
        dashboard.update(view, force=True)

    # Then two plain lines were printed, without escape codes
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[producing: 12 of 30 s] w1: up depth 0 done 1 | w2: paused")
    assert "\x1b" not in out.getvalue()


def test_on_a_terminal_it_draws_live(table, client):
    out = io.StringIO()
    view = _view(table, client)
    with Dashboard(Console(file=out, force_terminal=True, width=120)) as dashboard:
        assert dashboard.live
        dashboard.update(view)
    assert "latest table events" in out.getvalue()


def test_pools_show_in_the_title_when_shared_and_in_a_column_when_not(table, client):
    from rfqueue.table.service import Service

    def drawn() -> str:
        console = Console(record=True, width=140, color_system=None)
        view = Monitor(table, LedgerTail(client, LEDGER)).sample("producing", 1.0, 10.0)
        console.print(render(view))
        return console.export_text()

    # Given two workers of one pool, the title names it
    for name in ("w1@h", "w2@h"):
        table.register(name, f"rfqueue.{name}", Service.of(["jobs"], ["t"]))
    assert "workers in pool jobs" in drawn()
    # When a worker of another pool joins, each row names its pools
    table.register("v1@h", "rfqueue.v1@h", Service.of(["video", "audio"], ["t"]))
    text = drawn()
    assert "pools" in text and "audio,video" in text
    assert next(line for line in text.splitlines() if "w1@h" in line).count("jobs") == 1
