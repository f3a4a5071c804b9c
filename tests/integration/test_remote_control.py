"""Remote control's fast path against a real worker: quick pauses and resumes never leave
it without one of its queues.

Celery runs the callbacks remote control schedules (``call_soon``) in no set order.
With one ``cancel_consumer`` and one ``add_consumer`` per queue, a pause followed at
once by a resume could run crossed and leave an up worker without its pool for good
(the propagation benchmark saw it in one run of three). rfqueue sends one stateless
``rfqueue_sync`` command instead, and the worker reads its entry from the table.
"""

from __future__ import annotations

import time
from typing import Any

from rfqueue.control import RemoteControl, pause_worker, resume_worker
from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from rfqueue.table import FailureTable
from rfqueue.table.entry import State
from tests.conftest import FAST
from tests.integration.conftest import active_queues, nodename

CYCLES = 5
ROUNDS = 20


def test_pauses_and_resumes_in_quick_succession_leave_every_queue_consumed(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
) -> None:
    # Given a worker of two pools, celery and video
    fleet.start_worker("rc1", "--concurrency", "1", "-Q", "celery,video")
    fleet.wait_ready("rc1")
    worker = nodename("rc1")
    table = FailureTable(redis_client)
    expected = {f"rfqueue.{worker}", "celery", "video", "rfqueue-control"}
    wait_for(lambda: set(active_queues(redis_server, worker)) == expected, 10, 0.2, "all queues")
    assert table.entries()[worker].pools == ("celery", "video")

    control = RemoteControl(app)

    def consumed() -> set[str]:  # what `celery inspect active_queues` asks, in-process
        return set(control.consumed(worker) or ())

    for _ in range(ROUNDS):  # before the fix, 3 runs of 3 lost a pool within 20 rounds
        # When an operator pauses and resumes it several times, each resume right after
        for _ in range(CYCLES):
            pause_worker(table, control, worker, 60, max_pause=3600)
            resume_worker(table, control, worker)
        # Then it is up and, once the commands have run, consumes its queue and both pools
        assert table.entries()[worker].state is State.UP
        wait_for(lambda: consumed() == expected, 10, 0.2, "every queue consumed again")
    # And it still does a few beats later (nothing left over undoes it)
    time.sleep(3 * float(FAST["RFQUEUE_HEARTBEAT_INTERVAL"]))  # beats to pass, no condition
    assert set(active_queues(redis_server, worker)) == expected
