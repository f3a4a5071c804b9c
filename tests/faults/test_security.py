"""Security on real processes: JSON only, a password-protected Redis, no secret in any output.

Each test starts what it needs: workers and beat through rfqueue.demo.fleet.Fleet, the real
``rfqueue`` console script, the compose producer and the metrics exporter, against the
session's redis-server or a private one started here with a password (TLS: test_security_tls.py).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rfqueue.demo.fleet import Fleet, ManagedProcess, RedisServer, free_port, wait_for
from rfqueue.table import FailureTable
from rfqueue.table.entry import State
from tests.conftest import FAST, stop_fleet
from tests.faults.test_bad_input import assert_survived
from tests.integration.conftest import LEDGER, ROOT, nodename, wait_for_seqs
from tests.reference import APP
from workers.producer import PRODUCER_COMMAND

#: a fresh password per run, so that finding it anywhere can only mean a leak
PASSWORD = "pw-" + secrets.token_hex(12)
WRONG_PASSWORD = "wrong-" + secrets.token_hex(12)

StartRedis = Callable[..., RedisServer]


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``rfqueue`` console script with ``RFQUEUE_REDIS_URL`` set to ``url``."""
    exe = Path(sys.executable).with_name("rfqueue")
    env = {**os.environ, "RFQUEUE_REDIS_URL": url, "CELERY_BROKER_URL": url, "COLUMNS": "200"}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=60)


def produce(fleet: Fleet, count: int, ledger: str = LEDGER) -> subprocess.CompletedProcess[str]:
    """The compose producer's command: ``count`` tasks at 50/s through fleet's broker."""
    argv = [sys.executable, *PRODUCER_COMMAND[1:], "--rate", "50", "--duration", "30"]
    argv += ["--count", str(count), "--ledger", ledger]
    return subprocess.run(argv, capture_output=True, text=True, env=fleet.env, cwd=ROOT, timeout=90)


def start_producer(fleet: Fleet, count: int) -> ManagedProcess:
    """The compose producer's command as a process logging to fleet's directory."""
    argv = [sys.executable, *PRODUCER_COMMAND[1:], "--rate", "50", "--duration", "30"]
    argv += ["--count", str(count)]
    return ManagedProcess(argv, fleet.workdir / "producer.log", fleet.env, ROOT)


def every_log(directory: Path) -> dict[str, str]:
    """Every log file under ``directory`` (workers, beat, producer, exporter, redis)."""
    return {str(p): p.read_text(errors="replace") for p in directory.rglob("*.log")}


def one_clear_line(out: subprocess.CompletedProcess[str]) -> str:
    """A failed command's single stderr line, with no traceback."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0, out
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    return lines[0]


# -- JSON only ---------------------------------------------------------------------------


class Explosive:
    """Unpickling this creates a directory: proof that a pickle payload was deserialized."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def test_pickle_messages_are_refused_by_every_worker_and_never_run(
    three_workers: Fleet, redis_client: Any, app: Any, tmp_path: Path
):
    """A pickle-serialized task (application/x-python-serialize) sent to each worker's queue."""
    # Given three workers of the reference app (accept_content: json)
    names = [nodename(n) for n in ("w1", "w2", "w3")]
    markers = [tmp_path / f"unpickled-by-{name}" for name in names]
    # When each worker's queue gets a pickle message whose unpickling would create a directory
    for seq, (name, marker) in enumerate(zip(names, markers, strict=True)):
        app.send_task(
            "workers.tasks.record",
            args=(seq,),
            kwargs={"sent": Explosive(marker)},
            queue=f"rfqueue.{name}",
            serializer="pickle",
        )
    # Then every worker refuses it without deserializing it, and drops it
    for short in ("w1", "w2", "w3"):
        proc = three_workers.workers[short]
        wait_for(
            lambda proc=proc: (
                "Refusing to deserialize untrusted content of type pickle" in proc.log()
            ),
            30,
            what=f"{short} to refuse the pickle message",
        )
    assert not any(marker.exists() for marker in markers)
    for name in names:
        assert redis_client.llen(f"rfqueue.{name}") == 0
    assert redis_client.hlen("unacked") == 0
    assert redis_client.llen(LEDGER) == 0
    # and every worker, the same process, keeps running JSON tasks sent to it
    for seq, name in enumerate(names, start=100):
        app.send_task("workers.tasks.record", args=(seq,), queue=f"rfqueue.{name}")
    lines = wait_for_seqs(redis_client, {100, 101, 102}, timeout=30)
    assert sorted(line["worker"] for line in lines) == names
    for short in ("w1", "w2", "w3"):
        assert_survived(three_workers.workers[short], short)


# -- passwords ---------------------------------------------------------------------------


def test_a_password_protected_redis_works_and_the_password_is_never_shown(
    start_redis: StartRedis, tmp_path: Path
):
    """Workers, beat, producer, CLI and exporter on a redis-server with requirepass."""
    # Given a redis-server that wants a password, and workers and beat whose URL carries it
    server = start_redis("redis", password=PASSWORD)
    fleet = Fleet(server.url, tmp_path / "fleet", env=FAST, cwd=ROOT, app=APP)
    fleet.workdir.mkdir()
    chaos = {"RFQUEUE_CHAOS_ENABLED": "true", "RFQUEUE_CHAOS_INTERVAL": "1", "RFQUEUE_DRY_RUN": "1"}
    try:
        for name in ("w1", "w2"):
            fleet.start_worker(name, "--concurrency", "1")
        beat = fleet.start_beat(env=chaos)
        for name in ("w1", "w2"):
            fleet.wait_ready(name)
        outputs = password_scenario(server, fleet)
        assert_survived(beat, "beat")
    finally:
        stop_fleet(fleet)
    # Then the password appears in no output and in no log
    logs = every_log(tmp_path)
    assert {"worker-w1.log", "beat-0.log", "metrics.log"} <= {Path(p).name for p in logs}
    for where, text in {**outputs, **logs}.items():
        assert PASSWORD not in text, f"the password leaked into {where}"


def password_scenario(server: RedisServer, fleet: Fleet) -> dict[str, str]:
    """Route, pause, resume and read the table through the password URL; return every output."""
    client = server.client()
    w1, w2 = nodename("w1"), nodename("w2")
    table = FailureTable(client)
    wait_for(lambda: {w1, w2} <= set(table.entries()), 20, what="both workers registered")
    outputs: dict[str, str] = {}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        out = cli(server.url, *args)
        outputs[f"rfqueue {' '.join(args)}"] = out.stdout + out.stderr
        assert out.returncode == 0, out.stderr
        return out

    # routing works: every task runs, on both workers
    produced = produce(fleet, 40)
    outputs["producer"] = produced.stdout + produced.stderr
    assert produced.returncode == 0, produced.stderr
    lines = wait_for_seqs(client, set(range(40)), timeout=60)
    assert {line["worker"] for line in lines} == {w1, w2}
    # the CLI reads and changes the table, and shows the URL masked
    status = run("status")
    assert w1 in status.stdout and "redis://:**@127.0.0.1" in status.stdout
    run("status", "--json")
    run("pause", w1, "--for", "30", "--reason", "security drill")
    wait_for(lambda: table.entries()[w1].state is State.PAUSED, 10, what="w1 paused")
    assert "paused" in run("status").stdout
    run("resume", w1)
    wait_for(lambda: table.entries()[w1].state is State.UP, 10, what="w1 resumed")
    run("chaos", "--dry-run")
    outputs["metrics"] = scrape_metrics(server.url, fleet.workdir)
    return outputs


def scrape_metrics(url: str, workdir: Path) -> str:
    """Start ``rfqueue metrics`` on ``url``, return one scrape of /metrics plus its own output."""
    port = free_port()
    exe = Path(sys.executable).with_name("rfqueue")
    env = {**os.environ, "RFQUEUE_REDIS_URL": url}
    argv = [str(exe), "metrics", "--port", str(port)]
    exporter = ManagedProcess(argv, workdir / "metrics.log", env, ROOT)
    try:
        wait_for(lambda: "serving metrics" in exporter.log(), 30, what="the exporter")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            body: str = reply.read().decode()
        assert 'redis="redis://:**@127.0.0.1' in body  # the table it reads, masked
        return body + exporter.log()
    finally:
        exporter.stop()


def test_a_wrong_password_is_one_clear_line_that_shows_no_password(
    start_redis: StartRedis, tmp_path: Path
):
    """The CLI, the producer and a worker given a wrong (or no) password."""
    # Given a redis-server that wants a password
    server = start_redis("redis", password=PASSWORD)
    wrong = server.url.replace(PASSWORD, WRONG_PASSWORD)
    bare = server.url.replace(f":{PASSWORD}@", "")
    fleet = Fleet(wrong, tmp_path / "fleet", env=FAST, cwd=ROOT, app=APP)
    fleet.workdir.mkdir()
    try:
        # When the producer and a worker start with a wrong password (both retry a while)
        producer = start_producer(fleet, count=5)
        worker = fleet.start_worker("w1", "--concurrency", "1")
        # and the CLI is given a wrong password, or none
        for url in (wrong, bare):
            out = cli(url, "status")
            # Then the CLI fails with one clear line, exit code 1, showing neither password
            line = one_clear_line(out)
            assert out.returncode == 1
            assert line.startswith("rfqueue: error: ") and "Redis" in line, line
            assert PASSWORD not in line and WRONG_PASSWORD not in line
        # and the worker says it cannot connect, with the URL masked
        wait_for(
            lambda: "Cannot connect to redis://:**@" in worker.log(),
            30,
            what="the worker to report its failed connection",
        )
        # and the producer gives up with an error line and exit code 1 (the router's own
        # warning may come first: it cannot read the table either)
        wait_for(lambda: not producer.alive(), 90, what="the producer to give up")
        assert producer.proc.returncode == 1
        assert "producer: error: publishing failed" in producer.log()
    finally:
        stop_fleet(fleet)
    # and no log shows either password
    logs = every_log(tmp_path)
    assert {"worker-w1.log", "producer.log"} <= {Path(p).name for p in logs}
    for where, text in logs.items():
        assert WRONG_PASSWORD not in text and PASSWORD not in text, where
        assert "Traceback" not in text, where
