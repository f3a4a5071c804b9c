"""A process-local copy of the failure table that the router reads without touching Redis.

A background thread keeps it fresh: it subscribes to the table's change channel,
where every change announces the changed entry with the table's new version. An
announcement that follows the copy's version is applied as it is, without a read;
anything else (a gap, a forgotten worker, an unreadable message) makes it re-read the
whole table. It re-reads at the latest every ``refresh_interval`` seconds (which also
brings fresh heartbeats) or when a pause reaches its end. At fleet scale this matters:
a full read of 1,000 workers costs Redis about 0.4 ms, and every process would pay it
on every change. When Redis cannot be reached the copy keeps its last contents
(fail-open) and a rate-limited warning says so. After ``fork()`` the child starts its
own thread on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import redis

from rfqueue.log import RateLimitedWarning
from rfqueue.table.entry import Entry, State
from rfqueue.table.failure_table import FailureTable
from rfqueue.table.pools import PoolIndex

logger = logging.getLogger(__name__)

Listener = Callable[["Snapshot"], None]
#: states that end at ``until`` (a pause, an operator's drain): the copy re-reads then
_ENDING = (State.PAUSED, State.DRAINING)
Hook = Callable[[], None]


class Snapshot:
    """The latest known table, and the queues the router may choose from."""

    def __init__(
        self,
        table: FailureTable,
        refresh_interval: float = 1.0,
        heartbeat_timeout: float | None = None,
        departed_after: float | None = None,
    ) -> None:
        self.table = table
        #: down workers silent longer have departed: no longer registered for ``spread``
        self.departed_after = departed_after
        self.refresh_interval = refresh_interval
        #: a worker silent for longer is not routed to, before any tick marks it down
        self.heartbeat_timeout = heartbeat_timeout
        self.entries: dict[str, Entry] = {}
        #: queues of workers that are up, sorted by worker name
        self.up_queues: tuple[str, ...] = ()
        #: queues of every registered worker, whatever its state, but the departed
        self.all_queues: tuple[str, ...] = ()
        #: who serves which pool and task; a new object only when that changed
        self.pools = PoolIndex()
        #: task names by digest, read once per digest (see rfqueue.table.service)
        self.task_sets: dict[str, frozenset[str]] = {}
        #: digests whose set was missing at the last full read (every task, till found)
        self._missing_sets: set[str] = set()
        self.version = -1
        self.loaded = False
        self.refreshed_at = float("-inf")
        #: the wall-clock time of the last full read: what heartbeats are judged against
        self._read_at = 0.0
        self._next_expiry = float("inf")
        self._listeners: list[Listener] = []
        #: each hook behind a reference: a bound method's is weak (see add_hook)
        self._hooks: list[Callable[[], Hook | None]] = []
        self._warn = RateLimitedWarning(logger)
        self._reset_after_fork()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call(ref, Snapshot._after_fork_in_child))

    def _after_fork_in_child(self) -> None:
        # The parent's listeners (a worker's enforcer) have no thread in the child.
        self._listeners = []
        self._hooks = []
        self._reset_after_fork()

    def _reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = False

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(snapshot)`` from the refresh thread after each change."""
        self._listeners.append(listener)

    def add_hook(self, hook: Hook) -> None:
        """Call ``hook()`` from the refresh thread after each pass (at least every interval).

        A bound method is held weakly and dropped once its object is gone: the snapshot
        lives as long as the process, and a router's hook must not keep its app alive.
        """
        if any(ref() == hook for ref in self._hooks):
            return
        if inspect.ismethod(hook):
            self._hooks.append(weakref.WeakMethod(hook))
        else:
            self._hooks.append(lambda: hook)

    def _run_hooks(self) -> None:
        refs = list(self._hooks)
        if any(ref() is None for ref in refs):
            self._hooks = refs = [ref for ref in refs if ref() is not None]
        for ref in refs:
            hook = ref()
            if hook is None:
                continue
            try:
                hook()
            except Exception as exc:  # a hook must never stop the refresh thread
                self._warn("rfqueue: snapshot hook %r failed: %r", hook, exc)

    def ensure_started(self) -> None:
        """Load the table once and start the refresh thread, if not done in this process.

        The first read happens outside the lock: a process forked during it inherits no
        held lock, and threads that start at once each read (the same table) instead of
        queueing behind one round trip.
        """
        if self.started:
            return
        self.refresh()
        with self._lock:
            if self.started:
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="rfqueue-snapshot", daemon=True)
            self._thread.start()
            self.started = True

    def stop(self) -> None:
        """Stop the refresh thread (it exits within one wait)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.refresh_interval + 1)
        self.started = False

    @property
    def read_at(self) -> float:
        """Wall-clock time of the last full read: heartbeats are as of then."""
        return self._read_at

    def age(self) -> float:
        """Seconds since the last successful read of the table."""
        return time.monotonic() - self.refreshed_at

    def refresh(self) -> bool:
        """Re-read the table now; on a Redis error keep the old copy and return False."""
        try:
            # One MULTI: the version belongs to exactly these entries.
            version, entries = self.table.read()
            self._read_task_sets(entries.values())
        except (redis.RedisError, OSError) as exc:
            fallback = "routing from the last copy" if self.loaded else "no copy yet"
            self._warn("rfqueue: cannot read the failure table (%s); %s", exc, fallback)
            return False
        # The server's time of the read: heartbeats are judged by the table's one clock.
        self._read_at, self.refreshed_at = self.table.now(), time.monotonic()
        self._install(entries, version)
        return True

    def _read_task_sets(self, entries: Iterable[Entry]) -> None:
        """One SMEMBERS per digest this copy has not seen yet (never per task)."""
        missing = set()
        for digest in {e.tasks for e in entries if e.tasks} - self.task_sets.keys():
            names = self.table.task_set(digest)
            if names:
                self.task_sets[digest] = names
            else:  # written before the entry, so only a lost key: fail open, look again
                missing.add(digest)
        self._missing_sets = missing

    def _knows_tasks(self, entry: Entry) -> bool:
        digest = entry.tasks
        return not digest or digest in self.task_sets or digest in self._missing_sets

    def apply(self, announced: list[Any]) -> bool:
        """Apply announced entries that follow this copy's version, in order.

        Returns False, changing nothing, when a full read is needed instead: a gap in
        the versions, or a message that is not an entry (a forgotten worker). An
        applied entry keeps the heartbeat this copy has for its worker, or the beat the
        announcement carries when that is later: a worker that registers or comes back
        up beats in the same step. Only a beat is a beat: the ``since`` of a pause that
        ends is no sign of life (a dead worker's pause expires too). Heartbeats
        otherwise come with the next full read.
        """
        entries, version = dict(self.entries), self.version
        for message in announced:
            entry = _announced_entry(message)
            if entry is None or entry.version > version + 1 or not self._knows_tasks(entry):
                return False  # a full read (which reads a new task set too)
            if entry.version <= version:
                continue  # announced before our last read: already in the copy
            old = entries.get(entry.worker)
            beats = [b for b in (old.heartbeat if old else None, entry.heartbeat) if b is not None]
            entries[entry.worker] = dataclasses.replace(entry, heartbeat=max(beats, default=None))
            version = entry.version
        self._install(entries, version)
        return True

    def _install(self, entries: dict[str, Entry], version: int) -> None:
        now = self.table.now()
        ordered = [entries[name] for name in sorted(entries)]
        changed = version != self.version or not self.loaded
        self.entries = entries
        # Silence is judged as of the last full read: between reads (a Redis outage,
        # say) beats are not fresher, so they must not age either.
        self.up_queues = tuple(e.queue for e in ordered if self._routable(e, self._read_at))
        # The departed (down and silent for long) stay in the table, but count nowhere.
        present = [e for e in ordered if not e.departed(self._read_at, self.departed_after)]
        self.all_queues = tuple(e.queue for e in present)
        pools = PoolIndex.build(present, lambda e: self._routable(e, self._read_at), self.task_sets)
        if pools != self.pools:  # the same object while nothing changed: routers keep caches
            self.pools = pools
        pending = [e.until for e in ordered if e.state in _ENDING and e.until and e.until > now]
        self._next_expiry = time.monotonic() + (min(pending) - now) if pending else float("inf")
        self.version, self.loaded = version, True
        if changed:
            for listener in self._listeners:
                listener(self)

    def _routable(self, entry: Entry, now: float) -> bool:
        # `now` is when the table was read: a Redis outage does not age the heartbeats.
        if entry.effective_state(now) is not State.UP:
            return False
        return self.heartbeat_timeout is None or not entry.silent(now, self.heartbeat_timeout)

    def _wait_time(self) -> float:
        due = min(self.refreshed_at + self.refresh_interval, self._next_expiry)
        return max(0.0, min(due - time.monotonic(), self.refresh_interval))

    def _run(self) -> None:
        pubsub = None
        while not self._stopping.is_set():
            try:
                if pubsub is None:
                    pubsub = self.table.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                    pubsub.subscribe(self.table.keys.channel)
                    self.refresh()  # catch what was announced while we were not listening
                message = pubsub.get_message(timeout=self._wait_time())
                stale = message is not None and not self.apply([message, *_drain(pubsub)])
                if (stale or self._wait_time() == 0) and not self.refresh():
                    # Reads fail while the channel works: back off instead of spinning.
                    self._stopping.wait(min(1.0, self.refresh_interval))
                self._run_hooks()
            except (redis.RedisError, OSError, ValueError) as exc:
                self._warn("rfqueue: lost the failure-table channel (%s); retrying", exc)
                _close(pubsub)
                pubsub = None
                self._stopping.wait(min(1.0, self.refresh_interval))
        _close(pubsub)
        self._run_hooks()  # a last pass, so what the hooks hold is not lost at shutdown


def _drain(pubsub: redis.client.PubSub, limit: int = 1000) -> list[Any]:
    """The announcements already waiting (a burst is applied, or re-read, at once)."""
    waiting = []
    for _ in range(limit):
        message = pubsub.get_message(timeout=0)
        if message is None:
            break
        waiting.append(message)
    return waiting


def _announced_entry(message: Any) -> Entry | None:
    """The entry a change message carries, with the worker's beat if the change was
    one (``beat``, see prelude.lua); None for anything else."""
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, (str, bytes)):
        return None
    try:
        beat = json.loads(data).get("beat")
        heartbeat = float(beat) if isinstance(beat, (int, float)) else None
        return Entry.from_json(data, heartbeat=heartbeat)
    except (ValueError, TypeError, KeyError, AttributeError):  # MalformedEntry: ValueError
        return None


def _close(pubsub: redis.client.PubSub | None) -> None:
    if pubsub is not None:
        with contextlib.suppress(redis.RedisError, OSError):
            pubsub.close()


def _call(ref: weakref.ref[Snapshot], method: Callable[[Snapshot], None]) -> None:
    obj = ref()
    if obj is not None:
        method(obj)
