"""Celery's other execution pools: ``-P solo`` (one process per pod) and ``-P threads``.

rfqueue's worker side runs in the consumer's event loop and its own thread, whatever
pool runs the tasks. With each pool: both workers take tasks, a paused worker stops
consuming its queue and its pool's and runs nothing sent meanwhile, a resumed one takes
tasks again, and a worker's failing tasks are counted (they happen in the worker's own
process with these pools).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from tests.integration.conftest import (
    active_queues,
    nodename,
    rfqueue_cli,
    wait_for_seqs,
)
from tests.integration.test_routing import wait_until_routable

pytestmark = pytest.mark.integration


def send(first: int, count: int) -> set[int]:
    from workers.tasks import record

    for seq in range(first, first + count):
        record.apply_async(kwargs={"seq": seq, "sent": time.time(), "sleep": 0.02})
    return set(range(first, first + count))


@pytest.mark.parametrize("pool", [["-P", "solo"], ["-P", "threads", "--concurrency", "4"]],
                         ids=["solo", "threads"])  # fmt: skip
def test_pause_and_resume_with_another_execution_pool(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any, pool: list[str]
) -> None:
    # Given two workers running their tasks in a solo or thread pool
    for name in ("p1", "p2"):
        fleet.start_worker(name, *pool)
    for name in ("p1", "p2"):
        fleet.wait_ready(name)
    p1, p2 = nodename("p1"), nodename("p2")
    wait_until_routable(app, p1, p2)

    # When 40 tasks are sent, both take some
    lines = wait_for_seqs(redis_client, send(0, 40), 30)
    assert set(Counter(x["worker"] for x in lines)) == {p1, p2}

    # When p1 is paused, it stops consuming its own queue and its pool's
    assert rfqueue_cli(redis_server, "pause", p1, "--for", "60").returncode == 0
    wait_for(lambda: not {f"rfqueue.{p1}", "celery"} & set(active_queues(redis_server, p1)),
             10, 0.2, "p1 to stop consuming")  # fmt: skip
    # Then of 40 tasks sent while it is paused, it runs none
    lines = wait_for_seqs(redis_client, send(100, 40), 30)
    assert {x["worker"] for x in lines if x["seq"] >= 100} == {p2}

    # When it is resumed, it consumes again and takes tasks again
    assert rfqueue_cli(redis_server, "resume", p1).returncode == 0
    wait_for(lambda: {f"rfqueue.{p1}", "celery"} <= set(active_queues(redis_server, p1)),
             10, 0.2, "p1 to consume again")  # fmt: skip
    lines = wait_for_seqs(redis_client, send(200, 60), 30)
    assert p1 in {x["worker"] for x in lines if x["seq"] >= 200}
