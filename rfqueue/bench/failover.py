"""The two families that need workers to pause: propagation, then tail latency under chaos.

They share one fleet of four rfqueue workers of the bench app, started once.
"""

from __future__ import annotations

from rfqueue.bench import chaos, propagation
from rfqueue.bench.common import Bench, Row, fleet

NAMES = ("w1", "w2", "w3", "w4")


def run(bench: Bench) -> list[Row]:
    bench.flush()
    with fleet(bench, NAMES) as workers:
        rows = propagation.run(bench, workers, NAMES)
        rows += chaos.run(bench, NAMES)
    return rows
