"""One snapshot of the table per Redis and namespace in a process, shared by all its users.

The router, the worker's enforcer and rescuer, the chaos job and the exporter of one
process all read the same :class:`~rfqueue.table.snapshot.Snapshot`: one refresh thread
and one pub/sub connection per process, however many of them there are.
"""

from __future__ import annotations

import os
import threading

from rfqueue.settings import Settings
from rfqueue.table.failure_table import FailureTable
from rfqueue.table.snapshot import Snapshot

_snapshots: dict[tuple[str, str], Snapshot] = {}
#: held for dict lookups only, never over I/O; a forked child gets a new one, as another
#: thread may have held it at the fork (the child would wait on it forever)
_snapshots_lock = threading.Lock()


def _new_lock_in_child() -> None:
    global _snapshots_lock
    _snapshots_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def snapshot_for(settings: Settings) -> Snapshot:
    """The one snapshot per Redis and namespace in this process, shared by its routers."""
    key = (settings.redis_url, settings.namespace)
    with _snapshots_lock:
        snapshot = _snapshots.get(key)
        if snapshot is None:
            snapshot = _snapshots[key] = Snapshot(
                FailureTable.from_settings(settings),
                settings.refresh_interval,
                settings.heartbeat_timeout,
                settings.departed_silence,
            )
    return snapshot


def stop_snapshots() -> None:
    """Stop every snapshot thread of this process (before its Redis goes away)."""
    with _snapshots_lock:
        for snapshot in _snapshots.values():
            snapshot.stop()
