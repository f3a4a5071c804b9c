"""``rfqueue flower`` on a real fleet: the Fleet page's document and actions, behind basic auth."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from rfqueue.table import FailureTable
from tests.integration.conftest import wait_for_seqs
from tests.integration.fleet_page import decided, depth, paused_with_backlog, start_rfqueue_flower

pytestmark = pytest.mark.integration

CREDENTIALS = "admin:fleet-test-pw"
WRONG = "admin:not-the-password"


def test_fleet_page_shows_a_paused_worker_s_queue_and_resumes_it(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    # Given w2 paused by hand with tasks waiting in its queue, and rfqueue flower behind
    # basic auth under a URL prefix (Flower's own options, passed through)
    scene = paused_with_backlog(fleet, redis_server, redis_client, app)
    flower = start_rfqueue_flower(fleet, CREDENTIALS, "--enable_events=False", prefix="/ops")

    # When the Fleet page's document is asked for
    status, doc = flower.request("/rfqueue/api/fleet", CREDENTIALS)

    # Then it shows w2 paused, why, for how long, and the true depth of its queue
    assert status == 200
    rows = {w["worker"]: w for w in doc["workers"]}
    w2 = rows[scene.w2]
    assert (w2["shown"], w2["reason"], w2["note"]) == ("paused", "manual", "kernel upgrade")
    assert 0 < w2["remaining"] <= 120
    assert w2["depth"] == scene.depth == depth(redis_client, scene.w2)
    assert w2["routed"] >= 0 and w2["heartbeat_age"] < 3
    assert rows[scene.w1]["shown"] == "up"
    assert doc["budget"]["not_up"] == 1 and doc["budget"]["up"] == 1
    assert any(e["worker"] == scene.w2 and e["action"] == "pause" for e in doc["events"])

    # When someone with the wrong password reads it, or tries to resume w2
    table = FailureTable(redis_client, "rfqueue")
    before = decided(table, scene.w2)
    assert flower.request("/rfqueue/api/fleet", WRONG)[0] == 401
    assert flower.request(f"/rfqueue/api/worker/resume/{scene.w2}", WRONG, {})[0] == 401
    assert flower.request(f"/rfqueue/api/worker/resume/{scene.w2}", None, {})[0] == 401
    # Then nothing changed
    assert decided(table, scene.w2) == before
    assert depth(redis_client, scene.w2) == scene.depth

    # When an authenticated operator resumes w2
    status, answer = flower.request(f"/rfqueue/api/worker/resume/{scene.w2}", CREDENTIALS, {})
    resumed_at = time.time()

    # Then it says so, the table has w2 up, and w2 drains its own queue
    assert (status, answer["message"]) == (200, f"resumed {scene.w2}")
    assert table.entries()[scene.w2].state.value == "up"
    wait_for(lambda: depth(redis_client, scene.w2) == 0, 30, interval=0.1, what="w2's queue")
    lines = wait_for_seqs(redis_client, scene.seqs, 60)
    assert set(Counter(line["seq"] for line in lines).values()) == {1}
    after = [x for x in lines if x["worker"] == scene.w2 and x["done"] >= resumed_at]
    assert len(after) >= scene.depth
    # And the page's document says the same
    _, doc = flower.request("/rfqueue/api/fleet", CREDENTIALS)
    w2 = {w["worker"]: w for w in doc["workers"]}[scene.w2]
    assert (w2["shown"], w2["depth"]) == ("up", 0)
