"""The enforcer: one worker's consumer kept in line with its row in the table.

A thread in the worker's main process writes a heartbeat every ``heartbeat_interval``
and reads back the worker's own entry in the same atomic step; it is also woken
within milliseconds by the table's change channel and when the worker's own pause
reaches its end. Whenever the entry and the consumer disagree, the consumer is brought
in line from inside the event loop (``call_soon``), so a lost remote-control
broadcast, a restart or a dead beat process can never leave a worker paused past its
expiry or consuming while paused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from rfqueue.keys import Keys
from rfqueue.log import RateLimitedWarning
from rfqueue.settings import Settings
from rfqueue.table.budget import Budget
from rfqueue.table.entry import Entry, Reason, State
from rfqueue.table.failure_table import Change, FailureTable
from rfqueue.table.outliers import Ejection, OutlierRules
from rfqueue.table.service import Service
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.clock import SkewCheck
from rfqueue.worker.outcomes import OutcomeCounter

logger = logging.getLogger(__name__)


class Enforcer:
    """Keeps one worker's consumer in line with its table entry."""

    def __init__(
        self, settings: Settings, nodename: str, snapshot: Snapshot, default_pool: str = "celery"
    ) -> None:
        self.settings = settings
        self.nodename = nodename
        self.queue = settings.queue_for(nodename)
        self.control_queue = Keys(settings.namespace).control_queue
        #: the pools it consumes and the tasks it has, as its beats report them
        self.service = Service()
        #: fewer pools seen while up, and when first seen (see _observe_pools)
        self._shrinking: tuple[tuple[str, ...], float] | None = None
        self.table: FailureTable = snapshot.table
        self.snapshot = snapshot
        self.entry: Entry | None = None
        self.consumer: Any = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._warn = RateLimitedWarning(logger)
        self._clock = SkewCheck(settings.heartbeat_timeout)
        #: called in the event loop right after the queue is consumed again
        self.on_resume: Callable[[Any], object] | None = None
        self._resuming = False
        #: the worker's shutdown began: it drains (see begin_drain)
        self._leaving = threading.Event()
        self._drain_written = False
        #: this worker's task outcomes, sent with each beat and judged by the table
        self.outcomes = OutcomeCounter(nodename)
        self._rules = OutlierRules.from_settings(settings, default_pool)
        #: an ejection is a pause inside the same blast-radius budget as chaos
        self._budget = Budget.from_settings(settings, default_pool)

    # -- lifecycle -----------------------------------------------------------------

    def attach(self, consumer: Any) -> None:
        """Called on every consumer (re)start, before the event loop consumes anything."""
        self.consumer = consumer
        self.service = Service.of(self.service.pools, consumer.app.tasks.keys())
        self._observe_pools(consumer.task_consumer, trusted=True)
        if self._thread is None:
            self._write(lambda: self.table.register(self.nodename, self.queue, self.service))
            self.snapshot.add_listener(self._on_table_change)
            self.snapshot.ensure_started()
            self._thread = threading.Thread(target=self._run, name="rfqueue-enforcer", daemon=True)
            self._thread.start()
        if not self._should_consume():
            # Before the loop starts nothing is consumed yet: cancel directly.
            for queue in (self.queue, *self.service.pools):
                consumer.cancel_task_queue(queue)
            logger.info("rfqueue: %s starts paused until %s", self.nodename, self._until())

    def wake(self) -> None:
        """Beat and reconcile now (remote control's ``rfqueue_sync``); safe from any thread."""
        self._wake.set()

    def begin_drain(self) -> None:
        """A warm or cold shutdown began: leave the routable set now, beat until the exit.

        Safe in a signal handler: it only sets events; the thread writes ``draining``
        within milliseconds, then keeps beating (heartbeat.lua keeps it draining) until
        :meth:`shutdown` marks the worker down.
        """
        self._leaving.set()
        self._wake.set()  # the thread also asks the event loop to cancel the consumers

    def shutdown(self, forget: bool = False) -> None:
        """Stop the thread and mark the worker down (its pause, if any, is kept);
        with ``forget``, then remove its entry (a test worker's name is not reused)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.socket_timeout + 1)
        try:
            self.table.mark_down(self.nodename, Reason.SHUTDOWN)
            if forget:
                self.table.forget(self.nodename)
        except (redis.RedisError, OSError) as exc:
            logger.warning("rfqueue: could not mark %s down: %s", self.nodename, exc)

    def info(self) -> dict[str, Any]:
        """rfqueue's view of this worker, for ``celery inspect stats`` and Flower."""
        entry = self.entry
        return {
            "queue": self.queue,
            "state": entry.state.value if entry else "unknown",
            "reason": entry.reason.value if entry and entry.reason else None,
            "until": entry.until if entry else None,
            "consuming": self._consuming(),
            "pools": list(self.service.pools),
            "tasks": len(self.service.tasks),
        }

    # -- the loop ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._wait_time())
            self._wake.clear()
            if self._stopping.is_set():
                return
            self._round()

    def _round(self) -> None:
        """Drain if the shutdown began, beat, and have the event loop reconcile."""
        if self._leaving.is_set() and not self._drain_written:
            self._write(self._drain)
        self._write(self._beat)
        self._clock.maybe_check(self.table.client)
        if self.consumer is not None:
            self.consumer.call_soon(self._reconcile)

    def _beat(self) -> Change:
        # The version it last saw: a beat held up in the network must not undo a down.
        seen = self.entry.version if self.entry else 0  # 0: it has seen nothing yet
        outcomes = self.outcomes.peek()
        change = self.table.heartbeat(
            self.nodename, self.queue, seen, self.service, outcomes, self._rules
        )
        self.outcomes.sent(outcomes)
        if change.eject is not None:
            return self._eject(change, change.eject)
        return change

    def _eject(self, beat: Change, ejection: Ejection) -> Change:
        """The table judged this worker an outlier: pause it, if the budget allows."""
        change = self.table.pause(
            self.nodename, ejection.seconds, Reason.OUTLIER, ejection.note, self._budget
        )
        if not change.changed:
            logger.info("rfqueue: %s not ejected (%s): %s", self.nodename, change.status,
                        ejection.note)  # fmt: skip
            return beat
        logger.warning("rfqueue: %s ejected for %.0f s: %s", self.nodename, ejection.seconds,
                       ejection.note)  # fmt: skip
        return change

    def _drain(self) -> Change:
        change = self.table.drain(self.nodename, Reason.SHUTDOWN)
        self._drain_written = True  # not before: a failed write is tried again next round
        logger.info("rfqueue: %s drains: no new tasks, %s moves on", self.nodename, self.queue)
        return change

    def _write(self, change: Callable[[], Change]) -> None:
        try:
            self.entry = change().entry or self.entry
        except (redis.RedisError, OSError, ValueError) as exc:
            # ValueError: a reply that is not an entry; the thread must outlive it.
            self._warn("rfqueue: %s cannot use the failure table: %s", self.nodename, exc)

    def _wait_time(self) -> float:
        wait = self.settings.heartbeat_interval
        until = self._until()
        if until is not None and self.entry and self.entry.state in (State.PAUSED, State.DRAINING):
            wait = min(wait, max(0.0, until - self.table.now()))
        return wait

    def _on_table_change(self, snapshot: Snapshot) -> None:
        mine = snapshot.entries.get(self.nodename)
        if mine is not None and (self.entry is None or mine.version != self.entry.version):
            self._wake.set()

    def _reconcile(self) -> None:
        """Runs inside the consumer's event loop: add or cancel the dedicated and pool queues."""
        consumer = self.consumer
        if consumer is None or consumer.task_consumer is None:
            return
        # A worker on its way out (draining) must not take up its queue again.
        leaving = self._leaving.is_set() or _shutting_down()
        if not leaving:
            self._observe_pools(consumer.task_consumer)
        if not leaving and self._should_consume():
            self._start_consuming(consumer)
        else:
            self._stop_consuming(consumer)

    def _start_consuming(self, consumer: Any) -> None:
        task_consumer = consumer.task_consumer
        if not task_consumer.consuming_from(self.queue):
            logger.info("rfqueue: %s resumes consuming %s", self.nodename, self.queue)
            # Pools first, its own queue last: consuming its own queue means all are back.
            for queue in (*self.service.pools, self.queue):
                if not task_consumer.consuming_from(queue):
                    consumer.add_task_queue(queue)
        if self._resuming and self.on_resume is not None:
            # Also when an operator's add_consumer re-added the queue before this ran.
            self.on_resume(consumer)
        self._resuming = False

    def _stop_consuming(self, consumer: Any) -> None:
        task_consumer = consumer.task_consumer
        self._resuming = True
        if task_consumer.consuming_from(self.queue):
            logger.info("rfqueue: %s stops consuming %s", self.nodename, self.queue)
        # Its own queue first: while it consumes that, it consumes all its pools too.
        for queue in (self.queue, *self.service.pools):
            if task_consumer.consuming_from(queue):
                consumer.cancel_task_queue(queue)

    def _observe_pools(self, task_consumer: Any, trusted: bool = False) -> None:
        """Learn the pools from the queues consumed while its own queue is consumed.

        A pause cancels its own queue first and restores it last (only here: rfqueue's
        remote control just wakes this enforcer), so while its own queue is consumed, the
        other queues (but the control queue) are its pools as Celery selected them, or as
        an operator's ``add_consumer`` and ``cancel_consumer`` changed them at run time;
        the next beat reports a change. Such a command can cross a pause on its way, so a
        pool that seems gone counts as gone only when it is still gone a beat later, while up.
        At the consumer's start (``trusted``) the selection is the truth.
        """
        names = {queue.name for queue in task_consumer.queues}
        if self.queue not in names or not (trusted or self._surely_up()):
            self._shrinking = None
            return
        pools = tuple(sorted(names - {self.queue, self.control_queue}))
        if pools == self.service.pools:
            self._shrinking = None
        elif trusted or set(pools) > set(self.service.pools) or self._confirmed(pools):
            self.service = Service.of(pools, self.service.tasks)
            self._shrinking = None

    def _surely_up(self) -> bool:
        """Up in its last beat's reply and in the snapshot (updated within milliseconds)."""
        now = self.table.now()
        mine = self.snapshot.entries.get(self.nodename)
        entries = [e for e in (self.entry, mine) if e is not None]
        return bool(entries) and all(e.effective_state(now) is State.UP for e in entries)

    def _confirmed(self, pools: tuple[str, ...]) -> bool:
        """Whether ``pools`` was seen at least one heartbeat interval ago too."""
        now = time.monotonic()
        if self._shrinking is None or self._shrinking[0] != pools:
            self._shrinking = (pools, now)
            return False
        return now - self._shrinking[1] >= self.settings.heartbeat_interval

    def _should_consume(self) -> bool:
        # Unknown (Redis never reached) means consume: rfqueue fails open.
        entry = self.entry
        if entry is None:
            return True
        return entry.effective_state(self.table.now()) not in (State.PAUSED, State.DRAINING)

    def _until(self) -> float | None:
        return self.entry.until if self.entry else None

    def _consuming(self) -> bool:
        task_consumer = getattr(self.consumer, "task_consumer", None)
        return bool(task_consumer and task_consumer.consuming_from(self.queue))


def _shutting_down() -> bool:
    """Whether a warm or cold shutdown of this worker has begun (Celery's own flags)."""
    from celery.worker import state

    # Identity, as Celery checks them: a warm shutdown sets should_stop to 0 (EX_OK).
    flags = (state.should_stop, state.should_terminate)
    return any(flag is not None and flag is not False for flag in flags)
