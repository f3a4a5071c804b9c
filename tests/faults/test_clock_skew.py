"""One clock: a worker whose host clock is 30 s off is judged by the table's Redis clock.

The skewed worker runs with a ``sitecustomize`` that shifts ``time.time`` (and
``time.time_ns``) by ``CLOCK_SKEW`` seconds, as a host with a wrong clock would. Every
time the table compares is the Redis server's, so the worker beating every 0.5 s is
never marked down, nothing it holds is restored as a dead worker's, and it takes its
share of the tasks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, wait_for
from rfqueue.keys import Keys
from tests.faults.conftest import scenario_line
from tests.integration.conftest import LEDGER, nodename

SKEW = -30.0
SITECUSTOMIZE = """
import os, time
_skew = float(os.environ.get("CLOCK_SKEW", "0"))
if _skew:
    _time, _time_ns = time.time, time.time_ns
    time.time = lambda: _time() + _skew
    time.time_ns = lambda: _time_ns() + int(_skew * 1e9)
"""


def _skewed_env(tmp_path: Path, fleet: Fleet, seconds: float) -> dict[str, str]:
    site = tmp_path / "skewed-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = [str(site), fleet.env.get("PYTHONPATH", "")]
    return {"CLOCK_SKEW": str(seconds), "PYTHONPATH": ":".join(p for p in path if p)}


def test_a_worker_with_its_clock_30s_behind_is_never_marked_down(
    fleet: Fleet, redis_client: Any, app: Any, tmp_path: Path
) -> None:
    # Given two workers, one of them on a host whose clock is 30 s behind
    fleet.start_worker("w1", "--concurrency", "1")
    env = _skewed_env(tmp_path, fleet, SKEW)
    fleet.start_worker("skewed", "--concurrency", "1", env=env)
    fleet.wait_ready("w1")
    fleet.wait_ready("skewed")
    skewed = nodename("skewed")
    keys = Keys("rfqueue")
    assert _warned(fleet)  # the skew warning stays for the worker's own log

    # When it beats for 12 s (four heartbeat timeouts) while tasks flow
    from workers.tasks import record

    sent = 0
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        record.apply_async(kwargs={"seq": sent, "ledger": LEDGER})
        sent += 1
        time.sleep(0.05)

    # Then it was never marked down, nor restored as a dead worker's, and ran its share
    def all_done() -> list[Any]:
        lines = [json.loads(raw) for raw in redis_client.lrange(LEDGER, 0, -1)]
        return lines if len({line["seq"] for line in lines}) >= sent else []

    lines = wait_for(all_done, 30, what="every task to run")
    events = [json.loads(raw) for raw in redis_client.lrange(keys.events, 0, -1)]
    downs = [e for e in events if e["worker"] == skewed and e["action"] == "down"]
    assert downs == []
    entry = json.loads(redis_client.hget(keys.workers, skewed))
    assert entry["state"] == "up"
    ran = [line for line in lines if line["worker"] == skewed]
    duplicates = len(lines) - len({line["seq"] for line in lines})
    assert len(ran) >= sent // 4, (len(ran), sent)
    assert duplicates == 0
    scenario_line(
        "clock skew", sent, len({line["seq"] for line in lines}), duplicates,
        f"one worker's clock {SKEW:+.0f} s; marked down {len(downs)} times in 12 s; "
        f"it ran {len(ran)} tasks",
    )  # fmt: skip


def _warned(fleet: Fleet) -> bool:
    """The skew warning comes with the first clock check, right after the worker starts."""
    try:
        wait_for(lambda: "30.00 s behind the table's Redis" in fleet.workers["skewed"].log(), 10)
    except TimeoutError:
        return False
    return True


pytestmark = pytest.mark.faults
