"""``rfqueue bench``: run the suite against a private redis-server and print one table.

    rfqueue bench --quick                        # every row, small counts, under a minute
    rfqueue bench --doc docs/benchmarks.md       # the full run (``make bench``)

Every comparison is measured side by side in this run, against the same private
redis-server (started here on a free loopback port, never 6379, stopped at the end),
and reported as a ratio of medians of paired runs.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rfqueue.bench.common import Bench, Row

#: families in the order they run; the fleet-based ones come last
FAMILIES = (
    "routing",
    "fleet_cost",
    "memory",
    "publish",
    "balance",
    "scale",
    "e2e",
    "uneven",
    "failover",
)


@click.command()
@click.option("--quick", is_flag=True, help="Fewer runs and smaller counts (under a minute).")
@click.option(
    "--doc",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Rewrite the generated part of this Markdown file with the figures.",
)
@click.option(
    "--only",
    metavar="FAMILY[,FAMILY]",
    help=f"Run only these families: {', '.join(FAMILIES)}.",
)
@click.option("--note", metavar="TEXT", help="A sentence for the document (say, other load).")
def bench(quick: bool, doc: Path | None, only: str | None, note: str | None) -> None:
    """Measure rfqueue against plain Celery, side by side, and print one table."""
    families = _families(only)
    from rfqueue.bench import report
    from rfqueue.bench.common import Bench
    from rfqueue.demo.embedded import NoRedisServer, redis_server_binary
    from rfqueue.demo.fleet import RedisServer
    from rfqueue.table.registry import stop_snapshots

    try:
        binary = redis_server_binary()
    except NoRedisServer as exc:
        raise click.UsageError(f"the benchmark starts its own redis-server: {exc}") from None
    workdir = Path(tempfile.mkdtemp(prefix="rfqueue-bench-"))
    (workdir / "redis").mkdir()
    server = RedisServer(workdir / "redis", appendonly=False, binary=binary)
    started = time.monotonic()
    server.start()
    # Celery prefers CELERY_BROKER_URL to any broker= argument: every app here must use ours.
    broker = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = server.url
    done = False
    try:
        run = Bench(server, workdir, quick, log=lambda line: click.echo(line, err=True))
        machine = report.describe_machine(run.client())
        rows = []
        for family in families:
            began = time.monotonic()
            click.echo(f"rfqueue bench: {family}...", err=True)
            rows += run_family(family, run)
            click.echo(f"rfqueue bench: {family} took {time.monotonic() - began:.1f} s", err=True)
        report.finish(machine)
        done = True
    finally:
        stop_snapshots()
        server.stop()
        _restore("CELERY_BROKER_URL", broker)
        if done:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            click.echo(f"rfqueue bench: logs kept in {workdir}", err=True)
    report.print_table(rows)
    if doc is not None:
        seconds = time.monotonic() - started
        section = report.markdown(rows, machine, report.command_line(), seconds, note)
        report.write_doc(doc, section)
        click.echo(f"rfqueue bench: wrote {doc}", err=True)


def _families(only: str | None) -> list[str]:
    if not only:
        return list(FAMILIES)
    chosen = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in FAMILIES]
    if unknown or not chosen:
        raise click.BadParameter(
            f"unknown family {', '.join(unknown) or repr(only)}; choose from {', '.join(FAMILIES)}",
            param_hint="'--only'",
        )
    return chosen


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def run_family(name: str, run: Bench) -> list[Row]:
    """Import the family's module (lazily: the CLI starts fast) and run it."""
    module = importlib.import_module(f"rfqueue.bench.{name}")
    rows: list[Row] = module.run(run)
    return rows
