"""A worker or beat with a bad rfqueue setting stops at once with one line and exit 2."""

from __future__ import annotations

import pytest

from rfqueue.demo.fleet import Fleet, wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"RFQUEUE_POLICY": "bogus"}, "rfqueue_policy"),
        ({"RFQUEUE_CHAOS_MIN_DURATION": "0"}, "rfqueue_chaos_min_duration"),
        ({"RFQUEUE_REDIS_URL": "http://nowhere"}, "rfqueue_redis_url"),
    ],
)
def test_worker_with_bad_setting_exits_2_with_one_line(
    fleet: Fleet, env: dict[str, str], setting: str
):
    # Given a setting rfqueue cannot use
    # When a worker starts with it
    proc = fleet.start_worker("bad", env=env)

    # Then it exits 2 at once, printing one line that names the setting, no traceback
    wait_for(lambda: not proc.alive(), 30, what="the worker to exit")
    assert proc.proc.returncode == 2
    lines = proc.log().strip().splitlines()
    assert lines == [lines[-1]] and lines[0].startswith(f"rfqueue: error: {setting}:"), lines


def test_beat_with_bad_setting_exits_2(fleet: Fleet):
    proc = fleet.start_beat(env={"RFQUEUE_MAX_PAUSED": "-1"})
    wait_for(lambda: not proc.alive(), 30, what="beat to exit")
    assert proc.proc.returncode == 2
    assert "rfqueue_max_paused" in proc.log()
