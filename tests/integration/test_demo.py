"""`rfqueue demo`, the command behind `make demo`, runs to its summary and cleans up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_binary

pytestmark = pytest.mark.integration


def test_demo_runs_to_a_summary_with_nothing_lost_and_no_process_left():
    # Given no Redis named in the environment: the demo starts its own
    require_binary("redis-server")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CELERY_BROKER_URL", "RFQUEUE_REDIS_URL") and not k.startswith("RFQUEUE_")
    }
    exe = Path(sys.executable).with_name("rfqueue")

    # When a short demo runs
    out = subprocess.run(
        [str(exe), "demo", "--rate", "40", "--duration", "6", "--seed", "7"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )

    # Then it exits 0 with a summary that lost nothing, and every worker took part
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert summary.startswith("submitted ") and ", lost 0," in summary, summary
    for name in ("demo1@", "demo2@", "demo3@"):
        assert name in out.stdout
    # And none of the processes it started is still running
    left = subprocess.run(["pgrep", "-f", "hostname demo[0-9]+@"], capture_output=True, text=True)
    assert left.returncode == 1, f"still running: {left.stdout}"


@pytest.mark.parametrize(
    "args, option",
    [
        (["--workers", "0"], "--workers"),
        (["--rate", "-5"], "--rate"),
        (["--duration", "0"], "--duration"),
    ],
)
def test_demo_rejects_out_of_range_options_with_one_line(args: list[str], option: str):
    exe = Path(sys.executable).with_name("rfqueue")
    out = subprocess.run([str(exe), "demo", *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], out.stderr
