"""Memory: a producer's resident set after 1,000,000 routes against after 10,000.

The routes run in a fresh process (``python -m rfqueue.bench.memory URL COUNT``) so
nothing else of the suite is in its heap; it prints one JSON line with the resident
set size after each checkpoint. The route is ``app.amqp.router.route`` with rfqueue's
default policy, as in the router-cost rows.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys

from rfqueue.bench.common import Bench, Row

#: the checkpoint every comparison starts from
FIRST = 10_000


def rss_kib() -> int:
    """This process's resident set now, in KiB (Linux), else its peak."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def probe(url: str, total: int) -> dict[str, int]:
    """Route ``total`` tasks; resident set after FIRST routes and after all of them."""
    from rfqueue.bench.routing import rfqueue_app

    route = rfqueue_app(url).amqp.router.route
    kwargs = {"user": 7}
    out: dict[str, int] = {}
    for done in range(1, total + 1):
        route({}, "bench.noop", (), kwargs)
        if done in (FIRST, total):
            gc.collect()
            out[str(done)] = rss_kib()
    return out


def run(bench: Bench) -> list[Row]:
    """Resident set after the last route over after the first 10,000."""
    from rfqueue.bench.routing import register_workers

    bench.flush()
    register_workers(bench)
    total = bench.pick(300_000, 1_000_000)
    runs = bench.pick(1, 3)
    ratios, results = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-m", "rfqueue.bench.memory", bench.url, str(total)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
            env=bench.env(),
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        ratios.append(result[str(total)] / result[str(FIRST)])
    last = results[-1]
    grew = (last[str(total)] - last[str(FIRST)]) / 1024
    return [
        Row(
            f"memory: RSS after {total:,} routes / after {FIRST:,}",
            f"{last[str(total)] / 1024:.1f} MiB",
            f"{last[str(FIRST)] / 1024:.1f} MiB",
            sorted(ratios)[len(ratios) // 2],
            "<= 1.01",
            f"{grew:+.2f} MiB over the last {total - FIRST:,} routes; {runs} process(es)",
        )
    ]


def main() -> None:
    url, total = sys.argv[1], int(sys.argv[2])
    result = probe(url, total)
    from rfqueue.table.registry import stop_snapshots

    stop_snapshots()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
