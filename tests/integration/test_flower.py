"""Flower as rfqueue's monitor: a pause shows in a worker's active queues and its stats."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer, free_port, wait_for
from tests.integration.conftest import nodename, rfqueue_cli

pytestmark = pytest.mark.integration

CREDENTIALS = "admin:flower-test-pw"


def workers_api(port: int, credentials: str | None = CREDENTIALS) -> dict[str, Any]:
    """Flower's ``/api/workers?refresh=1``: it asks every worker again before answering."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/workers?refresh=1")
    if credentials:
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=15) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def queues(data: dict[str, Any], worker: str) -> set[str]:
    return {q["name"] for q in data[worker].get("active_queues") or []}


def test_a_pause_shows_in_flower_as_a_missing_queue_and_rfqueue_s_state(
    fleet: Fleet, redis_server: RedisServer
):
    # Given two workers and Flower started with the README's command, behind basic auth
    for name in ("w1", "w2"):
        fleet.start_worker(name, "--concurrency", "1")
    for name in ("w1", "w2"):
        fleet.wait_ready(name)
    w1, w2 = nodename("w1"), nodename("w2")
    port = free_port()
    fleet.start_flower(port, CREDENTIALS)

    def both_listed() -> dict[str, Any] | None:
        try:
            data = workers_api(port)
        except OSError:
            return None
        complete = all(data.get(w, {}).get("stats") and queues(data, w) for w in (w1, w2))
        return data if complete else None

    # When Flower's workers API is asked
    data = wait_for(both_listed, 60, interval=0.5, what="Flower to list both workers")

    # Then it lists both, each consuming its own queue, with rfqueue's view in its stats
    assert {w1, w2} <= set(data)
    assert f"rfqueue.{w1}" in queues(data, w1)
    view = data[w1]["stats"]["rfqueue"]
    assert (view["queue"], view["state"], view["until"], view["consuming"]) == (
        f"rfqueue.{w1}",
        "up",
        None,
        True,
    )

    # When w1 is paused with the rfqueue command
    assert rfqueue_cli(redis_server, "pause", w1, "--for", "60").returncode == 0

    # Then Flower shows w1 no longer consuming its queue, and its stats say why and until when
    def paused_in_flower() -> dict[str, Any] | None:
        data = workers_api(port)
        gone = f"rfqueue.{w1}" not in queues(data, w1)
        return data if gone and data[w1]["stats"]["rfqueue"]["state"] == "paused" else None

    data = wait_for(paused_in_flower, 30, interval=0.5, what="Flower to show the pause")
    view = data[w1]["stats"]["rfqueue"]
    assert (view["reason"], view["consuming"]) == ("manual", False)
    assert 0 < view["until"] - time.time() <= 60
    # A pause stops its pool too (celery); only rfqueue's control queue stays
    assert queues(data, w1) == {"rfqueue-control"}
    assert view["pools"] == ["celery"]
    # And w2 is untouched
    assert f"rfqueue.{w2}" in queues(data, w2)
    assert data[w2]["stats"]["rfqueue"]["state"] == "up"
    # And the API stays closed without credentials
    with pytest.raises(urllib.error.HTTPError) as refused:
        workers_api(port, credentials=None)
    assert refused.value.code == 401
