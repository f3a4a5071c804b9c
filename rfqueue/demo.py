"""``rfqueue demo``: a bounded run of the whole loop on this machine.

It starts a private redis-server (unless ``RFQUEUE_REDIS_URL`` or ``CELERY_BROKER_URL``
names one), N workers and beat with the chaos job, produces tasks at a steady rate,
waits for them to drain, prints who ran what and what chaos did, and stops every
process it started, Ctrl-C included.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from rfqueue.fleet import Fleet, RedisServer, wait_for
from rfqueue.router import stop_snapshots
from rfqueue.table import FailureTable

NAMESPACE = "rfqueue-demo"
LEDGER = f"{NAMESPACE}:ledger"


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs."""

    workers: int = 3
    rate: float = 50.0
    duration: float = 30.0
    seed: int | None = None
    chaos: bool = True
    chaos_interval: float = 2.0
    chaos_probability: float = 0.6
    chaos_min_duration: float = 2.0
    chaos_max_duration: float = 6.0
    max_paused: int = 1

    def env(self) -> dict[str, str]:
        env = {
            "RFQUEUE_NAMESPACE": NAMESPACE,
            "RFQUEUE_HEARTBEAT_INTERVAL": "0.5",
            "RFQUEUE_HEARTBEAT_TIMEOUT": "3",
            "RFQUEUE_REFRESH_INTERVAL": "0.5",
            "RFQUEUE_CHAOS_ENABLED": "true" if self.chaos else "false",
            "RFQUEUE_CHAOS_INTERVAL": str(self.chaos_interval),
            "RFQUEUE_CHAOS_PROBABILITY": str(self.chaos_probability),
            "RFQUEUE_CHAOS_MIN_DURATION": str(self.chaos_min_duration),
            "RFQUEUE_CHAOS_MAX_DURATION": str(self.chaos_max_duration),
            "RFQUEUE_MAX_PAUSED": str(self.max_paused),
        }
        if self.seed is not None:
            env["RFQUEUE_SEED"] = str(self.seed)
        return env


def run_demo(options: DemoOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the demo; returns the summary it printed."""
    console = console or Console()
    workdir = Path(tempfile.mkdtemp(prefix="rfqueue-demo-"))
    with ExitStack() as stack:
        url = os.environ.get("RFQUEUE_REDIS_URL") or os.environ.get("CELERY_BROKER_URL")
        if not url:
            (workdir / "redis").mkdir()
            server = RedisServer(workdir / "redis").start()
            stack.callback(server.stop)
            url = server.url
            console.print(f"started a private redis-server on port {server.port}")
        os.environ.update({"CELERY_BROKER_URL": url, "RFQUEUE_REDIS_URL": url, **options.env()})
        fleet = Fleet(url, workdir, env=options.env())
        stack.callback(fleet.stop)
        stack.callback(stop_snapshots)
        table = FailureTable(_client(url), NAMESPACE)
        _reset(table)
        names = [f"demo{i + 1}" for i in range(options.workers)]
        for name in names:
            fleet.start_worker(name, "--concurrency", "1")
        for name in names:
            fleet.wait_ready(name)
        if options.chaos:
            fleet.start_beat()
        console.print(
            f"{options.workers} workers up; producing {options.rate:g} tasks/s "
            f"for {options.duration:g} s (logs in {workdir})"
        )
        submitted = _produce(options, table, console)
        lines = _drain(table, submitted, console)
        return _summarise(table, submitted, lines, console)


def _client(url: str) -> Any:
    from rfqueue.settings import Settings

    return Settings.load({}, environ={}, redis_url=url).redis_client()


def _reset(table: FailureTable) -> None:
    """Remove only the demo's own keys: everything else in that Redis is left alone."""
    keys = table.keys
    doomed = [keys.workers, keys.heartbeats, keys.version, keys.events, keys.chaos_ticks, LEDGER]
    table.client.delete(*doomed, f"{LEDGER}:submitted")


def _produce(options: DemoOptions, table: FailureTable, console: Console) -> int:
    from workers.producer import ProduceError, produce  # late: it reads CELERY_BROKER_URL

    stop = threading.Event()
    result: dict[str, int] = {}

    def run() -> None:
        try:
            result["n"] = produce(options.rate, options.duration, ledger=LEDGER, stop=stop)
        except ProduceError as exc:
            console.print(f"[red]producer stopped: {exc}[/]")
            result["n"] = exc.submitted

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(5)
            console.print(_progress_line(table))
    finally:
        stop.set()
        thread.join()
    return result.get("n", 0)


def _progress_line(table: FailureTable) -> str:
    done = Counter(json.loads(x)["worker"] for x in table.client.lrange(LEDGER, 0, -1))
    now = time.time()
    parts = []
    for name, e in sorted(table.entries().items()):
        state = e.effective_state(now).value
        left = f" {e.until - now:.0f}s" if state == "paused" and e.until else ""
        parts.append(f"{name.split('@')[0]}: {state}{left} done {done[name]}")
    return " | ".join(parts)


def _drain(table: FailureTable, submitted: int, console: Console) -> list[dict[str, Any]]:
    console.print(f"submitted {submitted}; draining")

    def drained() -> bool:
        return int(table.client.llen(LEDGER)) >= submitted

    try:
        wait_for(drained, timeout=60, interval=0.2, what="the queues to drain")
    except TimeoutError:
        console.print("[red]some tasks did not complete within 60 s[/]")
    return [json.loads(x) for x in table.client.lrange(LEDGER, 0, -1)]


def _summarise(
    table: FailureTable, submitted: int, lines: list[dict[str, Any]], console: Console
) -> dict[str, Any]:
    per_seq = Counter(line["seq"] for line in lines)
    per_worker = Counter(line["worker"] for line in lines)
    summary = {
        "submitted": submitted,
        "completed": len(per_seq),
        "lost": submitted - len(per_seq),
        "duplicates": sum(1 for n in per_seq.values() if n > 1),
        "per_worker": dict(per_worker),
    }
    grid = Table(title="who ran what")
    grid.add_column("worker")
    grid.add_column("tasks", justify="right")
    grid.add_column("share", justify="right")
    grid.add_column("chaos pauses", justify="right")
    events = table.events(1000)
    pauses = Counter(ev.worker for ev in events if ev.action == "pause")
    for name in sorted(per_worker):
        share = per_worker[name] / max(1, len(lines))
        grid.add_row(name, str(per_worker[name]), f"{share:.0%}", str(pauses[name]))
    console.print(grid)
    for ev in sorted(events, key=lambda ev: ev.version)[-15:]:
        if ev.action in ("pause", "resume", "down"):
            console.print(
                f"  {time.strftime('%H:%M:%S', time.localtime(ev.time))} "
                f"{ev.action:<7} {ev.worker} ({ev.reason})"
            )
    console.print(
        f"submitted {summary['submitted']}, completed {summary['completed']}, "
        f"lost {summary['lost']}, completed twice {summary['duplicates']}"
    )
    return summary
