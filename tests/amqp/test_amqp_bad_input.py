"""A RabbitMQ URL the broker refuses: a starting worker says so in one line and exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from tests.conftest import FAST, stop_fleet
from tests.integration.conftest import ROOT
from tests.reference import APP

WRONG = "not-the-password-5e1f"


@pytest.mark.parametrize("problem", ["wrong password", "no such vhost"])
def test_a_refused_login_stops_the_worker_with_one_line_and_exit_2(
    problem: str, amqp_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    # Given a broker URL RabbitMQ refuses
    if problem == "wrong password":
        url = amqp_url.replace("guest:guest@", f"guest:{WRONG}@")
    else:
        url = amqp_url.rsplit("/", 1)[0] + "/rfqueue-no-such-vhost"
    fleet = Fleet(
        url, tmp_path, env={**FAST, "RFQUEUE_REDIS_URL": redis_server.url}, cwd=ROOT, app=APP
    )
    try:
        # When a worker starts with it
        worker = fleet.start_worker("w1", "--concurrency", "1")
        wait_for(lambda: not worker.alive(), 30, what="the worker to exit")
        log = worker.log()
    finally:
        stop_fleet(fleet)
    # Then it exits 2 with one rfqueue line naming the setting, the URL masked
    assert worker.proc.returncode == 2, log
    errors = [line for line in log.splitlines() if line.startswith("rfqueue: error:")]
    assert len(errors) == 1, log
    assert errors[0].startswith("rfqueue: error: broker_url: RabbitMQ refused amqp://guest:**@")
    assert ("ACCESS_REFUSED" if problem == "wrong password" else "NOT_ALLOWED") in errors[0]
    # And no traceback, no password
    assert "Traceback" not in log and WRONG not in log
