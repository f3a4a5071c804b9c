"""The failure-state table: one row per worker in Redis, the single source of truth.

Rows (:mod:`~rfqueue.table.entry`) change only through the Lua scripts in ``lua/``,
each one atomic step that decides, writes, logs an event and announces the change
(:mod:`~rfqueue.table.failure_table`); decisions can wait for replicas
(:mod:`~rfqueue.table.replication`). Every process reads a local copy kept fresh from
the change channel (:mod:`~rfqueue.table.snapshot`), one per process
(:mod:`~rfqueue.table.registry`).

Layering: this package imports only the foundation modules at the top of ``rfqueue``
(settings, keys, connection, log). It knows nothing of routing, brokers or workers.
"""

from rfqueue.table.budget import Budget
from rfqueue.table.entry import Entry, MalformedEntry, Reason, State
from rfqueue.table.failure_table import (
    Change,
    Event,
    FailureTable,
    TableError,
    UnknownWorker,
    decode_entries,
)
from rfqueue.table.registry import snapshot_for, stop_snapshots
from rfqueue.table.snapshot import Snapshot

__all__ = [
    "Budget",
    "Change",
    "Entry",
    "Event",
    "FailureTable",
    "MalformedEntry",
    "Reason",
    "Snapshot",
    "State",
    "TableError",
    "UnknownWorker",
    "decode_entries",
    "snapshot_for",
    "stop_snapshots",
]
