"""A bounded producer: ``record`` tasks (see :mod:`rfqueue.demo.ledger`) at a steady rate.

The demo runs it in its own process; the reference deployment wraps it as a command::

    python -m workers.producer --rate 50 --duration 30 [--ledger KEY] [--sleep S] [--count N]

Tasks are sent with ``apply_async`` and no queue, as an application would, so rfqueue's
router picks the worker. Task ``i`` is due at ``start + i / rate`` (a deadline schedule,
so slow publishes do not make the rate drift). The number sent is printed as the last
line, ``submitted N``, and stored in the table's Redis under ``<ledger>:submitted``; the
queue each task was first routed to goes under ``<ledger>:routed`` (seq -> queue), so a
run can be audited for tasks that were moved from a paused worker.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Any

import click
import redis
from celery.signals import after_task_publish

from rfqueue.console import run_command
from rfqueue.demo.ledger import LEDGER, ledger_client


class ProduceError(RuntimeError):
    """Publishing failed part-way; ``submitted`` tasks had been sent before it did."""

    def __init__(self, submitted: int, cause: Exception) -> None:
        super().__init__(f"publishing failed after {submitted} tasks: {cause!r}")
        self.submitted = submitted


def _store(app: Any, ledger: str, submitted: int, routed: dict[int, str]) -> None:
    """The count under ``<ledger>:submitted``, each task's first queue under ``<ledger>:routed``."""
    client = ledger_client(app, patient=False)
    client.set(f"{ledger}:submitted", submitted)
    items = list(routed.items())
    for start in range(0, len(items), 1000):
        client.hset(f"{ledger}:routed", mapping=dict(items[start : start + 1000]))


class RoutingLog:
    """Which queue each published task went to, from Celery's ``after_task_publish`` signal."""

    def __init__(self) -> None:
        self.by_id: dict[str, str] = {}

    def __enter__(self) -> RoutingLog:
        after_task_publish.connect(self._on_publish, weak=False)
        return self

    def __exit__(self, *exc: object) -> None:
        after_task_publish.disconnect(self._on_publish)

    def _on_publish(self, headers: Any = None, routing_key: str = "", **_: Any) -> None:
        if isinstance(headers, dict) and headers.get("id"):
            self.by_id[headers["id"]] = routing_key


def produce(
    record: Any,
    rate: float,
    duration: float,
    count: int | None = None,
    ledger: str = LEDGER,
    sleep: float = 0.0,
    *,
    stop: threading.Event | None = None,
) -> int:
    """Send ``record`` tasks at ``rate``/s for ``duration`` s (or ``count`` tasks); return how many.

    ``record`` is a task with the signature of :func:`rfqueue.demo.ledger.record`.

    ``stop`` ends it early. The count is stored under ``<ledger>:submitted``. A failed
    publish raises :class:`ProduceError`, which carries the count sent before it.
    """
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    stop = stop or threading.Event()
    start = time.monotonic()
    end = start + duration
    sent = 0
    routed: dict[int, str] = {}
    with RoutingLog() as log:
        while (count is None or sent < count) and not stop.is_set():
            due = start + sent / rate
            if due >= end or time.monotonic() >= end:
                break
            if stop.wait(max(0.0, due - time.monotonic())):
                break
            try:
                result = record.apply_async(
                    kwargs={"seq": sent, "sent": time.time(), "sleep": sleep, "ledger": ledger}
                )
            except Exception as exc:
                with contextlib.suppress(redis.RedisError, OSError):
                    _store(record.app, ledger, sent, routed)
                raise ProduceError(sent, exc) from exc
            routed[sent] = log.by_id.pop(result.id, "")
            sent += 1
    _store(record.app, ledger, sent, routed)
    return sent


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=50.0,
    show_default=True,
    help="Tasks per second.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to produce for.",
)
@click.option(
    "--count", type=click.IntRange(min=1), default=None, help="Stop after this many tasks."
)
@click.option("--ledger", default=LEDGER, show_default=True, help="Redis list the tasks append to.")
@click.option(
    "--sleep",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds each task sleeps before recording.",
)
@click.pass_obj
def cli(
    record: Any, rate: float, duration: float, count: int | None, ledger: str, sleep: float
) -> int:
    """Enqueue record tasks at a steady rate, then print `submitted N`."""
    if not ledger.strip():
        raise click.BadParameter("must not be empty", param_hint="'--ledger'")
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        submitted = produce(record, rate, duration, count, ledger, sleep, stop=stop)
    except ProduceError as exc:
        click.echo(f"producer: error: {exc}", err=True)
        click.echo(f"submitted {exc.submitted}")
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    click.echo(f"submitted {submitted}")
    return 0


def main(record: Any, argv: list[str] | None = None) -> int:
    """Entry point for a ``record`` task: usage errors and Redis errors as one line each."""
    return run_command(cli, argv, "producer", "Redis to store the count", obj=record)
