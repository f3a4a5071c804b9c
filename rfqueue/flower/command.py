"""``rfqueue flower``: ``celery flower`` itself, with rfqueue's Fleet page in it.

The command runs Celery's own command line (``celery [-A APP] flower ARGS``) in this
process, so Flower parses its options, its ``FLOWER_*`` variables and its config file
exactly as ``celery flower`` does, prints its banner and handles its signals. The one
difference: Flower's command builds :class:`~rfqueue.flower.app.FleetFlower` instead
of its own ``Flower`` class (the name ``flower.command.Flower`` is pointed at it just
before the command runs, in this process only).
"""

from __future__ import annotations

import errno
import os
from functools import partial
from typing import Any

import click

from rfqueue.settings import Settings, SettingsError


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "-A",
    "--app",
    "app_path",
    metavar="APP",
    help="The Celery app, as in `celery -A APP flower` [default: rfqueue's own -A].",
)
@click.option("-b", "--broker", metavar="URL", help="The broker URL, as in `celery -b URL`.")
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def flower(
    ctx: click.Context, app_path: str | None, broker: str | None, flower_args: tuple[str, ...]
) -> None:
    """Run Flower with rfqueue's Fleet page at <url_prefix>/rfqueue.

    Every other option is Flower's and passes through unchanged (--port=5555,
    --address=ADDR, --basic-auth=USER:PASSWORD, --url_prefix=PATH, --auth=...,
    FLOWER_* variables); `celery flower --help` lists them.
    """
    _require_flower()
    _check_flower_args(flower_args)
    group: dict[str, Any] = ctx.parent.params if ctx.parent is not None else {}
    app_path = app_path or group.get("app_path")
    if broker:  # what `celery -b` does, done first so that the table's URL can default to it
        os.environ["CELERY_BROKER_URL"] = broker
    settings = _settings(app_path, group)
    settings.redis_client().ping()  # an unreachable table: one line from run_command
    argv = [*(["-A", app_path] if app_path else []), "flower", *flower_args]
    _run_celery(argv, settings)


def _require_flower() -> None:
    try:
        import flower.command  # noqa: F401
    except ImportError:
        raise click.UsageError(
            "rfqueue flower needs Flower: pip install 'rfqueue[flower]'"
        ) from None


def _check_flower_args(args: tuple[str, ...]) -> None:
    """Each argument must be a Flower option with a value Flower can read (one line if not).

    Flower itself would ignore a mistyped option and stop with a traceback on a bad value.
    """
    from flower.command import is_flower_option
    from tornado.options import Error, options

    for arg in args:
        name = arg.split("=", 1)[0]
        if not arg.startswith("--") or name == "--help" or not is_flower_option(arg):
            raise click.BadParameter(
                f"{arg!r} is not a Flower option (`celery flower --help` lists them)",
                param_hint="'FLOWER_ARGS'",
            )
        try:  # Flower parses the same arguments into the same options again when it starts
            options.parse_command_line(["rfqueue", arg], final=False)
        except (Error, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint=f"'{name}'") from None


def _settings(app_path: str | None, group: dict[str, Any]) -> Settings:
    """rfqueue's settings from the app's config, the environment and rfqueue's own options."""
    conf = _load_app(app_path).conf if app_path else None
    try:
        return Settings.load(
            conf,
            redis_url=group.get("redis_url"),
            sentinel_master=group.get("sentinel_master"),
            namespace=group.get("namespace"),
        )
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _load_app(path: str) -> Any:
    from celery.bin.celery import find_app

    try:
        return find_app(path)
    except Exception as exc:
        raise click.BadParameter(f"cannot load {path!r}: {exc}", param_hint="'--app'") from None


def _run_celery(argv: list[str], settings: Settings) -> None:
    """``celery ARGV`` in this process, with Flower building rfqueue's application class."""
    import flower.command
    from celery.bin.celery import celery
    from tornado.options import Error as OptionError

    from rfqueue.flower.app import FleetFlower

    flower.command.Flower = partial(FleetFlower, rfqueue_settings=settings)
    try:
        celery.main(
            args=argv, prog_name="rfqueue", auto_envvar_prefix="CELERY", standalone_mode=False
        )
    except OptionError as exc:  # Flower's options are Tornado's
        raise click.UsageError(f"flower: {exc}") from None
    except OSError as exc:  # the port is taken, the address is not this host's, ...
        from tornado.options import options

        if exc.errno == errno.EADDRINUSE:
            where = f"port {options.port} on {options.address or 'every address'}"
            raise click.BadParameter(f"{where} is already in use", param_hint="'--port'") from None
        raise click.ClickException(f"Flower cannot start: {exc}") from None
