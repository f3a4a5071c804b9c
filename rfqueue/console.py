"""What every rfqueue command-line tool shares: one-line errors, Ctrl-C as a flag, click checks.

The ``rfqueue`` command, the demo, the benchmark, the simulation and the exporter all
end a user mistake with one line on stderr and a distinct exit code, never a
traceback, and stop long-running work cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Iterator
from typing import Any

import click
import redis

from rfqueue.connection import ReplicationError


def finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Reject NaN and infinity, which FloatRange lets through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``stop.set()`` while inside (main thread only).

    No exception is raised at an arbitrary point, so a command always leaves through
    its own cleanup, and a second Ctrl-C cannot interrupt that cleanup half-way.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def run_command(
    command: click.Command,
    argv: list[str] | None,
    prog: str,
    redis_what: str,
    obj: Any = None,
) -> int:
    """Run a click command with every user-facing error as one line on stderr.

    Usage errors exit 2, Ctrl-C 130, an unreachable Redis 1 (``redis_what`` says what
    could not be reached); a bare group prints its help and exits 0. ``obj`` is the
    command's context object.
    """
    try:
        result = command.main(args=argv, prog_name=prog, standalone_mode=False, obj=obj)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.format_message())
        return 0
    except click.ClickException as exc:
        click.echo(f"{prog}: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo(f"{prog}: aborted", err=True)
        return 130
    except ReplicationError as exc:  # Redis was reached: the change is only not safe yet
        click.echo(f"{prog}: error: {exc}", err=True)
        return 1
    except (redis.RedisError, OSError) as exc:
        click.echo(f"{prog}: error: cannot reach {redis_what}: {exc}", err=True)
        return 1
    return result if isinstance(result, int) else 0
