"""``rfqueue drain`` and ``rfqueue check``: a worker's lifecycle, as deploys and probes see it.

``drain`` takes a worker out of the routable set before it is stopped (a Kubernetes
``preStop`` hook); with ``--wait`` it returns once the worker runs nothing. ``check`` is a
readiness probe: exit 0 only when the worker is up in the table, beating, and consuming
its own queue; every other answer has its own exit code (:data:`CHECK_EXIT`).
"""

from __future__ import annotations

import time

import click

from rfqueue.cli.context import Context, refusals
from rfqueue.console import finite
from rfqueue.control import RemoteControl, drain_worker
from rfqueue.table.entry import Entry, State

#: ``rfqueue check``'s exit codes (2 stays a usage error, 1 an unreachable Redis)
CHECK_EXIT = {
    "ready": 0,
    "draining": 3,
    "paused": 4,
    "down": 5,
    "unknown": 6,
    "not consuming": 7,
}

#: how often ``drain --wait`` asks the worker what it still runs (seconds)
POLL = 0.5


class DrainTimeout(click.ClickException):
    """``drain --wait`` ran out of time: exit 1."""

    exit_code = 1


@click.command()
@click.argument("worker")
@click.option("--wait", is_flag=True, help="Return only once WORKER runs nothing.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    callback=finite,
    metavar="SECONDS",
    help="With --wait: give up (exit 1) after SECONDS [default: rfqueue_max_pause]. "
    "The drain itself lasts as long, unless the worker stops or is resumed first.",
)
@click.option("--reason", "note", metavar="TEXT", help="Why, kept with the entry and the event.")
@click.pass_obj
def drain(obj: Context, worker: str, wait: bool, timeout: float | None, note: str | None) -> None:
    """Take WORKER out of rotation: no new tasks, its queue moves on; `resume` undoes it."""
    seconds = timeout or obj.settings.max_pause
    control = obj.control()
    with refusals(seconds="'--timeout'"):
        outcome = drain_worker(obj.table, control, worker, seconds, note=note)
    click.echo(outcome.message)
    if wait and outcome.entry.state is not State.DOWN:
        waited = _wait_drained(obj, control, worker, seconds)
        click.echo(f"drained {worker} after {waited:.1f} s: it runs nothing")


def _wait_drained(obj: Context, control: RemoteControl, worker: str, timeout: float) -> float:
    """Seconds until ``worker`` consumes none of its queues and runs nothing (or is down)."""
    table, started = obj.table, time.monotonic()
    held: int | None = None
    while True:
        entry = table.entries().get(worker)
        state = entry.effective_state(table.now()) if entry else State.DOWN
        if entry is None or state is State.DOWN:
            return time.monotonic() - started  # it stopped (or was forgotten): nothing runs
        if state is not State.DRAINING:
            raise click.ClickException(f"{worker} is {state.value} again: the drain was ended")
        held = control.held(worker)
        if held == 0 and _stopped_consuming(control, entry):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            running = "no answer" if held is None else f"{held} tasks still running"
            raise DrainTimeout(f"{worker} not drained after {timeout:g} s ({running})")
        time.sleep(POLL)


def _stopped_consuming(control: RemoteControl, entry: Entry) -> bool:
    queues = control.consumed(entry.worker)
    return queues is not None and not {entry.queue, *entry.pools} & set(queues)


@click.command()
@click.argument("worker")
@click.option(
    "--table-only",
    is_flag=True,
    help="Judge by the table alone; do not ask the worker which queues it consumes.",
)
@click.pass_context
def check(ctx: click.Context, worker: str, table_only: bool) -> None:
    """Exit 0 if WORKER is up and consuming its queue; else 3 draining, 4 paused, 5 down
    (or silent), 6 unknown, 7 up but not consuming. For readiness probes."""
    obj: Context = ctx.obj
    table = obj.table
    entry = table.entries().get(worker)
    verdict = _verdict(obj, entry, table.now(), table_only)
    click.echo(f"{worker}: {verdict}")
    ctx.exit(CHECK_EXIT[verdict.split(" (")[0]])


def _verdict(obj: Context, entry: Entry | None, now: float, table_only: bool) -> str:
    if entry is None:
        return "unknown (not in the table)"
    state = entry.effective_state(now)
    if state is State.UP and entry.silent(now, obj.settings.heartbeat_timeout):
        return "down (silent: no heartbeat)"
    if state is not State.UP:
        return str(state.value)
    if table_only:
        return "ready"
    queues = obj.control().consumed(entry.worker)
    if queues is None:
        return "not consuming (no answer from the worker)"
    return "ready" if entry.queue in queues else "not consuming (its queue is cancelled)"
