"""`rfqueue demo`, the command behind `make demo`: runs to its report, stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rfqueue.demo.fleet import RedisServer, free_port, wait_for
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

RFQUEUE = str(Path(sys.executable).with_name("rfqueue"))


def _env_without_redis() -> dict[str, str]:
    """The environment with no Redis named: the demo starts its own."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("CELERY_BROKER_URL", "RFQUEUE_REDIS_URL") and not k.startswith("RFQUEUE_")
    }


def _started_pids(run_dir: Path) -> dict[int, str]:
    lines = (run_dir / "pids").read_text().splitlines()
    return {int(line.split()[0]): line.split(maxsplit=1)[1] for line in lines}


def _group_alive(pid: int) -> bool:
    """Whether any process of the group ``pid`` leads (a worker's pool children too) lives."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_short_demo_reconciles_to_zero_lost_and_draws_its_report(tmp_path: Path):
    # Given no Redis named in the environment: the demo starts its own
    require_binary("redis-server")
    run_dir = tmp_path / "run"

    # When a short demo runs: 3 workers, 50 tasks/s for 8 s, chaos pausing at every tick
    argv = [
        RFQUEUE,
        "demo",
        "--workers",
        "3",
        "--rate",
        "50",
        "--duration",
        "8",
        "--chaos-probability",
        "1",
        "--seed",
        "7",
        "--no-flower",
        "--run-dir",
        str(run_dir),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, env=_env_without_redis(),
                         timeout=240, cwd=tmp_path)  # fmt: skip

    # Then it exits 0 and its summary names the run folder
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"report written to {run_dir}/" in out.stdout
    assert ", lost 0," in out.stdout
    # And report.json reconciles every task: none lost
    report = json.loads((run_dir / "report.json").read_text())
    assert report["submitted"] >= 300, report["submitted"]
    assert report["lost"] == 0 and report["completed"] == report["submitted"]
    assert report["latency_ms"]["p50"] is not None
    assert sum(w["tasks"] for w in report["workers"].values()) == report["executions"]
    # And every worker took part, and the timeline shows at least one pause
    assert len(report["workers"]) == 3 and all(w["tasks"] > 0 for w in report["workers"].values())
    bands = [b for worker in report["timeline"].values() for b in worker]
    assert any(b["state"] == "paused" and b["end"] > b["start"] for b in bands), bands
    # And the figure is a non-empty PNG
    png = (run_dir / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # And none of the processes it started is still running
    started = _started_pids(run_dir)
    assert sorted(started.values()) == [
        "beat",
        "redis-server",
        *(f"worker demo{i}" for i in (1, 2, 3)),
    ]
    assert [pid for pid in started if _group_alive(pid)] == []


def test_ctrl_c_in_the_middle_stops_every_process_within_seconds(tmp_path: Path):
    # Given a long demo, Flower included, producing tasks
    require_binary("redis-server")
    run_dir = tmp_path / "run"
    log = (tmp_path / "demo.out").open("w")
    argv = [RFQUEUE, "demo", "--rate", "50", "--duration", "120", "--run-dir", str(run_dir)]
    demo = subprocess.Popen(argv, stdout=log, stderr=subprocess.PIPE, text=True,
                            env=_env_without_redis(), cwd=tmp_path)  # fmt: skip
    try:
        wait_for(lambda: "[producing" in (tmp_path / "demo.out").read_text(), 120, interval=0.2,
                 what="the demo to produce")  # fmt: skip
        started = _started_pids(run_dir)
        assert set(started.values()) >= {"redis-server", "beat", "flower", "worker demo1"}

        # When it gets SIGINT, as from Ctrl-C
        sent = time.monotonic()
        demo.send_signal(signal.SIGINT)
        _, err = demo.communicate(timeout=60)
        took = time.monotonic() - sent

        # Then it exits within a few seconds, saying so, with code 130
        assert took < 15, f"took {took:.1f}s to stop"
        assert demo.returncode == 130, err
        assert err.strip().splitlines() == [
            "rfqueue: interrupted; every process the demo started is stopped"
        ]
        # And no process it started is left, pool children included
        assert [pid for pid in started if _group_alive(pid)] == []
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        log.close()


@pytest.mark.parametrize(
    "args, option",
    [
        (["--workers", "0"], "--workers"),
        (["--rate", "-5"], "--rate"),
        (["--duration", "0"], "--duration"),
        (["--pause-min", "5", "--pause-max", "2"], "--pause-max"),
        (["--chaos-probability", "1.5"], "--chaos-probability"),
    ],
)
def test_out_of_range_options_give_one_line_and_exit_2(
    args: list[str], option: str, tmp_path: Path
):
    out = subprocess.run([RFQUEUE, "demo", *args], capture_output=True, text=True, timeout=30,
                         cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], out.stderr
    assert not (tmp_path / "runs").exists()


def test_a_taken_flower_port_is_named(tmp_path: Path):
    # Given something listening on a port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # When the demo is asked to put Flower there
        out = subprocess.run([RFQUEUE, "demo", "--flower-port", str(port)], capture_output=True,
                             text=True, timeout=30, cwd=tmp_path)  # fmt: skip

    # Then it refuses with one line naming the port, and starts nothing
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "--flower-port" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_an_unreachable_redis_is_reported_quickly_without_its_password(tmp_path: Path):
    # Given a Redis URL, with a password, where nothing listens
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    env = {**_env_without_redis(), "RFQUEUE_REDIS_URL": url}

    # When the demo starts
    began = time.monotonic()
    out = subprocess.run([RFQUEUE, "demo", "--no-flower"], capture_output=True, text=True,
                         timeout=60, env=env, cwd=tmp_path)  # fmt: skip

    # Then it says so in one line within a few seconds, the password masked
    assert time.monotonic() - began < 20
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach Redis at redis://:**@127.0.0.1:" in lines[0], lines
    assert "hunter2" not in out.stdout + out.stderr
    assert not (tmp_path / "runs").exists()


def test_on_a_given_redis_the_demo_touches_only_its_own_keys_and_queues(
    redis_server: RedisServer, redis_client: Any, tmp_path: Path
):
    # Given a Redis holding someone else's data: a key, and a task waiting in `celery`
    redis_client.set("app:setting", "keep me")
    redis_client.lpush("celery", "someone else's task")
    env = {**_env_without_redis(), "CELERY_BROKER_URL": redis_server.url}

    # When a short demo runs on it
    argv = [RFQUEUE, "demo", "--rate", "30", "--duration", "4", "--no-flower",
            "--run-dir", str(tmp_path / "run")]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240)

    # Then it ran to its report on that Redis, starting no server of its own
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["lost"] == 0 and report["submitted"] > 0
    assert report["run"]["redis"] == f"given {redis_server.url}"
    assert "redis-server" not in (tmp_path / "run" / "pids").read_text()
    # And the other data is as it was: nobody consumed the `celery` queue
    assert redis_client.get("app:setting") == "keep me"
    assert redis_client.lrange("celery", 0, -1) == ["someone else's task"]
