"""Bad Sentinel settings: one clear line, the right exit code, no password, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rfqueue.demo.fleet import free_port
from tests.integration.conftest import ROOT
from tests.sentinel.conftest import rfqueue_cli

SECRET = "s3cret-bad-input"


def test_no_sentinel_answering_is_one_line_naming_them_and_the_master():
    # Given a table URL naming two Sentinels where nothing listens
    ports = free_port(), free_port()
    url = ";".join(f"sentinel://:{SECRET}@127.0.0.1:{port}/0" for port in ports)
    env = {"RFQUEUE_REDIS_URL": url, "RFQUEUE_SENTINEL_MASTER": "tablemaster"}

    # When the CLI needs the table
    out = rfqueue_cli(env, "status")

    # Then it says so in one line and exits 1: both Sentinels and the master named
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and out.stdout == "", out.stderr
    assert lines[0].startswith(
        "rfqueue: error: cannot reach the failure table's Redis: "
        "no master 'tablemaster' from Sentinel 127.0.0.1:"
    ), lines[0]
    assert all(f"127.0.0.1:{port} (" in lines[0] and "refused" in lines[0] for port in ports)
    assert SECRET not in out.stderr and "Traceback" not in out.stderr


def test_a_sentinel_url_without_the_master_name_is_exit_2():
    url = f"sentinel://:{SECRET}@127.0.0.1:{free_port()}/0"
    env = {"RFQUEUE_REDIS_URL": url, "RFQUEUE_SENTINEL_MASTER": ""}
    out = rfqueue_cli(env, "pause", "w1@h", "--for", "10")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "rfqueue: error: rfqueue_sentinel_master: required with a sentinel:// URL"
    ]


def test_a_worker_without_the_master_name_stops_with_one_line():
    # Given the reference app's worker, told to find its table through Sentinel, no master
    env = {
        **os.environ,
        "RFQUEUE_REDIS_URL": f"sentinel://:{SECRET}@127.0.0.1:{free_port()}/0",
        "RFQUEUE_SENTINEL_MASTER": "",
    }
    celery = Path(sys.executable).with_name("celery")
    argv = [str(celery), "-A", "workers.app", "worker", "--hostname", "bad@%h"]
    # When it starts, Then it stops at once: exit 2, one line naming the setting
    out = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "rfqueue: error: rfqueue_sentinel_master: required with a sentinel:// URL"
    )
    assert SECRET not in out.stderr + out.stdout and "Traceback" not in out.stderr
