"""Beat faults: a dead beat leaves no worker paused past its expiry; two beats keep the budget."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from typing import Any

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from rfqueue.table import FailureTable
from rfqueue.table.entry import Entry, State
from tests.faults.conftest import scenario_line
from tests.integration.test_chaos import Observer

NAMES = ("w1", "w2", "w3")


def chaos_env(**changes: str) -> dict[str, str]:
    env = {
        "RFQUEUE_CHAOS_ENABLED": "true",
        "RFQUEUE_CHAOS_INTERVAL": "0.5",
        "RFQUEUE_CHAOS_PROBABILITY": "1",
        "RFQUEUE_CHAOS_K": "2",
        "RFQUEUE_CHAOS_MIN_DURATION": "3",
        "RFQUEUE_CHAOS_MAX_DURATION": "4",
        "RFQUEUE_MAX_PAUSED": "2",
        "RFQUEUE_MIN_UP": "1",
    }
    env.update({f"RFQUEUE_{k.upper()}": v for k, v in changes.items()})
    return env


def start_workers(fleet: Fleet, env: dict[str, str]) -> None:
    for name in NAMES:
        fleet.start_worker(name, "--concurrency", "1", env=env)
    for name in NAMES:
        fleet.wait_ready(name)


def paused(table: FailureTable) -> list[Entry]:
    return [e for e in table.entries().values() if e.state is State.PAUSED]


def resumed_at(log: str, worker: str, after: float) -> float | None:
    """When the worker's own log says it went back to consuming its queue, after ``after``."""
    pattern = rf"\[(\S+ \S+): INFO/MainProcess\] rfqueue: {re.escape(worker)} resumes consuming"
    for match in re.finditer(pattern, log):
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if at > after:
            return at
    return None


def test_killed_beat_leaves_nobody_paused_past_expiry(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any
):
    # Given three workers and beat pausing two of them at once (3-4 s pauses)
    env = chaos_env()
    start_workers(fleet, env)
    beat = fleet.start_beat(env=env)
    table = FailureTable(redis_server.client(), "rfqueue")
    two = wait_for(
        lambda: (p := paused(table)) and len(p) == 2 and p,
        30,
        interval=0.05,
        what="two workers paused",
    )

    # When beat is killed with SIGKILL while they are paused
    beat.kill()
    # (a tick already in a queue may still run once: take the pauses as they are now)
    wait_for(
        lambda: all(e.until and e.until < time.time() - 1.5 for e in two),
        10,
        interval=0.2,
        what="both pauses to expire",
    )

    # Then each worker went back to consuming within 1 s of its pause's end, on its own
    lateness = {}
    for entry in two:
        name = entry.worker.split("@")[0]
        at = resumed_at(fleet.workers[name].log(), entry.worker, entry.since)
        assert at is not None, f"{entry.worker} never resumed consuming"
        lateness[entry.worker] = at - (entry.until or 0)
    assert all(late < 1.0 for late in lateness.values()), lateness
    late = ", ".join(f"{w} {s * 1000:.0f} ms" for w, s in sorted(lateness.items()))
    scenario_line("beat killed", 0, 0, 0, f"beat killed in 2 pauses; resumed {late} after expiry")


def test_two_beats_never_exceed_the_budget(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any
):
    # Given three workers and TWO beats running chaos twice a second, budget one out
    env = chaos_env(chaos_min_duration="0.5", chaos_max_duration="1.5", max_paused="1")
    start_workers(fleet, env)
    beats = [
        fleet.start_beat(env={**env, "CELERY_BEAT_SCHEDULE": str(fleet.workdir / f"beat{i}")})
        for i in (1, 2)
    ]
    table = FailureTable(redis_server.client(), "rfqueue")
    observer = Observer(table, redis_server)
    sampler = threading.Thread(target=observer.sample_budget, daemon=True)

    # When they run for 30 s, sampled every 100 ms
    sampler.start()
    started = time.time()
    wait_for(lambda: time.time() - started >= 30, 35, interval=0.5, what="30 s of chaos")
    observer.stop.set()
    sampler.join(5)

    # Then one worker at most was ever out, though both beats sent ticks all along
    pauses = [ev for ev in table.events(1000) if ev.action == "pause" and ev.time >= started]
    sent = [len(re.findall(r"Sending due task rfqueue-chaos", b.log())) for b in beats]
    scenario_line(
        "two beats",
        0,
        0,
        0,
        f"2 beats for 30 s: ticks sent {sent}, pauses {len(pauses)}, "
        f"samples {observer.samples}, most out at once {observer.max_not_up}",
    )
    assert all(n >= 30 for n in sent), sent
    assert observer.samples >= 200
    assert len(pauses) >= 8
    assert observer.max_not_up == 1
