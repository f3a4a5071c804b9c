"""A failover under a stream of table changes: every acknowledged change survives it.

A writer pauses and resumes workers as fast as an operator script might, noting each
change whose call returned. The master is killed with SIGKILL in the middle; Sentinel
promotes the replica. Every noted change must be in the new master's event log, and
the same clients (no restart) must carry on against the new master.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import Counter

import redis

from rfqueue.demo.fleet import wait_for
from rfqueue.table import Change, FailureTable
from rfqueue.table.entry import Reason, State
from rfqueue.table.snapshot import Snapshot
from tests.sentinel.conftest import table_through_sentinel
from tests.sentinel.servers import SentinelCluster, wait_for_failover

WORKERS = ("a@writer", "b@writer", "c@writer")
BEATER = "beater@writer"
PROBE = "probe@writer"

#: (version, worker, action, time): what the event log holds for one change
Noted = tuple[int, str, str, float]


class Writer(threading.Thread):
    """Pauses and resumes ``WORKERS`` in turn and beats for ``BEATER``, noting what returned."""

    def __init__(self, table: FailureTable) -> None:
        super().__init__(name="writer", daemon=True)
        self.table = table
        self.acked: list[Noted] = []
        #: time.monotonic() of each successful heartbeat
        self.beats: list[float] = []
        self.raised: Counter[str] = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            worker = WORKERS[n % len(WORKERS)]
            n += 1
            try:
                self.table.heartbeat(BEATER, f"rfqueue.{BEATER}")
                self.beats.append(time.monotonic())
                self._note(self.table.pause(worker, 60, Reason.MANUAL, note=f"n{n}"), "pause")
                self._note(self.table.resume(worker, Reason.MANUAL), "resume")
            except redis.RedisError as exc:
                self.raised[type(exc).__name__] += 1
            self.stopping.wait(0.01)  # an eager operator, not a busy loop on 2 cores

    def _note(self, change: Change, action: str) -> None:
        if change.changed and change.entry is not None:
            e = change.entry
            self.acked.append((e.version, e.worker, action, e.since))


def stop_snapshot(snapshot: Snapshot) -> None:
    """Stop the refresh thread now: wake it from its wait on the channel."""
    snapshot._stopping.set()
    with contextlib.suppress(redis.RedisError):
        snapshot.table.client.publish(snapshot.table.keys.channel, "{}")
    snapshot.stop()


def test_acknowledged_changes_survive_a_failover_and_clients_follow(cluster: SentinelCluster):
    # Given workers in the table, a writer changing their state, and a snapshot (what every
    # router and worker holds) that only re-reads on its own every 10 s
    table = table_through_sentinel(cluster)
    for worker in (*WORKERS, PROBE):
        table.register(worker, f"rfqueue.{worker}")
    snapshot = Snapshot(table_through_sentinel(cluster), refresh_interval=10.0)
    snapshot.ensure_started()
    writer = Writer(table)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) >= 30, 15, what="changes before the failover")

        # When the master is killed (-9) and Sentinel promotes the replica
        old = cluster.kill_master()
        failover = wait_for_failover(cluster, old)
        promoted = time.time()
        # And the old master comes back as a replica of the new one
        cluster.rejoin(old)
        before = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= before + 30, 20, what="changes after the rejoin")
    finally:
        writer.stopping.set()
        writer.join(10)

    # Then every change the writer was told had happened is on the new master
    new_master = cluster.master().client()
    check = FailureTable(new_master, "rfqueue", events_max=10_000)
    logged = {(e.version, e.worker, e.action, e.time) for e in check.events(10_000)}
    missing = [noted for noted in writer.acked if noted not in logged]
    assert not missing, f"{len(missing)} acknowledged changes lost: {missing[:5]}"

    # And the writer's client followed the new master: its heartbeats resumed there
    beat = float(new_master.hget("{rfqueue}:heartbeats", BEATER) or 0)
    assert beat > promoted
    without_table = max(b - a for a, b in itertools.pairwise(writer.beats))

    # And the snapshot's change channel is back: a new pause reaches it within 2 s,
    # well before its own 10 s re-read could have found it
    wait_for(lambda: _subscribers(new_master, check) >= 1, 10, what="the channel re-subscribed")
    table.pause(PROBE, 30, Reason.MANUAL, note="after the failover")
    wait_for(
        lambda: snapshot.entries.get(PROBE) and snapshot.entries[PROBE].state is State.PAUSED,
        2,
        interval=0.02,
        what="the pause to reach the snapshot",
    )
    stop_snapshot(snapshot)
    print(
        f"[sentinel failover] acknowledged {len(writer.acked)} changes ({before} before the "
        f"rejoin), lost 0; calls that raised: {dict(writer.raised) or 'none'}; "
        f"Sentinel promoted the replica {failover:.1f} s after the kill; "
        f"longest gap between the writer's heartbeats {without_table:.1f} s"
    )


def _subscribers(client: redis.Redis, table: FailureTable) -> int:
    counts = dict(client.pubsub_numsub(table.keys.channel))
    return int(counts.get(table.keys.channel, 0))
