"""The failure-state table: one entry per worker in Redis, changed only by atomic scripts.

Every change runs as one Lua script that reads, decides, writes the entry, bumps the
table version, appends to the capped event log and publishes the entry on the change
channel. Two processes acting at once (two beats, an operator and the chaos job) are
therefore serialised by Redis itself, and the blast-radius budget of a chaos pause is
checked in the same step that takes the pause.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import redis

from rfqueue.keys import Keys
from rfqueue.table.budget import Budget
from rfqueue.table.clock import ServerClock
from rfqueue.table.entry import Entry, MalformedEntry, Reason
from rfqueue.table.outliers import Ejection, Outcomes, OutlierRules
from rfqueue.table.replication import ReplicaAcks
from rfqueue.table.service import Service

if TYPE_CHECKING:
    from rfqueue.settings import Settings

logger = logging.getLogger(__name__)

#: a beat that reports no finished tasks
NO_OUTCOMES = Outcomes()


class TableError(Exception):
    """A table change that was refused."""


class UnknownWorker(TableError):
    """The worker has no entry in the table."""


@dataclass(frozen=True)
class Change:
    """What a single-worker script did: ``ok``, ``noop``, ``budget``, ``state`` or ``unknown``."""

    status: str
    entry: Entry | None
    #: a heartbeat's verdict: the worker is an outlier, to be ejected (see rfqueue.table.outliers)
    eject: Ejection | None = None

    @property
    def changed(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Event:
    """One line of the event log."""

    time: float
    worker: str
    action: str
    reason: str | None
    state: str | None
    until: float | None
    note: str | None
    version: int


@cache
def _script_source(name: str) -> str:
    lua = resources.files("rfqueue.table") / "lua"
    return (lua / "prelude.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class FailureTable:
    """Reads and changes the table of one namespace on one Redis connection."""

    SCRIPTS = (
        "register",
        "heartbeat",
        "pause",
        "resume",
        "down",
        "expire",
        "reap",
        "forget",
        "drain",
    )
    #: someone's decision, so it waits for ``acks``; beats, expiries and reaps are re-derived
    #: from what survives within a beat or a rescue round, and run far too often to wait
    DECISIONS = frozenset({"pause", "resume", "down", "forget", "drain"})

    def __init__(
        self,
        client: redis.Redis,
        namespace: str = "rfqueue",
        events_max: int = 1000,
        heartbeat_timeout: float = 5.0,
        acks: ReplicaAcks | None = None,
        max_pause: float = 3600.0,
    ) -> None:
        self.client = client
        #: replicas that must confirm a decision before it returns (see rfqueue.replication)
        self.acks = acks or ReplicaAcks()
        self.keys = Keys(namespace)
        self.events_max = events_max
        #: the server's clock, as of the last reply: judge entries by it (see rfqueue.table.clock)
        self.clock = ServerClock()
        #: the longest pause the table accepts, enforced inside the pause script
        self.max_pause = max_pause
        #: a fleet-wide silence longer than this is an outage, not a fleet of dead workers
        self.heartbeat_timeout = heartbeat_timeout
        self._scripts = {
            name: client.register_script(_script_source(name)) for name in self.SCRIPTS
        }
        #: task sets this object has written (each digest's set is written once)
        self._task_sets_written: set[str] = set()

    @classmethod
    def from_settings(cls, s: Settings) -> FailureTable:
        """The table ``s`` names, on a new client, its decisions confirmed as ``s`` says."""
        return cls(
            s.redis_client(),
            s.namespace,
            s.events_max,
            heartbeat_timeout=s.heartbeat_timeout,
            acks=ReplicaAcks.for_settings(s),
            max_pause=s.max_pause,
        )

    # -- changes -------------------------------------------------------------------

    def now(self) -> float:
        """The table's time now: the Redis server's clock as of the last reply."""
        return self.clock.now()

    def _run(self, script: str, *args: Any) -> dict[str, Any]:
        argv = [self.keys.channel, self.events_max, *args]
        keys = self.keys.table_keys()
        sent = self.clock.local()
        if script in self.DECISIONS:
            raw = self.acks.run(self._scripts[script], keys, argv)
        else:
            raw = self._scripts[script](keys=keys, args=argv)
        reply = json.loads(raw)
        if not isinstance(reply, dict):
            raise ValueError(f"the {script} script replied {raw!r}")
        self.clock.observe(float(reply["now"]), sent, self.clock.local())
        return reply

    def _change(self, script: str, *args: Any) -> Change:
        reply = self._run(script, *args)
        entry = _entry_or_none(reply.get("entry"))
        return Change(reply["status"], entry, Ejection.from_reply(reply.get("eject")))

    def _changes(self, script: str, *args: Any) -> list[Entry]:
        entries = self._run(script, *args)["entries"]
        # cjson writes an empty Lua table as {}
        return [e for e in map(_entry_or_none, entries or []) if e is not None]

    def register(self, worker: str, queue: str, service: Service | None = None) -> Change:
        """A worker starts: up, unless an unexpired pause outlived its last run.

        ``service``: the pools it consumes and the tasks it has registered (None: as before).
        """
        return self._change(
            "register", worker, queue, repr(self.heartbeat_timeout), *self._serve(service, True)
        )

    def heartbeat(
        self,
        worker: str,
        queue: str,
        seen: int | None = None,
        service: Service | None = None,
        outcomes: Outcomes | None = None,
        rules: OutlierRules | None = None,
    ) -> Change:
        """Record a beat; returns the worker's entry, healed if it was down or expired.

        ``seen`` is the version of its own entry the worker last saw (the worker's own
        beats always say): a worker marked down after that version is not revived by
        this beat (it may have been sent before the down and held up in the network),
        only by the next one, sent knowing the down. A ``service`` other than the
        entry's is saved with it (event ``serve``). ``outcomes`` go into the worker's
        window; with ``rules`` the change's ``eject`` says whether they make it an outlier.
        """
        known = "" if seen is None else str(seen)
        timeout = repr(self.heartbeat_timeout)
        done = (outcomes or NO_OUTCOMES).script_args()
        judge = rules.as_arg() if rules else ""
        return self._change(
            "heartbeat", worker, queue, timeout, known, *done, judge, *self._serve(service)
        )

    def _serve(self, service: Service | None, always: bool = False) -> list[str]:
        """The script arguments for ``service``, its task set written first if need be."""
        if service is None:
            return []
        digest = service.digest
        if digest and (always or digest not in self._task_sets_written):
            # Content-addressed: written before any entry names it, never changed after.
            self.client.sadd(self.keys.task_set(digest), *sorted(service.tasks))
            self._task_sets_written.add(digest)
        return service.script_args()

    def task_set(self, digest: str) -> frozenset[str]:
        """The task names of a digest; empty when its set is missing."""
        return frozenset(map(_text, self.client.smembers(self.keys.task_set(digest))))

    def pause(
        self,
        worker: str,
        seconds: float,
        reason: Reason,
        note: str | None = None,
        budget: Budget | None = None,
    ) -> Change:
        """Pause ``worker`` for ``seconds``; with a budget, only if it still allows one more.

        The pause ends ``seconds`` after the server's now. Longer than ``max_pause`` is
        refused by the script itself (status ``duration``): no caller can skip the cap.
        """
        if not (seconds > 0 and math.isfinite(seconds)):  # NaN or inf would never expire
            raise ValueError("a pause needs a positive duration: every pause expires")
        budget_arg = budget.as_arg() if budget else ""
        min_up = budget.min_up if budget else 0
        pools_arg = budget.pools_arg() if budget else ""
        departed_arg = budget.departed_arg() if budget else ""
        return self._change(
            "pause",
            worker,
            repr(float(seconds)),
            reason.value,
            note or "",
            budget_arg,
            min_up,
            repr(float(self.max_pause)),
            pools_arg,
            departed_arg,
        )

    def drain(
        self,
        worker: str,
        reason: Reason,
        seconds: float | None = None,
        note: str | None = None,
    ) -> Change:
        """Take ``worker`` out of the routable set while it finishes what it runs.

        ``seconds``: an operator's drain ends (up again) that long after the server's
        now, within ``max_pause``; None: it lasts until the worker stops (its own
        shutdown), which marks it down. Status ``state`` for a down worker (nothing to
        drain), ``noop`` when a drain that lasts until the stop is under way.
        """
        if seconds is not None and not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError("a drain with an end needs a positive duration")
        return self._change(
            "drain",
            worker,
            reason.value,
            "" if seconds is None else repr(float(seconds)),
            repr(float(self.max_pause)),
            note or "",
        )

    def resume(self, worker: str, reason: Reason = Reason.MANUAL) -> Change:
        """End ``worker``'s pause, or an operator's drain, now (status ``state``: it is
        draining because it is shutting down)."""
        return self._change("resume", worker, reason.value)

    def mark_down(self, worker: str, reason: Reason) -> Change:
        """Mark ``worker`` down, keeping an unexpired pause for its return."""
        return self._change("down", worker, reason.value)

    def resume_expired(self) -> list[Entry]:
        """Resume every pause that has reached its end."""
        return self._changes("expire")

    def reap(self, heartbeat_timeout: float, lease: float = 0.0) -> list[Entry]:
        """Mark down every worker silent for longer than ``heartbeat_timeout``.

        With a ``lease`` (seconds), callers share the work: only the first call in
        each lease period, fleet-wide, scans the table; the others return nothing.
        """
        return self._changes("reap", repr(heartbeat_timeout), repr(lease))

    def forget(self, worker: str, force: bool = False, silent_for: float | None = None) -> Change:
        """Remove a ``down`` worker from the table (status ``state`` when it is not down).

        ``force``: whatever its state. ``silent_for``: only if it is down and has been silent
        for that long (seconds), judged in the same step (the rescuers' automatic forget).
        """
        how = "force" if force else "" if silent_for is None else repr(float(silent_for))
        return self._change("forget", worker, how)

    # -- reads ---------------------------------------------------------------------

    def entries(self) -> dict[str, Entry]:
        """Every well-formed entry, by worker; malformed ones are logged and skipped."""
        return self.read()[1]

    def read(self) -> tuple[int, dict[str, Entry]]:
        """The version and the entries, read together in one atomic round trip.

        The server's time comes with them: the heartbeats are judged as of that time.
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.keys.version)
        pipe.hgetall(self.keys.workers)
        pipe.hgetall(self.keys.heartbeats)
        pipe.hget(self.keys.liveness, "since")
        pipe.time()
        sent = self.clock.local()
        version, rows, beats, since, (seconds, micros) = pipe.execute()
        self.clock.observe(int(seconds) + int(micros) / 1e6, sent, self.clock.local())
        return int(version or 0), decode_entries(rows, beats, float(since or 0))

    def version(self) -> int:
        """The table version: it grows with every change."""
        return int(self.client.get(self.keys.version) or 0)

    def events(self, limit: int = 20) -> list[Event]:
        """The latest ``limit`` events, newest first; malformed ones are skipped."""
        out: list[Event] = []
        if limit <= 0:  # LRANGE 0 -1 would return every event
            return out
        for raw in self.client.lrange(self.keys.events, 0, limit - 1):
            try:
                out.append(_event(json.loads(raw)))
            except (ValueError, TypeError, KeyError):
                logger.warning("rfqueue: skipping malformed event %r", raw[:200])
        return out


def _event(data: Any) -> Event:
    if not isinstance(data, dict):
        raise TypeError(f"expected an object, got {type(data).__name__}")
    if not (isinstance(data["worker"], str) and isinstance(data["action"], str)):
        raise TypeError("worker and action must be strings")
    values: dict[str, Any] = {f: data.get(f) for f in Event.__dataclass_fields__}
    values["time"] = float(data["time"])
    values["until"] = None if values["until"] is None else float(values["until"])
    return Event(**values)


def decode_entries(
    rows: dict[Any, Any], beats: dict[Any, Any], since: float = 0.0
) -> dict[str, Entry]:
    """Decode ``HGETALL`` replies into entries, skipping (and logging) malformed rows.

    A heartbeat older than ``since`` (when beats resumed after an outage) reads as
    ``since``, as ``reap.lua`` counts it.
    """
    entries: dict[str, Entry] = {}
    for key, raw in rows.items():
        name = _text(key)
        try:
            beat = beats.get(key)
            entry = Entry.from_json(raw, max(float(beat), since) if beat is not None else None)
            if entry.worker != name:  # the scripts would write it back under the wrong name
                raise MalformedEntry(f"entry names worker {entry.worker!r}")
        except (MalformedEntry, ValueError) as exc:
            _warn_malformed(name, str(raw)[:200], str(exc))
            continue
        entries[entry.worker] = entry
    return entries


@lru_cache(maxsize=1024)
def _warn_malformed(name: str, raw: str, why: str) -> None:
    """Warn once per malformed row and value: every process re-reads the table each second."""
    logger.warning("rfqueue: skipping malformed table entry %r: %s", name, why)


def _entry_or_none(data: Any) -> Entry | None:
    if not isinstance(data, dict):
        return None
    return Entry.from_json(json.dumps(data))


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
