"""``app.control.purge()`` clears the dedicated queues of the app's namespace too.

Celery purges the queues its app knows; a producer's app does not know the workers'
own queues, where rfqueue sends its tasks.
"""

from __future__ import annotations

from typing import Any

from rfqueue.demo.fleet import wait_for
from rfqueue.routing.destination import direct_queue
from rfqueue.table import FailureTable
from tests.integration.conftest import nodename

WAITING = 5


def test_purge_clears_the_tasks_waiting_in_a_workers_own_queue(app: Any, redis_client: Any) -> None:
    # Given a registered worker (not running) whose own queue holds 5 tasks
    # (a name no other test uses: an explicit queue=<name> string teaches the shared
    # in-process app that name, which would hide a purge that only knows the app's queues)
    worker = nodename("purged1")
    FailureTable(redis_client, "rfqueue").register(worker, f"rfqueue.{worker}")
    # (sent there by hand, as a push policy would: the app does not learn the queue)
    own = direct_queue(f"rfqueue.{worker}")
    for seq in range(WAITING):
        app.send_task("workers.tasks.record", args=(seq,), queue=own)
    assert own.name not in app.amqp.queues
    wait_for(lambda: redis_client.llen(f"rfqueue.{worker}") == WAITING, 5, what="5 tasks routed")
    # When the app purges
    purged = app.control.purge()
    # Then they are gone, and counted
    assert purged == WAITING
    assert redis_client.llen(f"rfqueue.{worker}") == 0
