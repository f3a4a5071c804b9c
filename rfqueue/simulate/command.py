"""``rfqueue simulate``: compare the routing policies on one simulated workload.

    rfqueue simulate                                   # 10,000 workers, 1,000,000 tasks
    rfqueue simulate --workers 100 --tasks 50000 --no-rescue --png sim.png
    rfqueue simulate --model broker --workers 3 --tasks 100000 --utilisation 0.85 \
        --service constant --service-mean 0.005 --speeds 1,1,0.2 --pause-rate 0

Prints one table (a row per policy) and, with ``--png``, draws the comparison. The
broker model adds plain Celery's shared queue as the baseline and gives each design's
latency as a ratio to it. Every parameter is checked before anything runs: a bad one
is one line naming its option, exit 2, and no figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rfqueue.simulate.params import (
    ANNOUNCE_TO,
    ARRIVALS,
    BROKER_POLICIES,
    MODELS,
    POLICIES,
    SERVICES,
    ParamError,
    SimulationParams,
    parse_mix,
    parse_speeds,
)

if TYPE_CHECKING:
    from rfqueue.simulate.results import Comparison

NEEDS_NUMPY = "rfqueue simulate needs numpy: pip install 'rfqueue[simulate]'"
NEEDS_MATPLOTLIB = "rfqueue simulate --png needs matplotlib: pip install 'rfqueue[simulate]'"
DEFAULTS = SimulationParams()


@click.command()
@click.option(
    "--workers",
    type=int,
    default=DEFAULTS.workers,
    show_default=True,
    help="Workers in the fleet, each with its own queue.",
)
@click.option(
    "--tasks", type=int, default=DEFAULTS.tasks, show_default=True, help="Tasks to route."
)
@click.option(
    "--utilisation",
    type=float,
    default=DEFAULTS.utilisation,
    show_default=True,
    help="Arrival rate as a share of the fleet's capacity (workers / mean service time).",
)
@click.option(
    "--arrivals",
    default=DEFAULTS.arrivals,
    show_default=True,
    help=f"{' or '.join(ARRIVALS)}: random gaps, or one task every 1/rate seconds "
    "(an open-loop producer, as rfqueue bench's).",
)
@click.option(
    "--service",
    default=DEFAULTS.service,
    show_default=True,
    help=f"Service time distribution: {', '.join(SERVICES)}.",
)
@click.option(
    "--service-mean",
    type=float,
    default=DEFAULTS.service_mean,
    show_default=True,
    help="Mean service time (seconds).",
)
@click.option(
    "--lognormal-sigma",
    type=float,
    default=DEFAULTS.lognormal_sigma,
    show_default=True,
    help="Spread of the lognormal service time.",
)
@click.option(
    "--pause-rate",
    type=float,
    default=DEFAULTS.pause_rate,
    show_default=True,
    help="Pauses per worker per second of up time; 0 for none.",
)
@click.option(
    "--pause-duration",
    type=float,
    default=DEFAULTS.pause_duration,
    show_default=True,
    help="How long each pause lasts (seconds).",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="NAME",
    help=f"A policy to compare (repeat it); default all: {', '.join(POLICIES)}; "
    f"with --model broker: {', '.join(BROKER_POLICIES)}.",
)
@click.option(
    "--rescue/--no-rescue",
    default=DEFAULTS.rescue,
    show_default=True,
    help="Move the tasks waiting at a paused worker to up workers at once.",
)
@click.option(
    "--seed", type=int, default=DEFAULTS.seed, show_default=True, help="Seed of every random draw."
)
@click.option(
    "--model",
    default=DEFAULTS.model,
    show_default=True,
    help=f"{' or '.join(MODELS)}: routers that see every backlog exactly, or workers "
    "pulling a dedicated and a shared queue through a broker, routed by what real "
    "routers know.",
)
@click.option(
    "--speeds",
    default="1",
    show_default=True,
    help="Worker speeds, repeated over the fleet: 1,1,0.2 makes every third worker 5x slower.",
)
@click.option(
    "--mix",
    default="",
    help="Fixed task lengths as share:seconds pairs, 0.9:0.005,0.1:0.1; "
    "replaces --service and --service-mean.",
)
@click.option(
    "--routers",
    type=int,
    default=DEFAULTS.routers,
    show_default=True,
    help="Broker model: independent routers (producers), each sending a random share.",
)
@click.option(
    "--depth-interval",
    type=float,
    default=DEFAULTS.depth_interval,
    show_default=True,
    help="Broker model: seconds between a router's reads of every queue's depth.",
)
@click.option(
    "--heartbeat-interval",
    type=float,
    default=DEFAULTS.heartbeat_interval,
    show_default=True,
    help="Broker model: seconds between heartbeats, which carry each worker's service EWMA.",
)
@click.option(
    "--announce-latency",
    type=float,
    default=DEFAULTS.announce_latency,
    show_default=True,
    help="Broker model: seconds a pub/sub message takes (idle announcements, completions).",
)
@click.option(
    "--announce-to",
    default=DEFAULTS.announce_to,
    show_default=True,
    help=f"Broker model: {' or '.join(ANNOUNCE_TO)}: a worker going idle tells one random "
    "router, or every router.",
)
@click.option(
    "--spill-bound",
    type=int,
    default=DEFAULTS.spill_bound,
    show_default=True,
    help="Broker model, spill: a dedicated queue only while the router believes the worker "
    "has fewer tasks than this; else the shared queue (0: always the shared queue).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Processes, one policy each [default: cores, up to the policies].",
)
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the comparison to this PNG file.",
)
def simulate(jobs: int | None, png: Path | None, **values: Any) -> None:
    """Simulate the routing policies under random pauses and compare them."""
    params = _params(values)
    if png is not None:
        _check_png(png)
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise click.ClickException(NEEDS_NUMPY) from None
    if png is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.ClickException(NEEDS_MATPLOTLIB) from None
    if params.model == "broker":
        _run_designs(params, jobs, png)
    else:
        _run_policies(params, jobs, png)


def _run_policies(params: SimulationParams, jobs: int | None, png: Path | None) -> None:
    from rfqueue.simulate.results import compare, default_jobs

    processes = jobs or default_jobs(params)
    _announce(params, processes)
    comparison = compare(params, processes)
    print_comparison(comparison)
    if png is not None:
        from rfqueue.simulate.figure import draw_comparison

        click.echo(f"figure written to {draw_comparison(comparison, png)}")


def _run_designs(params: SimulationParams, jobs: int | None, png: Path | None) -> None:
    from rfqueue.simulate.balance import compare_designs, with_baseline
    from rfqueue.simulate.balance_report import print_designs
    from rfqueue.simulate.results import default_jobs

    params = with_baseline(params)
    processes = jobs or default_jobs(params)
    _announce(params, processes)
    comparison = compare_designs(params, processes)
    print_designs(comparison)
    if png is not None:
        from rfqueue.simulate.balance_figure import draw_designs

        click.echo(f"figure written to {draw_designs(comparison, png)}")


def _announce(params: SimulationParams, processes: int) -> None:
    click.echo(
        f"routing {params.tasks:,} tasks to {params.workers:,} workers with "
        f"{len(params.policies)} policies in {_processes(processes)}",
        err=True,
    )


def _params(values: dict[str, Any]) -> SimulationParams:
    """The checked parameters; a bad one raises click's error for its option."""
    values["policies"] = tuple(values["policies"])
    try:
        values["speeds"] = parse_speeds(values["speeds"])
        values["mix"] = parse_mix(values["mix"])
        return SimulationParams(**values)
    except ParamError as exc:
        option = "--policy" if exc.name == "policies" else "--" + exc.name.replace("_", "-")
        raise click.BadParameter(exc.problem, param_hint=f"'{option}'") from None


def _check_png(path: Path) -> None:
    """Fail before the run, not after it, on a figure that cannot be written."""
    if path.suffix.lower() != ".png":
        raise click.BadParameter(f"{path} does not end in .png", param_hint="'--png'")
    if not path.parent.is_dir():
        raise click.BadParameter(f"no directory {path.parent}", param_hint="'--png'")


def print_comparison(comparison: Comparison) -> None:
    """The table of a comparison, a row per policy, then the wall time."""
    from rich.console import Console
    from rich.table import Table

    from rfqueue.simulate.figure import title

    table = Table()
    for column in (
        "policy",
        "mean wait",
        "p99 wait",
        "max wait",
        "max/mean load",
        "max queue",
        "moved",
        "loop s",
    ):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for r in comparison.results:
        table.add_row(
            r.policy,
            f"{r.mean_wait:.3f} s",
            f"{r.p99_wait:.3f} s",
            f"{r.max_wait:.2f} s",
            f"{r.max_mean_load:.3f}",
            str(r.max_queue),
            f"{r.moved:,}",
            f"{r.seconds:.1f}",
        )
    console = Console()
    if not console.is_terminal:  # a file or a pipe: never truncate a policy's name
        console = Console(width=120)
    console.print(title(comparison), soft_wrap=True)  # one line, for logs and notes
    console.print(table)
    console.print(f"wall time {comparison.seconds:.1f} s in {_processes(comparison.jobs)}")


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"
