"""What the demo's dashboard shows, read from Redis: one :class:`FleetView` per refresh.

Each refresh costs four round trips: the table, the queue depths (priority lists
included, :func:`rfqueue.depth.queue_depths`), the ledger lines added since the last
refresh, and the latest events. The ledger is append-only, so it is read from where
the previous refresh stopped.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from rfqueue.brokers.redis_layout import queue_depths
from rfqueue.table import Event, FailureTable
from rfqueue.table.entry import State

#: seconds over which the current rate of completions is measured
RATE_WINDOW = 2.0


class LedgerTail:
    """Every line of an append-only ledger list, read incrementally."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key
        self.lines: list[dict[str, Any]] = []
        self.done: Counter[str] = Counter()
        self.seqs: set[int] = set()
        self._recent: deque[tuple[float, str]] = deque()

    def poll(self) -> None:
        """Read the lines appended since the last poll."""
        for raw in self.client.lrange(self.key, len(self.lines), -1):
            line = json.loads(raw)
            self.lines.append(line)
            self.done[line["worker"]] += 1
            self.seqs.add(line["seq"])
            self._recent.append((float(line["done"]), line["worker"]))

    def rates(self, now: float, window: float = RATE_WINDOW) -> Counter[str]:
        """Completions per second of each worker over the last ``window`` seconds."""
        while self._recent and self._recent[0][0] < now - window:
            self._recent.popleft()
        counts = Counter(worker for _, worker in self._recent)
        return Counter({w: n / window for w, n in counts.items()})


@dataclass(frozen=True)
class WorkerRow:
    """One worker on the dashboard."""

    worker: str
    queue: str
    state: str
    reason: str | None
    #: seconds until a pause ends, ``None`` when not paused
    left: float | None
    depth: int
    done: int
    rate: float
    #: the queues it consumes besides its own (``-Q``); () when unknown
    pools: tuple[str, ...] = ()


@dataclass(frozen=True)
class FleetView:
    """Everything one refresh of the dashboard shows."""

    rows: list[WorkerRow]
    events: list[Event]
    #: ``starting``, ``producing`` or ``draining``
    phase: str
    elapsed: float
    duration: float
    #: tasks sent so far (known exactly once producing has ended)
    submitted: int | None
    completed: int

    @property
    def depth(self) -> int:
        return sum(row.depth for row in self.rows)

    @property
    def rate(self) -> float:
        return sum(row.rate for row in self.rows)

    @property
    def done(self) -> int:
        return sum(row.done for row in self.rows)


class Monitor:
    """Samples the table, the queues and the ledger of one demo run."""

    def __init__(self, table: FailureTable, ledger: LedgerTail, n_events: int = 6) -> None:
        self.table = table
        self.ledger = ledger
        self.n_events = n_events

    def sample(
        self, phase: str, elapsed: float, duration: float, submitted: int | None = None
    ) -> FleetView:
        entries = self.table.entries()
        depths = queue_depths(self.table.client, [e.queue for e in entries.values()])
        self.ledger.poll()
        events = [e for e in self.table.events(self.n_events * 3) if e.action != "register"]
        now = self.table.now()
        rates = self.ledger.rates(time.time())  # tasks stamp their ends by the local clock
        rows = []
        for name in sorted(entries):
            entry = entries[name]
            state = entry.effective_state(now)
            paused = state is State.PAUSED and entry.until is not None
            rows.append(
                WorkerRow(
                    worker=name,
                    queue=entry.queue,
                    state=state.value,
                    reason=entry.reason.value if entry.reason and state is not State.UP else None,
                    left=entry.until - now if paused and entry.until else None,
                    depth=depths.get(entry.queue, 0),
                    done=self.ledger.done[name],
                    rate=rates[name],
                    pools=entry.pools,
                )
            )
        return FleetView(
            rows=rows,
            events=events[: self.n_events],
            phase=phase,
            elapsed=elapsed,
            duration=duration,
            submitted=submitted,
            completed=len(self.ledger.seqs),
        )
