"""``least_loaded``: each task goes to the up worker whose queue is shortest right now.

A queue's length "right now" is estimated as its true depth (priority lists
included) at the last read of a :class:`~rfqueue.depth.DepthSampler`, which a
background thread repeats every ``depth_interval`` seconds, plus the tasks this
policy sent there since that read. Without the second term every task between two
reads would see the same depths and pile onto the queue that was shortest at the
read (measured in docs/benchmarks.md: 2000/2000/2000/4000 for 10,000 tasks). The
rescuer's own policy counts its own moves the same way, so a rescued backlog is
spread, not poured into the queue that was shortest at the read.
Queues of equal estimate take turns. Routers in other processes are not counted
until the next read: with many producers, ``p2c`` herds less.

The cost per task does not grow with the fleet: each set of queues keeps a heap of
estimates, built once per depth read (O(n), amortized over every task until the next
read), and each task pops and pushes it (O(log n)). An entry that another set's
choice made stale (a worker in two pools) is corrected when it reaches the top.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rfqueue.brokers.redis_layout import redis_depth_reader
from rfqueue.routing.depth import DepthSampler
from rfqueue.routing.policies import Policy
from rfqueue.routing.policies.turns import MAX_SETS

if TYPE_CHECKING:
    from rfqueue.brokers import DepthReader
    from rfqueue.routing.routed import RoutedCounts
    from rfqueue.settings import Settings
    from rfqueue.table.snapshot import Snapshot

#: a heap entry: (estimated load when pushed, turn, queue); turns break ties in order
Entry = tuple[int, int, str]


class LoadEstimate:
    """Sampled depth plus this policy's own choices since the sample, per queue.

    Both live in one dict, a copy of the sample that each choice adds one to: one
    lookup per queue and task, however many queues there are.
    """

    def __init__(self) -> None:
        self.sampler: DepthSampler | None = None
        self._made: list[DepthSampler] = []
        #: the sample the loads start from (-1: none yet)
        self.generation = -1
        #: queue -> depth at that sample plus the tasks this policy sent there since
        self._loads: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(
        self, snapshot: Snapshot, settings: Settings, depths: DepthReader | None = None
    ) -> None:
        """Sample every registered queue on the broker (None: on the table's Redis)."""
        if self.sampler is None:
            read = depths or redis_depth_reader(snapshot.table.client)
            # Threads that start at once each make one; all take the first (list.append is
            # atomic): no lock, so none is held over the sampler's first read.

            def queues() -> tuple[str, ...]:
                return snapshot.all_queues

            self._made.append(DepthSampler(read, queues, settings.depth_interval))
            self.sampler = self._made[0]
        self.sampler.ensure_started()

    def loads(self) -> dict[str, int]:
        """Every queue's estimate, started afresh from a new sample when one came."""
        sampler = self.sampler
        generation = sampler.generation if sampler is not None else -1
        if generation != self.generation:
            with self._lock:
                if generation != self.generation:
                    depths = sampler.depths if sampler is not None else {}
                    self.generation, self._loads = generation, dict(depths)
        return self._loads

    def sync(self) -> int:
        """Start counting afresh when a new sample came; the current sample's generation."""
        self.loads()
        return self.generation

    def load(self, queue: str) -> int:
        """The estimated depth of ``queue`` (sampled depth 0 before the policy started)."""
        return self.loads().get(queue, 0)

    def chose(self, queue: str) -> None:
        """Count one task sent to ``queue`` since the sample."""
        with self._lock:
            loads = self._loads
            loads[queue] = loads.get(queue, 0) + 1


class EstimatingPolicy(Policy):
    """A policy that chooses by :class:`LoadEstimate` (``least_loaded``, ``p2c``)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.estimate = LoadEstimate()

    @property
    def sampler(self) -> DepthSampler | None:
        return self.estimate.sampler

    def start(
        self, snapshot: Snapshot, routed: RoutedCounts, depths: DepthReader | None = None
    ) -> None:
        """Start sampling depths."""
        self.estimate.start(snapshot, self.settings, depths)


class LeastLoadedPolicy(EstimatingPolicy):
    """Smallest estimated depth wins; ties take turns."""

    name = "least_loaded"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._turn = itertools.count()
        self._lock = threading.Lock()
        #: id(queues) -> (queues, the sample's generation, its heap)
        self._heaps: dict[int, tuple[Sequence[str], int, list[Entry]]] = {}

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        estimate = self.estimate
        with self._lock:
            heap = self._heap(queues, estimate.sync())
            while True:  # correct what another set's choices made stale, then take the least
                pushed, _, queue = heap[0]
                load = estimate.load(queue)
                if load == pushed:
                    break
                heapq.heapreplace(heap, (load, next(self._turn), queue))
            heapq.heapreplace(heap, (load + 1, next(self._turn), queue))
            estimate.chose(queue)
        return queue

    def _heap(self, queues: Sequence[str], generation: int) -> list[Entry]:
        known = self._heaps.get(id(queues))
        if known is not None and known[0] is queues and known[1] == generation:
            return known[2]
        if len(self._heaps) > MAX_SETS:
            self._heaps = {}
        load, turn = self.estimate.load, self._turn
        heap = [(load(q), next(turn), q) for q in queues]
        heapq.heapify(heap)
        self._heaps[id(queues)] = (queues, generation, heap)  # keeps the tuple: ids stay unique
        return heap
