"""``least_loaded``: each task goes to the up worker whose queue is shortest right now.

A queue's length "right now" is estimated as its true depth (priority lists
included) at the last read of a :class:`~rfqueue.depth.DepthSampler`, which a
background thread repeats every ``depth_interval`` seconds, plus the tasks this
router sent there since that read. Without the second term every task between two
reads would see the same depths and pile onto the queue that was shortest at the
read (measured in docs/benchmarks.md: 2000/2000/2000/4000 for 10,000 tasks).
Queues of equal estimate take turns. Routers in other processes are not counted
until the next read: with many producers, ``p2c`` herds less.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rfqueue.brokers.redis_layout import redis_depth_reader
from rfqueue.routing.depth import DepthSampler
from rfqueue.routing.policies import Policy
from rfqueue.routing.policies.turns import Turns

if TYPE_CHECKING:
    from rfqueue.brokers import DepthReader
    from rfqueue.routing.routed import RoutedCounts
    from rfqueue.settings import Settings
    from rfqueue.table.snapshot import Snapshot


class LoadEstimate:
    """Sampled depth plus this router's own routes since the sample, per queue."""

    def __init__(self) -> None:
        self.sampler: DepthSampler | None = None
        self._made: list[DepthSampler] = []
        self.routed: RoutedCounts | None = None
        self._generation = -1
        #: the routed counts when the current sample was first seen
        self._base: dict[str, int] = {}

    def start(
        self,
        snapshot: Snapshot,
        routed: RoutedCounts,
        settings: Settings,
        depths: DepthReader | None = None,
    ) -> None:
        """Sample every registered queue on the broker (None: on the table's Redis)."""
        self.routed = routed
        if self.sampler is None:
            read = depths or redis_depth_reader(snapshot.table.client)
            # Threads that start at once each make one; all take the first (list.append is
            # atomic): no lock, so none is held over the sampler's first read.

            def queues() -> tuple[str, ...]:
                return snapshot.all_queues

            self._made.append(DepthSampler(read, queues, settings.depth_interval))
            self.sampler = self._made[0]
        self.sampler.ensure_started()

    def load(self, queue: str) -> int:
        """The estimated depth of ``queue``; 0 before the policy started."""
        sampler, routed = self.sampler, self.routed
        if sampler is None or routed is None:
            return 0
        if sampler.generation != self._generation:
            self._generation, self._base = sampler.generation, dict(routed.totals())
        return sampler.depths.get(queue, 0) + routed.count(queue) - self._base.get(queue, 0)


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
        """Start sampling depths; read this router's routed counts."""
        self.estimate.start(snapshot, routed, self.settings, depths)


class LeastLoadedPolicy(EstimatingPolicy):
    """Smallest estimated depth wins; ties take turns."""

    name = "least_loaded"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._turns = Turns()

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        load = self.estimate.load
        least, tied = None, []
        for queue in queues:
            n = load(queue)
            if least is None or n < least:
                least, tied = n, [queue]
            elif n == least:
                tied.append(queue)
        return tied[self._turns.next(queues) % len(tied)]
