"""Every Redis key and channel rfqueue uses, in one place.

All keys of one namespace share the hash tag ``{namespace}`` so that the Lua
scripts, which touch several keys at once, also run on Redis Cluster.

=============================  ======  =====================================================
key                            type    content
=============================  ======  =====================================================
``{ns}:workers``               hash    nodename -> JSON entry (queue, state, reason, since,
                                       until, note, version, pools, tasks)
``{ns}:heartbeats``            hash    nodename -> epoch seconds of the last heartbeat
``{ns}:liveness``              hash    ``last``: newest heartbeat of any worker; ``since``: when
                                       heartbeats resumed after a fleet-wide gap (an outage)
``{ns}:version``               string  counter; every change takes the next value as the
                                       changed entry's ``version``
``{ns}:events``                list    JSON events, newest first, capped
``{ns}:outcomes``              hash    nodename -> JSON outcome window (``ok``, ``fail`` now and
                                       ``prev_ok``, ``prev_fail`` one interval back, since
                                       ``start``; ``streak`` of failures; ``ejections`` in a row,
                                       ``ejected_until``), written by its beats (heartbeat.lua);
                                       ``calm:<pools as JSON>`` -> until when workers of those
                                       pools, found failing alike, are not judged again
``{ns}:tasks:<digest>``        set     task names a worker registered; ``<digest>`` (the entry's
                                       ``tasks``) is made of them, so equal sets share one key
``{ns}:chaos:ticks``           string  counter of chaos ticks, mixed into the seed
``{ns}:routed``                hash    queue -> tasks routed to it, flushed by routers in batches
``{ns}:rescue:lock:<queue>``   string  held by the one process moving ``queue``'s stranded tasks
``{ns}:rescued``               hash    ``from:<queue>`` / ``to:<queue>`` -> tasks the rescuers moved
                                       out of / into a queue; ``restored:<queue>`` -> a dead
                                       worker's unacknowledged tasks put back into it
``{ns}:rescue:latency``        hash    the rescue latency histogram: bucket bound (``0.5``,
                                       ``+Inf``) -> observations in that bucket alone, ``count``,
                                       ``sum`` (seconds from a worker leaving ``up`` until its
                                       queue was found empty)
``{ns}:rescue:episodes``       hash    nodename -> the entry version whose latency is recorded
                                       (each leave of ``up`` is observed once, by one rescuer)
``{ns}:routers``               hash    router id (``host:pid``) -> JSON ``read`` (its snapshot's
                                       last full read), ``interval``, ``reported``; stale fields
                                       are dropped by the exporter, the key expires when idle
``{ns}:ledger``                list    the demo's audit: one JSON line per task execution
                                       (``workers.tasks.record``); ``:submitted`` its count
``{ns}:bench:<name>``          list    ``rfqueue bench`` scratch (task latencies), deleted after
``{ns}:changes``               pubsub  the changed entry as JSON, after every change
=============================  ======  =====================================================

Every worker also consumes ``{ns}-control`` (``rfqueue-control`` by default), a shared
broker queue for rfqueue's own tasks (the chaos tick): a tick must not wait behind a
worker's backlog, nor be moved around by the rescue.

Each worker consumes its own queue, named ``{queue_prefix}{nodename}``
(``rfqueue.w1@host`` with the default prefix ``rfqueue.``). It is a plain broker
queue: on Redis a list of that name (plus priority lists), on RabbitMQ a queue.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "rfqueue"

#: the message header in which the router records a task's pool (its logical queue), so
#: that the rescue moves the task only inside its pool and a retry stays in it
POOL_HEADER = "rfqueue-pool"

#: the remote-control command that has one worker bring its consumers in line with its
#: table entry now (see rfqueue.worker.remote): pauses, drains and resumes send it
SYNC_COMMAND = "rfqueue_sync"

#: upper bounds (seconds) of the buckets of ``{ns}:rescue:latency``, then ``+Inf``; the
#: rescuers write them and the exporter reads them, so they are part of the key's format
RESCUE_LATENCY_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: seconds after which a router that stopped reporting in ``{ns}:routers`` is taken as gone
ROUTER_GONE_AFTER = 600.0


def bucket_field(bound: float) -> str:
    """The ``{ns}:rescue:latency`` field of a bucket: ``0.5``, ``1``, ``300``, ``+Inf``."""
    return "+Inf" if bound == float("inf") else f"{bound:g}"


@dataclass(frozen=True)
class Keys:
    """The key names of one namespace."""

    namespace: str

    @property
    def _tag(self) -> str:
        return "{" + self.namespace + "}"

    @property
    def workers(self) -> str:
        return f"{self._tag}:workers"

    @property
    def heartbeats(self) -> str:
        return f"{self._tag}:heartbeats"

    @property
    def liveness(self) -> str:
        return f"{self._tag}:liveness"

    @property
    def version(self) -> str:
        return f"{self._tag}:version"

    @property
    def events(self) -> str:
        return f"{self._tag}:events"

    @property
    def outcomes(self) -> str:
        return f"{self._tag}:outcomes"

    def task_set(self, digest: str) -> str:
        """The set of task names whose digest is ``digest`` (see rfqueue.table.service)."""
        return f"{self._tag}:tasks:{digest}"

    @property
    def chaos_ticks(self) -> str:
        return f"{self._tag}:chaos:ticks"

    @property
    def routed(self) -> str:
        return f"{self._tag}:routed"

    def rescue_lock(self, queue: str) -> str:
        return f"{self._tag}:rescue:lock:{queue}"

    @property
    def rescued(self) -> str:
        return f"{self._tag}:rescued"

    @property
    def rescue_latency(self) -> str:
        return f"{self._tag}:rescue:latency"

    @property
    def rescue_episodes(self) -> str:
        return f"{self._tag}:rescue:episodes"

    @property
    def routers(self) -> str:
        return f"{self._tag}:routers"

    @property
    def ledger(self) -> str:
        return f"{self._tag}:ledger"

    def bench(self, name: str) -> str:
        return f"{self._tag}:bench:{name}"

    @property
    def channel(self) -> str:
        """Pub/sub: each changed entry as stored, plus ``beat`` (the server time) when
        the change is the worker's own beat (a registration, a beat that revives it)."""
        return f"{self._tag}:changes"

    @property
    def control_queue(self) -> str:
        """The broker queue of rfqueue's own tasks, which every worker consumes."""
        return f"{self.namespace}-control"

    @property
    def reap_lease(self) -> str:
        """Held for a moment by the one process whose reap scans the fleet (see reap.lua)."""
        return f"{self._tag}:reap:lease"

    def table_keys(self) -> list[str]:
        """The KEYS argument every table script takes, in its order."""
        return [
            self.workers,
            self.heartbeats,
            self.version,
            self.events,
            self.liveness,
            self.reap_lease,
            self.outcomes,
        ]
