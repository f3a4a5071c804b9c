"""The reconciliation at the end of a demo run, written as ``report.json`` (and a figure).

Everything comes from two records that the run leaves in Redis: the ledger, where
``workers.tasks.record`` appends ``{seq, worker, queue, sent, done}`` for every
execution, and the failure table's event log, from which each worker's state over
time is rebuilt. The figure (:mod:`rfqueue.figure`) is drawn from the JSON document
alone, so a saved ``report.json`` can be drawn again.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rfqueue.table import Event

#: the states a band can have, in the figure's order
STATES = ("up", "paused", "draining", "down")


@dataclass(frozen=True)
class Band:
    """A stretch of time, in seconds since the run started, in which a worker kept one state."""

    state: str
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


def timeline(events: Iterable[Event], worker: str, start: float, end: float) -> list[Band]:
    """``worker``'s states between ``start`` and ``end`` (epoch seconds), from the event log.

    An event carries the state it left behind. A pause counts until its ``until`` even
    when nobody wrote the resume (every reader treats an expired pause as up). Before
    its first event a worker counts as down: it had not registered yet.
    """
    changes = sorted((e for e in events if e.worker == worker), key=lambda e: e.version)
    state, until = "down", None
    bands: list[Band] = []
    cursor = start
    for event in changes:
        if event.time > cursor:
            _emit(bands, cursor - start, min(event.time, end) - start, state, until, start)
            cursor = min(event.time, end)
        state, until = event.state or state, event.until
    if end > cursor:
        _emit(bands, cursor - start, end - start, state, until, start)
    return bands


def _emit(
    bands: list[Band], a: float, b: float, state: str, until: float | None, origin: float
) -> None:
    if state == "paused" and until is not None and until - origin < b:
        ends = max(a, until - origin)
        _add(bands, Band("paused", a, ends))
        _add(bands, Band("up", ends, b))
    else:
        _add(bands, Band(state, a, b))


def _add(bands: list[Band], band: Band) -> None:
    if band.length <= 0:
        return
    if bands and bands[-1].state == band.state and math.isclose(bands[-1].end, band.start):
        bands[-1] = Band(band.state, bands[-1].start, band.end)
    else:
        bands.append(band)


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max of ``values``; ``None`` each when there are none."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    if len(values) == 1:
        cuts = [values[0]] * 99
    else:
        cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(values)}


def per_second(times: Iterable[float], start: float, seconds: int) -> list[int]:
    """How many of ``times`` fall in each whole second after ``start``."""
    counts = [0] * seconds
    for t in times:
        index = int(t - start)
        if 0 <= index < seconds:
            counts[index] += 1
    return counts


def latency_series(lines: Sequence[dict[str, Any]], start: float, seconds: int) -> dict[str, Any]:
    """p50, p95 and max latency (ms) of the tasks sent in each second; ``None`` if none was."""
    sent_in: dict[int, list[float]] = defaultdict(list)
    for line in lines:
        sent_in[int(line["sent"] - start)].append(1000 * (line["done"] - line["sent"]))
    series: dict[str, list[float | None]] = {"p50": [], "p95": [], "max": []}
    for second in range(seconds):
        stats = percentiles(sent_in.get(second, []))
        for name, values in series.items():
            values.append(stats[name])
    return series


def build_report(
    run: dict[str, Any],
    submitted: int,
    lines: Sequence[dict[str, Any]],
    events: Sequence[Event],
    workers: Sequence[str],
    window: tuple[float, float],
) -> dict[str, Any]:
    """The JSON document of one run: counts, latency, shares, timelines and series.

    ``run`` describes the run (options, Redis); ``window`` is when producing started and
    when draining ended, in epoch seconds.
    """
    start, end = window
    seconds = max(1, math.ceil(end - start))
    runs_of = Counter(line["seq"] for line in lines)
    first_runs = _first_executions(lines)
    by_worker = Counter(line["worker"] for line in lines)
    bands = {w: timeline(events, w, start, end) for w in workers}
    return {
        "run": run,
        "submitted": submitted,
        "completed": sum(1 for seq in runs_of if 0 <= seq < submitted),
        "lost": sum(1 for seq in range(submitted) if seq not in runs_of),
        "lost_examples": [seq for seq in range(submitted) if seq not in runs_of][:20],
        "completed_more_than_once": sum(1 for n in runs_of.values() if n > 1),
        "executions": len(lines),
        "latency_ms": percentiles([1000 * (x["done"] - x["sent"]) for x in first_runs]),
        "workers": {
            w: _worker_summary(w, by_worker[w], len(lines), bands[w], events, window)
            for w in workers
        },
        "timeline": {w: [asdict(b) for b in bands[w]] for w in workers},
        "throughput_per_s": {
            w: per_second((x["done"] for x in lines if x["worker"] == w), start, seconds)
            for w in workers
        },
        "latency_by_second_sent_ms": latency_series(first_runs, start, seconds),
    }


def _first_executions(lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per task, its earliest completion: a duplicate says nothing new on latency."""
    first: dict[int, dict[str, Any]] = {}
    for line in lines:
        seen = first.get(line["seq"])
        if seen is None or line["done"] < seen["done"]:
            first[line["seq"]] = line
    return list(first.values())


def _worker_summary(
    worker: str,
    tasks: int,
    executions: int,
    bands: Sequence[Band],
    events: Sequence[Event],
    window: tuple[float, float],
) -> dict[str, Any]:
    start, end = window
    return {
        "tasks": tasks,
        "share": tasks / executions if executions else 0.0,
        "paused_s": round(sum(b.length for b in bands if b.state == "paused"), 3),
        "down_s": round(sum(b.length for b in bands if b.state == "down"), 3),
        "pauses": sum(
            1
            for e in events
            if e.worker == worker and e.action == "pause" and start <= e.time <= end
        ),
    }


def write_report(folder: Path, report: dict[str, Any]) -> Path:
    """Write ``report.json`` into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
