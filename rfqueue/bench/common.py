"""What every benchmark family shares: the run's context, result rows, fleets, statistics.

A row compares rfqueue with a baseline measured side by side in the same run,
against the same private redis-server, as a ratio of medians of several runs.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rfqueue.demo.fleet import ManagedProcess, RedisServer, wait_for
from rfqueue.keys import Keys

#: the environment variable that makes the bench app plain Celery
PLAIN = "BENCH_PLAIN_CELERY"
#: seconds of kombu's ``polling_interval`` (its BRPOP timeout, 1 s by default) in the
#: bench app, to try how fast a resumed worker picks up its queue; unset: the default
POLLING_INTERVAL = "BENCH_POLLING_INTERVAL"
#: a bench worker's work takes this many times longer (unset: 1)
SLOWDOWN = "BENCH_SLOWDOWN"

#: the bench app's worker command (see rfqueue/bench/app.py)
WORKER_ARGV = ("-A", "rfqueue.bench.app", "worker", "--concurrency", "1", "--loglevel", "INFO")


@dataclass
class Row:
    """One line of the table: what rfqueue did, what the baseline did, their ratio."""

    name: str
    ours: str
    baseline: str
    ratio: float
    #: "<= 1.2", ">= 5" and so on; empty when only reported
    target: str = ""
    note: str = ""

    @property
    def met(self) -> bool | None:
        """Whether the ratio meets the target; None when there is none."""
        if not self.target:
            return None
        op, bound = self.target.split()
        return self.ratio <= float(bound) if op == "<=" else self.ratio >= float(bound)


@dataclass
class Bench:
    """One run of the suite: its Redis, its scale, where logs go."""

    server: RedisServer
    workdir: Path
    quick: bool
    log: Callable[[str], None] = print
    keys: Keys = field(default_factory=lambda: Keys("rfqueue"))

    @property
    def url(self) -> str:
        return self.server.url

    def pick(self, quick: Any, full: Any) -> Any:
        """The quick mode's value or the full run's."""
        return quick if self.quick else full

    def client(self) -> Any:
        return self.server.client()

    def flush(self) -> None:
        """Start a measurement from an empty Redis."""
        self.client().flushall()

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a worker or producer process of this run."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RFQUEUE_")}
        return {**env, "CELERY_BROKER_URL": self.url, **extra}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def celery_bin() -> str:
    local = Path(sys.executable).with_name("celery")
    return str(local) if local.exists() else shutil.which("celery") or "celery"


class BenchFleet:
    """Workers of the bench app (rfqueue's, or plain Celery's), stopped by pid."""

    def __init__(self, bench: Bench, plain: bool = False) -> None:
        self.bench = bench
        self.plain = plain
        self.procs: dict[str, ManagedProcess] = {}

    def start(
        self, names: Sequence[str], queues: Sequence[str] = (), pool: str = "", **env: str
    ) -> None:
        """Start ``names`` (``w1``...) and wait until each is ready; plain ones take ``-Q``
        with their queue in ``queues`` and, when given, the shared ``pool`` queue too."""
        extra = {PLAIN: "1"} if self.plain else {}
        for i, name in enumerate(names):
            argv = [celery_bin(), *WORKER_ARGV, "--hostname", f"{name}@%h"]
            if self.plain:
                argv += ["-Q", ",".join(q for q in (queues[i], pool) if q)]
            side = "plain" if self.plain else "rfqueue"
            log = self.bench.workdir / f"{side}-{name}.log"
            self.procs[name] = ManagedProcess(argv, log, self.bench.env(**extra, **env))
        for name, proc in self.procs.items():
            wait_for(partial(_ready, proc), 60, interval=0.05, what=f"worker {name}")

    def stop(self) -> None:
        """SIGTERM every worker at once, then wait for each."""
        for proc in self.procs.values():
            proc.signal(15)
        for proc in self.procs.values():
            proc.stop()
        self.procs.clear()


def _ready(proc: ManagedProcess) -> bool:
    if not proc.alive():
        raise RuntimeError(f"bench worker exited:\n{proc.log()[-2000:]}")
    return " ready." in proc.log()


@contextmanager
def fleet(
    bench: Bench, names: Sequence[str], plain: bool = False, pool: str = "", **env: str
) -> Iterator[Any]:
    """A started fleet for the block; plain workers consume their rfqueue-named queue
    (and ``pool``, when given, as every rfqueue worker consumes its pool)."""
    workers = BenchFleet(bench, plain)
    try:
        workers.start(names, [queue_name(n) for n in names], pool, **env)
        yield workers
    finally:
        workers.stop()


def host() -> str:
    import socket

    return socket.gethostname()


def queue_name(name: str) -> str:
    """The dedicated queue of bench worker ``name`` (``w1`` -> ``rfqueue.w1@host``)."""
    return f"rfqueue.{name}@{host()}"


def drained(client: Any, queues: Sequence[str]) -> bool:
    """Nothing waiting in ``queues`` and nothing delivered but unacknowledged."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(queue)
    pipe.hlen("unacked")  # kombu's Redis transport: delivered, not yet acked
    return not any(pipe.execute())


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
