"""``rfqueue bench --quick``: runs on a private Redis and real workers, prints every row.

Benchmarks are not timed tests: this checks that the suite runs and reports each
comparison, never the figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rfqueue.bench.report import END, START
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

POLICIES = ("pull", "round_robin", "random", "p2c", "least_loaded", "weighted", "hash")
ROWS = [
    *(f"router cost ({policy})" for policy in POLICIES),
    *(f"per-task cost by fleet size ({policy})" for policy in POLICIES),
    "memory: RSS after",
    "publish throughput: apply_async loop",
    "batch dispatch: dispatch_many vs apply_async loop",
    *(
        f"balance: max/mean ({policy})"
        for policy in ("round_robin", "random", "p2c", "least_loaded", "weighted", "hash")
    ),
    "rescue spread: max/mean (least_loaded)",
    "rescue spread: max/mean (p2c)",
    "end to end: publish + drain, 3 workers",
    "end to end: plain on one queue",
    *(
        f"uneven: {scenario}, {load} ({policy})"
        for scenario in ("one worker 5x slower", "1 task in 10 of 100 ms")
        for load in ("60%", "85%")
        for policy in ("pull", "p2c", "least_loaded")
    ),
    "propagation: pause -> 4 producers' routers (p99)",
    "propagation: pause -> consumer cancelled (p99)",
    "tail latency: p99 with 1 of 4 paused, rotating",
]


def rfqueue(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("rfqueue")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.timeout(900)
def test_quick_run_prints_every_row_and_writes_the_document(tmp_path: Path) -> None:
    # Given a document with hand-written text around the generated section
    require_binary("redis-server")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nintro\n\n{START}\nold figures\n{END}\n\n## Findings\nkept\n")
    # When the quick suite runs
    out = rfqueue("bench", "--quick", "--doc", str(doc), timeout=850)
    # Then it succeeds and its one table has every row, each with a ratio
    assert out.returncode == 0, out.stderr[-3000:]
    for row in ROWS:
        assert row in out.stdout, f"missing row {row!r}:\n{out.stdout}"
    assert out.stdout.count("rfqueue bench (ratio") == 1
    # And the document's generated part was replaced, the rest kept
    text = doc.read_text()
    assert "old figures" not in text
    assert text.startswith("# Benchmarks\n\nintro\n") and text.endswith("## Findings\nkept\n")
    assert "Command: `rfqueue bench --quick --doc" in text
    assert all(row in text for row in ROWS)


def test_unknown_family_is_one_line_and_exit_2() -> None:
    out = rfqueue("bench", "--only", "routing,nope", timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "rfqueue: error: Invalid value for '--only': unknown family nope; "
        "choose from routing, fleet_cost, memory, publish, balance, scale, e2e, uneven, failover"
    ]
    assert out.stdout == ""
