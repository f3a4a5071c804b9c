"""TLS on real processes: a TLS-only redis-server reached with ``rediss://`` URLs.

The table client (``Settings.redis_client``), the ``rfqueue`` CLI, the producer and
real workers routing tasks all use one URL,
``rediss://:PASSWORD@127.0.0.1:PORT/0?ssl_cert_reqs=required&ssl_ca_certs=ca.pem``,
with a throwaway CA made by trustme. A redis-server built without TLS skips the test
locally and fails it in CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer, TlsFiles, wait_for
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import State
from tests.conftest import FAST, stop_fleet
from tests.faults.test_bad_input import assert_survived
from tests.faults.test_security import (
    PASSWORD,
    StartRedis,
    cli,
    every_log,
    one_clear_line,
    produce,
)
from tests.integration.conftest import LEDGER, ROOT, ledger, nodename, wait_for_seqs
from tests.reference import APP


@pytest.fixture
def certificates(tmp_path: Path) -> TlsFiles:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it (trustme)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(str(files.cert))
    cert.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    return files


def start_tls_redis(start_redis: StartRedis, certificates: TlsFiles) -> RedisServer:
    """A TLS-only redis-server; skipped locally, failed in CI, if this build has no TLS."""
    try:
        return start_redis("redis-tls", password=PASSWORD, tls=certificates)
    except TimeoutError:
        log = (certificates.ca.parent / "redis-tls" / "redis.log").read_text(errors="replace")
        if "tls" not in log.lower():
            raise
        reason = f"this redis-server has no TLS support: {log.strip().splitlines()[-1]}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def test_rediss_urls_work_for_the_table_client_the_cli_and_workers(
    start_redis: StartRedis, certificates: TlsFiles, tmp_path: Path
):
    """A TLS-only redis-server, reached with rediss://...?ssl_cert_reqs=required&ssl_ca_certs=."""
    # Given a redis-server that speaks only TLS (and wants a password)
    server = start_tls_redis(start_redis, certificates)
    url = server.url
    assert url.startswith("rediss://") and "ssl_cert_reqs=required" in url
    # Then rfqueue's table client (Settings.redis_client) talks to it over TLS
    settings = Settings.load({}, environ={"RFQUEUE_REDIS_URL": url})
    assert settings.redis_client().ping()
    # and nothing talks to it in plain text
    plain = cli(f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0", "status")
    assert plain.returncode == 1 and "rfqueue: error: cannot reach" in one_clear_line(plain)
    # and a server certificate the client cannot verify is refused: verification is on
    unverified = cli(url.split("?")[0], "status")
    assert "certificate verify failed" in one_clear_line(unverified).lower()
    # and so does a worker's broker connection (kombu alone would skip the check)
    unchecked = Fleet(url.split("?")[0], tmp_path / "unchecked", env=FAST, cwd=ROOT, app=APP)
    unchecked.workdir.mkdir()
    try:
        worker = unchecked.start_worker("w9", "--concurrency", "1")
        wait_for(
            lambda: "certificate verify failed" in worker.log(), 30, what="the refused certificate"
        )
        assert " ready." not in worker.log()
    finally:
        unchecked.stop()
    # When two workers and the producer use the rediss:// URL as broker and table
    fleet = Fleet(url, tmp_path / "fleet", env=FAST, cwd=ROOT, app=APP)
    fleet.workdir.mkdir()
    try:
        for name in ("w1", "w2"):
            fleet.start_worker(name, "--concurrency", "1")
        for name in ("w1", "w2"):
            fleet.wait_ready(name)
        outputs = tls_scenario(server, fleet)
    finally:
        stop_fleet(fleet)
    # Then no output and no log shows the password
    logs = every_log(tmp_path)
    assert {"worker-w1.log", "worker-w2.log", "worker-w9.log"} <= {Path(p).name for p in logs}
    for where, text in {**outputs, **logs}.items():
        assert PASSWORD not in text, f"the password leaked into {where}"


def tls_scenario(server: RedisServer, fleet: Fleet) -> dict[str, str]:
    """Route tasks and pause a worker over TLS; return every output."""
    client = server.client()
    w1, w2 = nodename("w1"), nodename("w2")
    table = FailureTable(client)
    wait_for(lambda: {w1, w2} <= set(table.entries()), 20, what="both workers registered")
    produced = produce(fleet, 30)
    assert produced.returncode == 0, produced.stderr
    lines = wait_for_seqs(client, set(range(30)), timeout=60)
    assert {line["worker"] for line in lines} == {w1, w2}
    status = cli(server.url, "status")
    assert status.returncode == 0 and "rediss://:**@127.0.0.1" in status.stdout, status
    paused = cli(server.url, "pause", w2, "--for", "30")
    assert paused.returncode == 0, paused.stderr
    wait_for(lambda: table.entries()[w2].state is State.PAUSED, 10, what="w2 paused")
    # tasks sent after the pause are routed to w1 only
    produced_after = produce(fleet, 10, ledger=f"{LEDGER}:after-pause")
    assert produced_after.returncode == 0, produced_after.stderr
    after = wait_for(
        lambda: len(done := ledger(client, f"{LEDGER}:after-pause")) >= 10 and done,
        60,
        what="the tasks sent after the pause",
    )
    assert {line["worker"] for line in after} == {w1}
    for name in ("w1", "w2"):
        assert_survived(fleet.workers[name], name)
    return {
        "producer": produced.stdout + produced.stderr + produced_after.stderr,
        "status": status.stdout + status.stderr,
        "pause": paused.stdout + paused.stderr,
    }
