"""Control by hand: pause, drain or resume one worker, and tell it at once over remote control.

:func:`pause_worker`, :func:`drain_worker` and :func:`resume_worker` are what ``rfqueue
pause``/``drain``/``resume`` and the Fleet page's buttons call, with the same checks and
the same one-line answers.
A refused request raises :class:`Refused` before anything is written to the table; its
message is the line a person sees, and ``argument`` names what was wrong (``worker`` or
``seconds``), so each caller can point at its own spelling of it (``'WORKER'`` and
``'--for'`` on the command line, a form field on the page).

:class:`RemoteControl` is the fast path: Celery remote control tells a worker to look at
its entry now. It is at-most-once pub/sub, so it is only ever a shortcut: each worker
also enforces its own table state (see :mod:`rfqueue.worker`).

:func:`purging_worker_queues` extends ``app.control.purge()`` (``install`` puts it in
place) to the queues rfqueue sends to, which the app does not know.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from rfqueue.keys import SYNC_COMMAND, Keys
from rfqueue.log import RateLimitedWarning
from rfqueue.settings import Settings
from rfqueue.table import Change, FailureTable
from rfqueue.table.entry import Entry, Reason

logger = logging.getLogger(__name__)


class RemoteControl:
    """Tells one worker to look at its table entry now, without waiting for a reply."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._warn = RateLimitedWarning(logger)

    def sync(self, entry: Entry) -> None:
        """Ask ``entry.worker`` to bring its own queue and its pools in line with its entry.

        One ``rfqueue_sync`` command (see :mod:`rfqueue.worker.remote`) rather than
        ``cancel_consumer``/``add_consumer`` per queue: Celery runs those in no set order,
        and a pause's cancel of a pool running after the resume's add lost the pool.
        """
        if self.app is None:
            return
        try:
            self.app.control.broadcast(SYNC_COMMAND, destination=[entry.worker], reply=False)
        except Exception as exc:  # the worker's own enforcement will catch up
            self._warn("rfqueue: remote control to %s failed: %r", entry.worker, exc)

    def held(self, worker: str, timeout: float = 1.0) -> int | None:
        """Tasks ``worker`` runs or holds to run (``celery inspect active`` and ``reserved``).

        None when it does not answer within ``timeout`` (gone, or no broker).
        """
        inspect = self._inspect(worker, timeout)
        active = (inspect.active() or {}).get(worker) if inspect else None
        if active is None:
            return None
        return len(active) + len((inspect.reserved() or {}).get(worker) or [])

    def consumed(self, worker: str, timeout: float = 1.0) -> list[str] | None:
        """The queues ``worker`` consumes (``celery inspect active_queues``); None: no answer."""
        inspect = self._inspect(worker, timeout)
        queues = (inspect.active_queues() or {}).get(worker) if inspect else None
        return None if queues is None else [str(q.get("name")) for q in queues]

    def _inspect(self, worker: str, timeout: float) -> Any:
        # With one destination Celery returns as soon as that worker has answered.
        return None if self.app is None else self.app.control.inspect([worker], timeout=timeout)


class Refused(Exception):
    """A request refused before any change; ``argument`` is ``worker`` or ``seconds``."""

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message)
        self.message = message
        self.argument = argument


@dataclass(frozen=True)
class Outcome:
    """What a request did: the worker's entry after it, and the line that says so."""

    entry: Entry
    changed: bool
    message: str


def clock(when: float | None) -> str:
    """A moment as the local ``HH:MM:SS``."""
    return time.strftime("%H:%M:%S", time.localtime(when or 0))


def check_duration(seconds: float, max_pause: float) -> None:
    """Refuse a pause that never ends, or lasts longer than ``max_pause``."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise Refused(f"{seconds:g} is not a positive number of seconds", "seconds")
    if seconds > max_pause:
        raise Refused(
            f"{seconds:g} s is longer than rfqueue_max_pause ({max_pause:g} s)", "seconds"
        )


def known_entry(table: FailureTable, worker: str, change: Change) -> Entry:
    """The entry a change returned; refuse a worker the table does not know."""
    if change.status == "unknown" or (change.entry is None and change.status != "ok"):
        known = ", ".join(sorted(table.entries())) or "none"
        raise Refused(f"no worker named {worker!r} in the table (known: {known})", "worker")
    assert change.entry is not None or change.status == "ok"
    return change.entry  # type: ignore[return-value]


def pause_worker(
    table: FailureTable,
    control: RemoteControl,
    worker: str,
    seconds: float,
    max_pause: float,
    note: str | None = None,
) -> Outcome:
    """Pause ``worker`` for ``seconds`` (an operator's pause), and tell it at once."""
    check_duration(seconds, max_pause)
    change = table.pause(worker, seconds, Reason.MANUAL, note=note)
    entry = known_entry(table, worker, change)
    if change.status == "duration":  # the table's own cap: another process set a lower one
        raise Refused(f"{seconds:g} s is longer than the table allows", "seconds")
    control.sync(entry)
    return Outcome(entry, True, f"paused {worker} until {clock(entry.until)} ({seconds:g} s)")


def drain_worker(
    table: FailureTable,
    control: RemoteControl,
    worker: str,
    seconds: float,
    note: str | None = None,
) -> Outcome:
    """Drain ``worker`` (no new tasks; it finishes what it runs) for at most ``seconds``.

    The drain ends by itself after ``seconds`` (within ``max_pause``) unless the worker
    stopped meanwhile (a deploy), or with ``resume``. A down worker has nothing to drain.
    """
    check_duration(seconds, table.max_pause)
    change = table.drain(worker, Reason.MANUAL, seconds, note=note)
    entry = known_entry(table, worker, change)
    if change.status == "duration":
        raise Refused(f"{seconds:g} s is longer than the table allows", "seconds")
    if change.status == "state":
        return Outcome(entry, False, f"{worker} is down: nothing to drain")
    control.sync(entry)
    if not change.changed:
        return Outcome(entry, False, f"{worker} is already draining: it is shutting down")
    return Outcome(entry, True, f"draining {worker} (at the latest until {clock(entry.until)})")


def resume_worker(table: FailureTable, control: RemoteControl, worker: str) -> Outcome:
    """End ``worker``'s pause or drain now, and tell it at once; an up worker is left alone.

    A worker draining because it is shutting down is on its way out: left alone too.
    """
    change = table.resume(worker, Reason.MANUAL)
    entry = known_entry(table, worker, change)
    if change.status == "state":
        return Outcome(entry, False, f"{worker} is shutting down: it cannot be resumed")
    if not change.changed:
        return Outcome(entry, False, f"{worker} was not paused (state: {entry.state.value})")
    control.sync(entry)
    return Outcome(entry, True, f"resumed {worker}")


def namespace_queues(app: Any) -> list[str]:
    """The queues rfqueue sends ``app``'s tasks to: every registered worker's own queue
    (whatever its state) and the control queue of the app's namespace."""
    settings = Settings.load(app.conf)
    entries = FailureTable.from_settings(settings).entries()
    return [*sorted({e.queue for e in entries.values()}), Keys(settings.namespace).control_queue]


def purging_worker_queues(app: Any, purge: Callable[..., Any]) -> Callable[..., int]:
    """``app.control.purge`` that also empties :func:`namespace_queues`.

    Celery's purge empties the queues the app knows (``task_queues``, or the default
    queue): a producer's app never knows the workers' own queues, where its tasks wait.
    Without the table (Redis away) it purges what Celery would, and says so.
    """

    def purge_all(connection: Any = None) -> int:
        count = int(purge(connection) or 0)
        known = set(app.amqp.queues.consume_from)
        try:
            extra = [name for name in namespace_queues(app) if name not in known]
        except (redis.RedisError, OSError) as exc:
            logger.warning("rfqueue: purged the app's queues only, not the workers' own: %s", exc)
            return count
        with app.connection_or_acquire(connection) as conn:
            return count + sum(_purge_queue(conn, name) for name in extra)

    return purge_all


def _purge_queue(conn: Any, name: str) -> int:
    channel = conn.channel()
    try:
        return int(channel.queue_purge(name) or 0)
    except conn.channel_errors:  # never declared (RabbitMQ): nothing waits there
        return 0
    finally:
        with contextlib.suppress(*conn.channel_errors, *conn.connection_errors):
            channel.close()
