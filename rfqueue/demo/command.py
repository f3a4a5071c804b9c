"""``rfqueue demo``: the command-line face of :mod:`rfqueue.demo`.

Out-of-range options, a taken Flower port and chaos settings rfqueue would refuse end
with one line and exit code 2 before anything starts; an unreachable Redis with one
line and exit code 1; Ctrl-C with exit code 130 after everything stopped.
"""

from __future__ import annotations

from pathlib import Path

import click

from rfqueue.console import finite
from rfqueue.settings import SettingsError


def _free_port(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    from rfqueue.demo.services import port_is_free

    if value is not None and not port_is_free(value):
        raise click.BadParameter(f"port {value} on 127.0.0.1 is already in use")
    return value


POSITIVE = click.FloatRange(min=0, min_open=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workers",
    default=3,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Worker processes to start.",
)
@click.option(
    "--rate",
    default=200.0,
    show_default=True,
    type=POSITIVE,
    callback=finite,
    help="Tasks per second.",
)
@click.option(
    "--duration",
    default=30.0,
    show_default=True,
    type=POSITIVE,
    callback=finite,
    help="Seconds of producing.",
)
@click.option("--seed", type=int, help="Seed for reproducible chaos.")
@click.option("--chaos/--no-chaos", default=True, show_default=True, help="Run the chaos job.")
@click.option(
    "--chaos-interval",
    default=2.0,
    show_default=True,
    type=POSITIVE,
    callback=finite,
    help="Seconds between chaos ticks.",
)
@click.option(
    "--chaos-probability",
    default=0.6,
    show_default=True,
    type=click.FloatRange(0, 1),
    callback=finite,
    help="Chance that a tick pauses a worker.",
)
@click.option(
    "--pause-min",
    default=2.0,
    show_default=True,
    type=POSITIVE,
    callback=finite,
    help="Shortest chaos pause (s).",
)
@click.option(
    "--pause-max",
    default=6.0,
    show_default=True,
    type=POSITIVE,
    callback=finite,
    help="Longest chaos pause (s).",
)
@click.option(
    "--max-paused",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="Most workers paused at once.",
)
@click.option(
    "--flower/--no-flower",
    default=True,
    show_default=True,
    help="Start Flower (credentials are printed).",
)
@click.option(
    "--flower-port",
    type=click.IntRange(1, 65535),
    callback=_free_port,
    help="Flower's port [default: a free one].",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for report.json, report.png, logs [default: runs/<timestamp>].",
)
def demo(
    workers: int,
    rate: float,
    duration: float,
    seed: int | None,
    chaos: bool,
    chaos_interval: float,
    chaos_probability: float,
    pause_min: float,
    pause_max: float,
    max_paused: int,
    flower: bool,
    flower_port: int | None,
    run_dir: Path | None,
) -> int:
    """Run workers, beat with chaos, Flower and a producer here; watch; then reconcile."""
    from rfqueue.demo.run import DemoError, DemoOptions, Interrupted, run_demo

    if pause_max < pause_min:
        raise click.BadParameter(
            f"{pause_max:g} is shorter than --pause-min ({pause_min:g})", param_hint="'--pause-max'"
        )
    options = DemoOptions(
        workers=workers, rate=rate, duration=duration, seed=seed, chaos=chaos,
        chaos_interval=chaos_interval, chaos_probability=chaos_probability,
        pause_min=pause_min, pause_max=pause_max, max_paused=max_paused,
        flower=flower, flower_port=flower_port, run_dir=run_dir,
    )  # fmt: skip
    try:
        options.check()
        result = run_demo(options)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    except Interrupted:
        click.echo("rfqueue: interrupted; every process the demo started is stopped", err=True)
        return 130
    return 1 if result.report["lost"] else 0
