"""The ``rfqueue`` command through Sentinel: what it acknowledges is on a replica."""

from __future__ import annotations

import json
import signal
from typing import Any

from tests.sentinel.conftest import rfqueue_cli, sentinel_env, table_through_sentinel
from tests.sentinel.servers import PASSWORD, SentinelCluster

WORKER = "w1@sentinel-test"


def row(client: Any, worker: str = WORKER) -> dict[str, Any]:
    """``worker``'s entry as stored on the server ``client`` talks to."""
    raw = client.hget("{rfqueue}:workers", worker)
    assert raw is not None, f"no entry for {worker}"
    return dict(json.loads(raw))


def test_status_pause_and_resume_through_sentinel(cluster: SentinelCluster):
    # Given a worker in the table, and rfqueue pointed at the Sentinel, not at a server
    table_through_sentinel(cluster).register(WORKER, f"rfqueue.{WORKER}")
    env = sentinel_env(cluster)
    replica = cluster.replica().client()

    # When an operator pauses it
    out = rfqueue_cli(env, "pause", WORKER, "--for", "60", "--reason", "disk swap")
    assert out.returncode == 0, out.stderr

    # Then the pause is on the replica by the time the command returns (WAIT 1)
    assert row(replica)["state"] == "paused"
    assert row(replica)["note"] == "disk swap"

    # And status finds the table through Sentinel, without printing the master's password
    out = rfqueue_cli(env, "status", "--json")
    assert out.returncode == 0, out.stderr
    workers = {w["worker"]: w for w in json.loads(out.stdout)["workers"]}
    assert workers[WORKER]["state"] == "paused"
    out = rfqueue_cli(env, "status")
    assert out.returncode == 0, out.stderr
    assert "sentinel://:**@127.0.0.1:" in " ".join(out.stdout.split())
    assert PASSWORD not in out.stdout + out.stderr

    # When it is resumed, the replica has that too when the command returns
    out = rfqueue_cli(env, "resume", WORKER)
    assert (out.returncode, out.stdout.strip()) == (0, f"resumed {WORKER}"), out.stderr
    assert row(replica)["state"] == "up"


def test_a_change_no_replica_confirms_is_one_line_and_exit_1(cluster: SentinelCluster):
    # Given a worker in the table, and a replica that has stopped taking anything in
    table_through_sentinel(cluster).register(WORKER, f"rfqueue.{WORKER}")
    replica = cluster.replica()
    assert replica.process is not None
    replica.process.signal(signal.SIGSTOP)
    try:
        # When an operator pauses the worker
        out = rfqueue_cli(sentinel_env(cluster), "pause", WORKER, "--for", "60")
    finally:
        replica.process.signal(signal.SIGCONT)

    # Then the command says in one line that the change is not safe yet, and exits 1
    assert out.returncode == 1
    assert out.stderr == (
        "rfqueue: error: the change reached the master but only 0 of 1 replicas "
        "within 0.5 s; a failover could lose it\n"
    )
    # And the change did reach the master: the error is about its safety, not its making
    assert row(cluster.master().client())["state"] == "paused"
