"""Drain on shutdown: a worker told to stop leaves the routable set at once.

A SIGTERM (as Kubernetes sends it, to the worker's main process only) makes the worker
``draining``: routers skip it, its queue moves on, it beats and finishes what it runs,
then marks itself down. A SIGKILL during the drain still gets its tasks restored.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rfqueue.control import RemoteControl
from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from rfqueue.keys import Keys
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from tests.faults.conftest import scenario_line
from tests.faults.test_crash import mid_task
from tests.faults.test_rescue import _up
from tests.integration.conftest import nodename, rfqueue_cli, wait_for_seqs
from tests.integration.test_routing import wait_until_routable

#: issue 14's scenario: a worker running two 8-second tasks gets SIGTERM
LONG = 8.0
CONTROL_QUEUE = Keys("rfqueue").control_queue
QUICK = 30


def unacked_of(client: Any, worker: str) -> int:
    """How many delivered, unacknowledged tasks ``worker``'s own queue has out."""
    queue = f"rfqueue.{worker}"
    return sum(json.loads(raw)[2] == queue for raw in client.hgetall("unacked").values())


def state_in(client: Any, worker: str) -> tuple[str, str | None]:
    """``worker``'s state and reason, read in-process (a CLI call takes seconds on a busy box)."""
    entry = FailureTable(client, "rfqueue").entries()[worker]
    return entry.state.value, entry.reason.value if entry.reason else None


def start_three(fleet: Fleet, app: Any, w1_processes: int) -> str:
    """w1 (``w1_processes`` pool processes), w2 and w3 (one each), all routable."""
    fleet.start_worker("w1", "--concurrency", str(w1_processes))
    for name in ("w2", "w3"):
        fleet.start_worker(name, "--concurrency", "1")
    for name in ("w1", "w2", "w3"):
        fleet.wait_ready(name)
    wait_until_routable(app, *(nodename(n) for n in ("w1", "w2", "w3")))
    return nodename("w1")


@contextmanager
def only_w1(redis_client: Any, app: Any) -> Iterator[None]:
    """Inside, w2 and w3 are paused (in-process: quick), so what is sent goes to w1."""
    table, others = FailureTable(redis_client, "rfqueue"), (nodename("w2"), nodename("w3"))
    for other in others:
        assert table.pause(other, 60, Reason.MANUAL).changed
    wait_for(lambda: _up(app) == (f"rfqueue.{nodename('w1')}",), 5, what="only w1 routable")
    # And they consume nothing: a pool's shared queue stays theirs until they cancel it
    control = RemoteControl(app)
    wait_for(lambda: all(control.consumed(w) == [CONTROL_QUEUE] for w in others), 10, what="paused")
    yield
    for other in others:
        assert table.resume(other).changed
    wait_until_routable(app, nodename("w1"), *others)


def busy_w1(
    fleet: Fleet,
    redis_server: RedisServer,
    redis_client: Any,
    app: Any,
    long: int,
    sleep: float = LONG,
) -> str:
    """w1 (``long`` pool processes) running ``long`` tasks of ``sleep`` s; w2, w3 up and idle."""
    from workers.tasks import record

    w1 = start_three(fleet, app, long)
    with only_w1(redis_client, app):
        for seq in range(long):
            record.apply_async(kwargs={"seq": 1000 + seq, "sent": time.time(), "sleep": sleep})
        wait_for(lambda: unacked_of(redis_client, w1) == long, 10, interval=0.05, what="w1 busy")
    return w1


def test_sigterm_drains_a_busy_worker_at_once(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    from workers.tasks import record

    # Given w1 running two 8 s tasks, w2 and w3 idle
    w1 = busy_w1(fleet, redis_server, redis_client, app, long=2)
    worker = fleet.workers["w1"]

    # When w1's main process gets SIGTERM (a warm shutdown) and 30 quick tasks follow
    os.kill(worker.pid, signal.SIGTERM)
    signalled = time.time()
    for seq in range(QUICK):
        record.apply_async(kwargs={"seq": seq, "sent": time.time()})

    # Then all 30 are done within 2 s of the SIGTERM, none by w1
    lines = wait_for_seqs(redis_client, set(range(QUICK)), 30)
    quick = [x for x in lines if x["seq"] < QUICK]
    last = max(x["done"] for x in quick) - signalled
    assert not [x for x in quick if x["worker"] == w1], quick
    assert last < 2.0, f"the last quick task was done {last:.2f} s after the SIGTERM"
    # And w1 is draining meanwhile: not up, still beating
    assert state_in(redis_client, w1) == ("draining", "shutdown")

    # Then the two long tasks complete on w1, which exits cleanly and is down
    lines = wait_for_seqs(redis_client, set(range(QUICK)) | {1000, 1001}, 30)
    assert worker.proc.wait(30) == 0
    assert state_in(redis_client, w1) == ("down", "shutdown")
    runs = Counter(x["seq"] for x in lines)
    assert {x["worker"] for x in lines if x["seq"] >= 1000} == {w1}
    scenario_line(
        "drain on SIGTERM",
        QUICK + 2,
        len(runs),
        sum(n > 1 for n in runs.values()),
        f"SIGTERM to w1 running two {LONG:g} s tasks; the last of {QUICK} quick tasks "
        f"sent after it done elsewhere {last * 1000:.0f} ms after the signal",
    )
    assert set(runs.values()) == {1}


def test_sigkill_during_a_drain_still_restores_its_tasks(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    # Given w1 running one long task, and draining after a SIGTERM
    w1 = busy_w1(fleet, redis_server, redis_client, app, long=1)
    worker = fleet.workers.pop("w1")
    wait_for(lambda: mid_task(redis_client, w1), 10, interval=0.02, what="w1 mid-task")
    os.kill(worker.pid, signal.SIGTERM)
    wait_for(lambda: state_in(redis_client, w1)[0] == "draining", 5, what="w1 draining")

    # When it is killed (SIGKILL, the whole process group) before its task ends
    worker.kill()
    killed = time.monotonic()

    # Then the survivors mark it down for want of a heartbeat and run its task again
    lines = wait_for_seqs(redis_client, {1000}, 30)
    restored_after = time.monotonic() - killed
    assert state_in(redis_client, w1) == ("down", "heartbeat")
    assert [x["worker"] for x in lines] != [w1]
    scenario_line(
        "SIGKILL while draining",
        1,
        len({x["seq"] for x in lines}),
        len(lines) - 1,
        f"SIGTERM then SIGKILL of w1 mid-task; its {LONG:g} s task done elsewhere "
        f"{restored_after:.1f} s after the kill",
    )
    assert len(lines) == 1


def test_drain_wait_returns_after_the_running_task_and_nothing_new_reaches_it(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    from workers.tasks import record

    # Given w1 running one 5 s task, ready by its probe
    w1 = busy_w1(fleet, redis_server, redis_client, app, long=1, sleep=5.0)
    probe = rfqueue_cli(redis_server, "check", w1)
    assert (probe.returncode, probe.stdout) == (0, f"{w1}: ready\n"), probe.stderr

    # When `rfqueue drain --wait` runs, while 20 quick tasks are sent
    answer: list[Any] = []
    started = time.time()
    waiter = threading.Thread(
        target=lambda: answer.append(rfqueue_cli(redis_server, "drain", w1, "--wait"))
    )
    waiter.start()
    wait_for(lambda: state_in(redis_client, w1)[0] == "draining", 5, what="w1 draining")
    probe = rfqueue_cli(redis_server, "check", w1)
    for seq in range(20):
        record.apply_async(kwargs={"seq": seq, "sent": time.time()})
        time.sleep(0.05)
    waiter.join(30)
    returned = time.time()

    # Then it returned after the long task was done, and said so
    out = answer[0]
    assert out.returncode == 0, out.stderr
    assert f"drained {w1} after " in out.stdout
    lines = wait_for_seqs(redis_client, set(range(20)) | {1000}, 30)
    long_done = next(x["done"] for x in lines if x["seq"] == 1000)
    assert long_done <= returned, (long_done, returned)
    # And the probe said draining (exit 3) meanwhile; w1 ran nothing new
    assert (probe.returncode, probe.stdout) == (3, f"{w1}: draining\n")
    assert [x["seq"] for x in lines if x["worker"] == w1] == [1000]
    scenario_line(
        "drain --wait",
        21,
        len({x["seq"] for x in lines}),
        len(lines) - len({x["seq"] for x in lines}),
        f"drain --wait of w1 running a 5 s task returned {returned - started:.1f} s later, "
        f"{returned - long_done:.2f} s after it was done; 20 tasks sent meanwhile ran elsewhere",
    )

    # When it is resumed, its probe says ready again
    assert rfqueue_cli(redis_server, "resume", w1).returncode == 0
    wait_for(lambda: rfqueue_cli(redis_server, "check", w1).returncode == 0, 10, what="w1 ready")


def test_a_remote_shutdown_drains_too(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    from workers.tasks import record

    # Given w1 running a 4 s task (no signal: `celery control shutdown` is a broadcast)
    w1 = busy_w1(fleet, redis_server, redis_client, app, long=1, sleep=4.0)
    worker = fleet.workers["w1"]

    # When it is told to shut down by remote control, and 10 quick tasks follow
    app.control.shutdown(destination=[w1])
    wait_for(lambda: state_in(redis_client, w1)[0] == "draining", 5, what="w1 draining")
    for seq in range(10):
        record.apply_async(kwargs={"seq": seq, "sent": time.time()})

    # Then they run elsewhere, its task completes, and it exits down
    lines = wait_for_seqs(redis_client, set(range(10)) | {1000}, 30)
    assert worker.proc.wait(30) == 0
    assert state_in(redis_client, w1) == ("down", "shutdown")
    assert [x["seq"] for x in lines if x["worker"] == w1] == [1000]
    scenario_line(
        "drain on remote shutdown",
        11,
        len({x["seq"] for x in lines}),
        len(lines) - len({x["seq"] for x in lines}),
        "celery control shutdown to w1 running a 4 s task; 10 tasks sent after ran elsewhere",
    )


def test_a_cold_shutdown_leaves_at_once_and_its_task_runs_elsewhere(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    # Given w1 running a 4 s task
    w1 = busy_w1(fleet, redis_server, redis_client, app, long=1, sleep=4.0)
    worker = fleet.workers["w1"]
    wait_for(lambda: mid_task(redis_client, w1), 10, interval=0.02, what="w1 mid-task")

    # When its main process gets SIGQUIT (a cold shutdown: running tasks are cut short)
    os.kill(worker.pid, signal.SIGQUIT)
    quit_at = time.monotonic()
    worker.proc.wait(30)

    # Then it leaves the table as down (shutdown), and its task runs again elsewhere
    assert state_in(redis_client, w1) == ("down", "shutdown")
    lines = wait_for_seqs(redis_client, {1000}, 30)
    elsewhere = time.monotonic() - quit_at
    assert [x["worker"] for x in lines] != [w1]
    scenario_line(
        "cold shutdown",
        1,
        len({x["seq"] for x in lines}),
        len(lines) - 1,
        f"SIGQUIT to w1 mid-task; its 4 s task done elsewhere {elsewhere:.1f} s after the signal",
    )


def test_a_draining_worker_hands_back_what_it_will_not_start(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    from workers.tasks import record

    # Given w1 running a 15 s task, and holding a task due in 6 s (an ETA, in memory)
    w1 = start_three(fleet, app, w1_processes=2)
    with only_w1(redis_client, app):
        record.apply_async(kwargs={"seq": 1000, "sent": time.time(), "sleep": 15.0})
        record.apply_async(kwargs={"seq": 1, "sent": time.time()}, countdown=6)
        wait_for(lambda: unacked_of(redis_client, w1) == 2, 10, interval=0.05, what="w1 holds it")

    # When w1 gets SIGTERM before that task is due
    os.kill(fleet.workers["w1"].pid, signal.SIGTERM)
    signalled = time.time()

    # Then the held task runs elsewhere when due, not after w1's long task and exit
    lines = wait_for_seqs(redis_client, {1, 1000}, 40)
    held = next(x for x in lines if x["seq"] == 1)
    long_done = next(x["done"] for x in lines if x["seq"] == 1000)
    assert held["sent"] + 6 > signalled, "the test was too slow: the task was due already"
    assert held["worker"] != w1 and held["done"] < long_done, (held, long_done)
    scenario_line(
        "hand back on drain",
        2,
        len({x["seq"] for x in lines}),
        len(lines) - 2,
        f"SIGTERM to w1 running a 15 s task and holding a task due 6 s after it was sent; "
        f"that one done elsewhere {held['done'] - held['sent']:.1f} s after it was sent, "
        f"{long_done - held['done']:.1f} s before the long task ended",
    )
