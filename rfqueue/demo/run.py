"""``rfqueue demo``: the whole loop on this machine, watched live, reconciled at the end.

It starts a private Redis (:mod:`rfqueue.embedded`) unless ``RFQUEUE_REDIS_URL`` or
``CELERY_BROKER_URL`` names one, N workers, beat with the chaos job, Flower, and a
producer at a steady rate for a bounded time. A dashboard (:mod:`rfqueue.dashboard`)
shows the fleet while it runs; once the queues have drained everything is stopped and
the run is reconciled into ``report.json`` and ``report.png`` (:mod:`rfqueue.report`).

Ctrl-C or SIGTERM only sets a flag that every wait checks, so the demo always leaves
through the same cleanup: every process it started is stopped by its process id
(listed in the run folder's ``pids`` file as it starts them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from rfqueue.console import stop_on_signals
from rfqueue.demo.dashboard import Dashboard, say
from rfqueue.demo.monitor import LedgerTail, Monitor
from rfqueue.demo.report import build_report, write_report
from rfqueue.demo.services import NAMESPACE, DemoError, DemoOptions, Interrupted, start_services
from rfqueue.keys import Keys
from rfqueue.table import FailureTable

LEDGER = Keys(NAMESPACE).ledger
#: how often the dashboard refreshes (seconds)
REFRESH = 0.5

__all__ = ["NAMESPACE", "DemoError", "DemoOptions", "DemoResult", "Interrupted", "run_demo"]


@dataclass
class DemoResult:
    """What a finished run produced."""

    report: dict[str, Any]
    folder: Path
    files: list[Path] = field(default_factory=list)


def run_demo(options: DemoOptions, console: Console | None = None) -> DemoResult:
    """Run the demo to its report; raises :class:`Interrupted` after a clean stop on Ctrl-C."""
    options.check()
    console = console or Console()
    stop = threading.Event()
    folder = options.folder()  # created when the first process starts
    with stop_on_signals(stop), ExitStack() as stack:
        services = start_services(options, folder, stack, console, stop)
        table = FailureTable(services.client, NAMESPACE, events_max=1000)
        monitor = Monitor(table, LedgerTail(services.client, LEDGER))
        with Dashboard(console) as dashboard:
            services.wait_ready(lambda: dashboard.update(monitor.sample("starting", 0, 1)), stop)
            window, submitted = _produce_and_drain(options, monitor, dashboard, stop)
        lines, events = monitor.ledger.lines, table.events(1000)
        services.stop()
    report = build_report(
        options.describe(services.redis_label),
        submitted,
        lines,
        events,
        services.worker_names,
        window,
    )
    return DemoResult(report, folder, _write(folder, report, console))


def _produce_and_drain(
    options: DemoOptions, monitor: Monitor, dashboard: Dashboard, stop: threading.Event
) -> tuple[tuple[float, float], int]:
    # Late: the demo's app reads CELERY_BROKER_URL, which start_services has just set.
    from rfqueue.demo.app import record
    from rfqueue.demo.producer import ProduceError, produce

    produce_stop = threading.Event()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["n"] = produce(
                record, options.rate, options.duration, ledger=LEDGER, stop=produce_stop
            )
        except ProduceError as exc:
            result["n"], result["error"] = exc.submitted, exc

    start = time.time()
    thread = threading.Thread(target=run, name="rfqueue-demo-producer", daemon=True)
    thread.start()
    try:
        _refresh_until(
            lambda: not thread.is_alive(),
            lambda: monitor.sample("producing", time.time() - start, options.duration),
            dashboard,
            stop,
        )
    finally:
        produce_stop.set()
        thread.join()
    submitted = int(result.get("n", 0))
    if "error" in result:
        say(dashboard.console, f"producer stopped: {result['error']}")
    deadline = time.monotonic() + options.drain_timeout
    _refresh_until(
        lambda: len(monitor.ledger.seqs) >= submitted or time.monotonic() > deadline,
        lambda: monitor.sample("draining", options.duration, options.duration, submitted),
        dashboard,
        stop,
    )
    return (start, time.time()), submitted


def _refresh_until(
    done: Callable[[], bool],
    sample: Callable[[], Any],
    dashboard: Dashboard,
    stop: threading.Event,
) -> None:
    """Refresh the dashboard every :data:`REFRESH` seconds until ``done()``."""
    while True:
        finished = done()  # before sampling: the last view then includes the last task
        view = sample()
        dashboard.update(view, force=finished)
        if finished:
            return
        if stop.wait(REFRESH):
            raise Interrupted


def _write(folder: Path, report: dict[str, Any], console: Console) -> list[Path]:
    files = [write_report(folder, report)]
    try:
        from rfqueue.demo.figure import draw_report
    except ImportError:
        say(console, "no figure: matplotlib is not installed (pip install 'rfqueue[demo]')")
    else:
        files.append(draw_report(report, folder / "report.png"))
    _print_summary(report, console)
    names = ", ".join(f.name for f in files)
    say(console, f"report written to {folder}/ ({names})")
    return files


def _print_summary(report: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    grid = Table(title="who ran what", title_justify="left")
    for column in ("worker", "tasks", "share", "paused", "pauses"):
        grid.add_column(column, justify="left" if column == "worker" else "right")
    for name, w in sorted(report["workers"].items()):
        grid.add_row(
            name, str(w["tasks"]), f"{w['share']:.0%}", f"{w['paused_s']:.1f} s", str(w["pauses"])
        )
    console.print(grid)
    latency = report["latency_ms"]
    if latency["p50"] is not None:
        say(
            console,
            f"latency sent to done: p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms, "
            f"p99 {latency['p99']:.0f} ms, max {latency['max']:.0f} ms",
        )
    say(
        console,
        f"submitted {report['submitted']}, completed {report['completed']}, "
        f"lost {report['lost']}, completed more than once {report['completed_more_than_once']}",
    )
