"""The rescuer: nothing waits in the queue of a worker that is not up.

Every worker runs one rescuer thread in its main process. It wakes on every change to
the failure table and at least every ``rescue_interval`` seconds, and then:

1. marks down the workers whose heartbeat is older than ``heartbeat_timeout`` (so a
   dead worker is noticed within seconds even when no beat process runs);
2. for every worker that is paused, down or silent and has messages waiting, moves
   them to queues of up workers, chosen by the router's policy (under a short Redis
   lock per queue, so one process does each move; each move is safe on its own);
3. for every worker that died without a clean stop (silent, or down for want of a
   heartbeat), puts its unacknowledged messages back at once, to up workers, instead
   of after kombu's visibility timeout (on Redis; RabbitMQ does this itself);
4. now and then, looks at the departed (down and silent for long) and forgets those
   that have nothing left (:mod:`~rfqueue.worker.departed`).

The broker calls go through :class:`~rfqueue.brokers.Broker` (Redis or RabbitMQ). With
no worker up, nothing moves: messages stay where they are. It acts only on a fresh
view of the table; on any Redis or broker error it skips the round and tries again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

import redis

from rfqueue.brokers import Broker
from rfqueue.brokers.base import Chooser
from rfqueue.log import RateLimitedWarning
from rfqueue.routing.policies import create_policy
from rfqueue.routing.routed import RoutedCounts
from rfqueue.settings import Settings
from rfqueue.table.entry import Entry, Reason, State
from rfqueue.table.pools import PoolIndex
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.choosers import QueueChooser, policy_chooser, pool_chooser
from rfqueue.worker.departed import Departures
from rfqueue.worker.rescue_stats import RescueStats

logger = logging.getLogger(__name__)


#: how long one process may hold a queue's rescue lock (seconds)
LOCK_TIMEOUT = 10.0


@dataclass
class RescueReport:
    """What one round did: messages moved per (source, target), unacked restored per target,
    and the workers out of ``up`` whose queue this round found empty (or emptied)."""

    reaped: list[Entry] = field(default_factory=list)
    moved: Counter[tuple[str, str]] = field(default_factory=Counter)
    restored: Counter[str] = field(default_factory=Counter)
    cleared: list[Entry] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)


class Rescuer:
    """Moves stranded messages to up workers; one per worker process."""

    def __init__(
        self,
        snapshot: Snapshot,
        broker: Broker,
        choose: QueueChooser,
        heartbeat_timeout: float,
        interval: float = 0.5,
        stats: RescueStats | None = None,
        default_pool: str = "celery",
        departures: Departures | None = None,
    ) -> None:
        self.snapshot = snapshot
        #: the departed: looked at now and then, forgotten when nothing is left (default: never)
        self.departures = departures or Departures(snapshot.table, math.inf, math.inf)
        #: where rounds are counted and latencies observed for the exporter (None: nowhere)
        self.stats = stats
        self.table = snapshot.table
        self.broker = broker
        self.choose = choose
        self.heartbeat_timeout = heartbeat_timeout
        self.interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._warn = RateLimitedWarning(logger)
        self._dead_scanned: frozenset[str] = frozenset()
        self._next_restore = float("-inf")
        #: the pool of messages without a pool header: the app's default queue
        self.default_pool = default_pool
        #: queue -> (pool index, depth) of a round that could move none of its messages
        self._stuck: dict[str, tuple[PoolIndex, int]] = {}

    def start(self) -> None:
        """Start the thread (once); table changes wake it."""
        if self._thread is None:
            self.snapshot.add_listener(lambda _: self._wake.set())
            self.snapshot.ensure_started()
            self._thread = threading.Thread(target=self._run, name="rfqueue-rescuer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.run_once()
            except Exception as exc:  # the thread must outlive any one bad round
                # %s with the type: redis-py 8's repr hides the reason
                self._warn("rfqueue: rescue round skipped: %s: %s", type(exc).__name__, exc)

    def reclaim(self, own_queue: str, held: Collection[str] = (), leaving: bool = False) -> None:
        """Take back this worker's unacknowledged messages that nobody here works on.

        Called when the consumer (re)starts, before its loop delivers anything. After
        a crash and a quick restart under the same name, the previous life's messages
        are there (the worker was never silent long enough to be called dead). After a
        lost broker connection, Celery drops what it had received but not started,
        and the acks kombu would need to put them back could not reach Redis. ``held``
        are the delivery tags of tasks still running: they stay. ``leaving``: the
        worker is shutting down and will start none of them: they go to up workers
        now, not when its long tasks are done and kombu restores them at its exit.
        """
        choose = self._chooser(avoid=own_queue) if leaving else lambda *_: own_queue
        try:
            taken = self.broker.restore_unacked({own_queue}, choose, held)
        except (redis.RedisError, OSError) as exc:  # OSError: BrokerUnavailable too
            logger.warning("rfqueue: could not take back unacked tasks: %s", exc)
            return
        if taken:
            what = "handed back" if leaving else "took back"
            logger.info("rfqueue: %s %d unacked tasks of %s", what, taken.total(), own_queue)

    # -- one round -----------------------------------------------------------------

    def run_once(self) -> RescueReport:
        """One round: reap, move waiting messages, restore the dead's unacked ones."""
        # Every worker's rescuer comes here each round; one scan per interval is enough.
        report = RescueReport(reaped=self.table.reap(self.heartbeat_timeout, lease=self.interval))
        if report.reaped:
            self.snapshot.refresh()
        if not self._fresh():
            return report  # never act on an old view: it may call live workers dead
        up = self.snapshot.up_queues
        if not up:
            return report  # nowhere to go: messages stay where they are
        # Judge silence as of the read the heartbeats came from: beats in the copy are
        # never fresher than that, so against the wall clock live workers would age.
        now = self.snapshot.read_at
        looking = self.departures.look_now()
        out = [
            e
            for e in self.snapshot.entries.values()
            if e.queue not in up and not self.departures.skipped(e, now, looking)
        ]
        # The departed's unacked tasks went back when they died (and go back before they
        # are forgotten): they would only make the set, and so the scans, come and go.
        dead = frozenset(
            e.queue for e in out if self._dead(e, now) and not self.departures.gone(e, now)
        )
        choose = self._chooser()
        if dead and self._restore_due(dead):
            report.restored = self.broker.restore_unacked(dead, choose)
        depths = self.broker.depths([e.queue for e in out])
        for entry in out:
            depth = depths.get(entry.queue, 0)
            if depth and self._stuck.get(entry.queue) != (self.snapshot.pools, depth):
                depth -= self._move(entry.queue, choose, depth, report)
            if depth <= 0 and _left_up(entry, now):
                report.cleared.append(entry)  # its episode ends: nothing of it waits
        if looking:
            restore = lambda queues: self.broker.restore_unacked(queues, choose).total()  # noqa: E731
            report.forgotten = self.departures.forget_gone(out, now, depths, restore)
        _log(report)
        if self.stats is not None:
            self.stats.record_counts(report.moved, report.restored)
            self.stats.record_cleared(report.cleared)
        return report

    def evacuate(self, queue: str, restore: bool) -> int:
        """Move ``queue``'s waiting messages (and, with ``restore``, those delivered but
        unacknowledged) to up workers now; how many are left, which nobody up can take."""
        choose = self._chooser()
        if restore:
            self.broker.restore_unacked({queue}, choose)
        self.broker.move(queue, choose)
        return self.broker.depths([queue]).get(queue, 0)

    def _chooser(self, avoid: str | None = None) -> Chooser:
        """Targets by the router's policy among the up workers of a message's pool (see
        :func:`~rfqueue.worker.choosers.pool_chooser`; ``avoid``: a leaving worker's queue)."""
        return pool_chooser(self.snapshot.pools, self.default_pool, self.choose, avoid)

    def _restore_due(self, dead: frozenset[str]) -> bool:
        """Scan the unacked hash when someone newly died, and now and then after that.

        A dead worker's unacknowledged messages are all there when it is found dead; a
        slow rescan only catches one that was cut off rather than dead and took more.
        """
        now = time.monotonic()
        if dead == self._dead_scanned and now < self._next_restore:
            return False
        self._dead_scanned, self._next_restore = dead, now + 10 * self.heartbeat_timeout
        return True

    def _fresh(self) -> bool:
        return self.snapshot.age() <= 2 * self.snapshot.refresh_interval + 1

    def _dead(self, entry: Entry, now: float) -> bool:
        """Died without a clean stop: its unacknowledged messages will never be acked."""
        if entry.state is State.DOWN and entry.reason is Reason.SHUTDOWN:
            return False  # a clean stop hands its messages back itself
        # A draining worker whose beats stopped was killed on its way out (SIGKILL).
        return entry.silent(now, self.heartbeat_timeout)

    def _move(self, queue: str, choose: Chooser, depth: int, report: RescueReport) -> int:
        """Move ``queue``'s waiting messages; how many went (0 when another process is at it)."""
        lock = self.table.client.lock(
            self.table.keys.rescue_lock(queue), timeout=LOCK_TIMEOUT, blocking=False
        )
        if not lock.acquire():
            return 0  # another process is moving this queue right now
        try:
            moved = self.broker.move(queue, choose)
        finally:
            # If it expired (the move took longer than the lock) there is nothing to undo.
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()
        # Nothing could go: look again when the pools change or the queue does, not each round.
        self._stuck.pop(queue, None)
        if not moved:
            self._stuck[queue] = (self.snapshot.pools, depth)
        for target, count in moved.items():
            report.moved[(queue, target)] += count
        return sum(moved.values())


def start_rescuer(
    settings: Settings,
    snapshot: Snapshot,
    broker: Broker,
    own_queue: str,
    default_pool: str = "celery",
) -> Rescuer | None:
    """Start the rescuer of a starting worker, when rescue is on.

    First it takes back what its previous life left unacknowledged in ``own_queue``
    (see :meth:`Rescuer.reclaim`).
    """
    if not settings.rescue:
        return None
    policy = create_policy(settings)
    # Its own counts: moved tasks are not routed by this process's router.
    policy.start(snapshot, RoutedCounts(), broker.depths)
    rescuer = Rescuer(
        snapshot,
        broker,
        policy_chooser(policy),
        settings.heartbeat_timeout,
        settings.rescue_interval,
        RescueStats(snapshot.table.client, snapshot.table.keys, started=snapshot.table.now()),
        default_pool,
        Departures(snapshot.table, settings.departed_silence, settings.forget_after),
    )
    rescuer.reclaim(own_queue)
    rescuer.start()
    return rescuer


def _left_up(entry: Entry, now: float) -> bool:
    """Out by the table (paused, down, draining), not merely silent: its ``since`` is
    when it left ``up``. A silent worker's episode starts when the reap marks it down."""
    return entry.effective_state(now) is not State.UP


def _log(report: RescueReport) -> None:
    for (source, target), count in sorted(report.moved.items()):
        logger.info("rfqueue: rescued %d waiting tasks from %s to %s", count, source, target)
    for target, count in sorted(report.restored.items()):
        logger.info("rfqueue: restored %d unacked tasks of a dead worker to %s", count, target)
