"""The ``rfqueue`` command: look at the failure table and change it by hand.

Every user mistake ends with one line on stderr and exit code 2; nothing is written
to the table on a rejected command.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rfqueue.bench.cli import bench
from rfqueue.brokers.base import depths_or_none
from rfqueue.brokers.redis_layout import redis_depth_reader
from rfqueue.chaos import ChaosJob, ChaosRefused
from rfqueue.cli.context import Context, load_app, refusals
from rfqueue.cli.forget import forget
from rfqueue.cli.lifecycle import check, drain
from rfqueue.console import finite, run_command
from rfqueue.control import clock, known_entry, pause_worker, resume_worker
from rfqueue.demo.command import demo
from rfqueue.flower.command import flower
from rfqueue.log import held_back
from rfqueue.monitoring.metrics import metrics
from rfqueue.settings import Settings, SettingsError
from rfqueue.simulate.command import simulate
from rfqueue.table import Change, Event
from rfqueue.table.entry import Entry, State


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-A", "--app", "app_path", metavar="APP", help="Celery app whose rfqueue_* config to use."
)
@click.option(
    "--redis-url",
    envvar="RFQUEUE_REDIS_URL",
    metavar="URL",
    help="Redis holding the table [env RFQUEUE_REDIS_URL; default: CELERY_BROKER_URL].",
)
@click.option(
    "--sentinel-master",
    envvar="RFQUEUE_SENTINEL_MASTER",
    metavar="NAME",
    help="With a sentinel:// URL: the master the Sentinels monitor [env RFQUEUE_SENTINEL_MASTER].",
)
@click.option("--namespace", envvar="RFQUEUE_NAMESPACE", help="Key namespace [default: rfqueue].")
@click.pass_context
def cli(
    ctx: click.Context,
    app_path: str | None,
    redis_url: str | None,
    sentinel_master: str | None,
    namespace: str | None,
) -> None:
    """Failure-aware dispatch for Celery: inspect and change the failure table."""
    app = load_app(app_path)
    try:
        settings = Settings.load(
            app.conf if app else None,
            redis_url=redis_url,
            sentinel_master=sentinel_master,
            namespace=namespace,
        )
    except SettingsError as exc:
        hint = "'--redis-url'" if redis_url and "redis_url" in str(exc) else None
        if hint:
            raise click.BadParameter(str(exc), param_hint=hint) from None
        raise click.UsageError(str(exc)) from None
    ctx.obj = Context(settings, app)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--events",
    "n_events",
    default=10,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="How many recent events to show.",
)
@click.pass_obj
def status(obj: Context, as_json: bool, n_events: int) -> None:
    """Show every worker's state and the latest events."""
    table = obj.table
    with held_back("rfqueue.table") as skipped:  # one line for all of them, not one each
        entries, events = table.entries(), table.events(n_events) if n_events else []
    if skipped:
        click.echo(_skipped_line(skipped), err=True)
    read = obj.broker_depths() or redis_depth_reader(table.client)
    depths = depths_or_none(read, [e.queue for e in entries.values()])
    if as_json:
        click.echo(json.dumps(status_document(entries, events, depths), indent=2))
        return
    _print_status(obj.settings, entries, events, depths, table.now())


def _skipped_line(records: list[logging.LogRecord]) -> str:
    """One warning for every malformed row the table read skipped, naming the entries."""
    entries = sorted(
        str(r.args[0]) for r in records if isinstance(r.args, tuple) and "entry" in str(r.msg)
    )
    parts = [f"{len(entries)} malformed table entries ({', '.join(entries)})"] if entries else []
    if len(records) > len(entries):
        parts.append(f"{len(records) - len(entries)} malformed events")
    hint = "; `rfqueue forget NAME` removes an entry" if entries else ""
    return f"rfqueue: warning: skipped {' and '.join(parts)}{hint}"


def status_document(
    entries: dict[str, Entry], events: list[Event], depths: dict[str, int] | None = None
) -> dict[str, Any]:
    """The ``status --json`` document: times are epoch seconds; depth null when unknown."""
    workers = [
        {
            "worker": e.worker,
            "queue": e.queue,
            "depth": None if depths is None else depths.get(e.queue, 0),
            "state": e.state.value,
            "reason": e.reason.value if e.reason else None,
            "since": e.since,
            "until": e.until,
            "heartbeat": e.heartbeat,
            "note": e.note,
            "version": e.version,
            "pools": list(e.pools),
            "tasks": e.tasks,
        }
        for e in (entries[name] for name in sorted(entries))
    ]
    return {"workers": workers, "events": [vars(ev) for ev in events]}


def _print_status(
    settings: Settings,
    entries: dict[str, Entry],
    events: list[Event],
    depths: dict[str, int] | None,
    now: float,
) -> None:
    """The table as a rich grid; ``now`` is the table's (the Redis server's) time."""
    console = Console()
    grid = Table(title=f"rfqueue table {settings.namespace!r} at {settings.safe_redis_url}")
    columns = (
        "worker",
        "queue",
        "depth",
        "pools",
        "state",
        "reason",
        "since",
        "until",
        "heartbeat",
    )
    for column in columns:
        grid.add_column(column, justify="right" if column == "depth" else "left")
    colours = {"up": "green", "paused": "yellow", "draining": "cyan", "down": "red"}
    for name in sorted(entries):
        e = entries[name]
        state = e.state.value
        if e.effective_state(now).value != state:
            state += " (expired)"
        if e.state is not State.DOWN and e.silent(now, settings.heartbeat_timeout):
            state += " (silent)"  # not routed to; the next chaos tick marks it down
        grid.add_row(
            escape(e.worker),
            escape(e.queue),
            "?" if depths is None else str(depths.get(e.queue, 0)),
            escape(",".join(e.pools) or "-"),  # -: not known (a worker from before pools)
            f"[{colours[e.state.value]}]{state}[/]",
            e.reason.value if e.reason else "",
            _ago(now, e.since),
            _until(now, e.until),
            _ago(now, e.heartbeat),
        )
    console.print(grid)
    for ev in events:
        note = f" ({ev.note})" if ev.note else ""
        line = f"{clock(ev.time)}  {ev.worker:<24} {ev.action:<14} {ev.reason or ''}{note}"
        console.print(escape(line))


def _ago(now: float, when: float | None) -> str:
    return f"{now - when:.1f}s ago" if when else "-"


def _until(now: float, when: float | None) -> str:
    return f"in {when - now:.1f}s" if when and when > now else ("-" if not when else "passed")


@cli.command()
@click.argument("worker")
@click.option(
    "--for",
    "seconds",
    required=True,
    type=click.FloatRange(min=0, min_open=True),
    callback=finite,
    metavar="SECONDS",
    help="How long the pause lasts (every pause expires).",
)
@click.option("--reason", "note", metavar="TEXT", help="Why, kept with the entry and the event.")
@click.pass_obj
def pause(obj: Context, worker: str, seconds: float, note: str | None) -> None:
    """Pause WORKER (its Celery nodename, name@host) for SECONDS."""
    with refusals():
        outcome = pause_worker(
            obj.table, obj.control(), worker, seconds, obj.settings.max_pause, note=note
        )
    click.echo(outcome.message)


@cli.command()
@click.argument("worker")
@click.pass_obj
def resume(obj: Context, worker: str) -> None:
    """End WORKER's pause now."""
    with refusals():
        outcome = resume_worker(obj.table, obj.control(), worker)
    click.echo(outcome.message)


def _known(obj: Context, worker: str, change: Change) -> Entry:
    with refusals():
        return known_entry(obj.table, worker, change)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only say what would be paused.")
@click.option(
    "--probability",
    type=click.FloatRange(0, 1),
    callback=finite,
    help="Override chaos_probability.",
)
@click.option("--seed", type=int, help="Override the seed.")
@click.pass_obj
def chaos(obj: Context, dry_run: bool, probability: float | None, seed: int | None) -> None:
    """Run one tick of the random-failure job now and print what it did."""
    settings = obj.settings.replace(
        dry_run=dry_run or obj.settings.dry_run,
        chaos_probability=obj.settings.chaos_probability if probability is None else probability,
        seed=obj.settings.seed if seed is None else seed,
    )
    try:
        report = ChaosJob(settings, obj.table, obj.control(), obj.default_pool).tick()
    except ChaosRefused as exc:
        raise click.UsageError(str(exc)) from None
    for line in report.lines():
        click.echo(line)


cli.add_command(drain)
cli.add_command(forget)
cli.add_command(check)
cli.add_command(demo)
cli.add_command(metrics)
cli.add_command(bench)
cli.add_command(simulate)
cli.add_command(flower)


def main(argv: list[str] | None = None) -> int:
    """The ``rfqueue`` console script."""
    return run_command(cli, argv, "rfqueue", "the failure table's Redis")


if __name__ == "__main__":
    sys.exit(main())
