"""``p2c``: the power of two choices. Draw two up workers, send the task to the less loaded.

A queue's load is its depth at the last read of a :class:`~rfqueue.depth.DepthSampler`
plus the tasks this router sent there since that read (from the router's own routed
counts), so a burst between two reads does not pile onto one queue. Drawing two at
random keeps several producers, each knowing only its own routes, from all choosing
the same queue; the busiest queue stays within about ln ln n of the mean.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rfqueue.depth import DepthSampler
from rfqueue.policies import Policy
from rfqueue.policies.least_loaded import depth_sampler

if TYPE_CHECKING:
    from rfqueue.routed import RoutedCounts
    from rfqueue.settings import Settings
    from rfqueue.snapshot import Snapshot


class PowerOfTwoPolicy(Policy):
    """The lower of two random up queues by sampled depth plus own routes since the sample."""

    name = "p2c"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._random = random.Random(settings.seed).random
        self.sampler: DepthSampler | None = None
        self.routed: RoutedCounts | None = None
        self._generation = -1
        #: the routed counts when the current sample was first seen
        self._base: dict[str, int] = {}

    def start(self, snapshot: Snapshot, routed: RoutedCounts) -> None:
        """Start sampling depths; read this router's routed counts."""
        self.routed = routed
        if self.sampler is None:
            self.sampler = depth_sampler(snapshot, self.settings)
        self.sampler.ensure_started()

    def load(self, queue: str) -> int:
        """Sampled depth of ``queue`` plus what this router sent there since."""
        sampler, routed = self.sampler, self.routed
        if sampler is None or routed is None:
            return 0
        if sampler.generation != self._generation:
            self._generation, self._base = sampler.generation, dict(routed.totals())
        return sampler.depths.get(queue, 0) + routed.count(queue) - self._base.get(queue, 0)

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        n = len(queues)
        if n == 1:
            return queues[0]
        i = int(self._random() * n)
        j = int(self._random() * (n - 1))
        first, second = queues[i], queues[j + 1 if j >= i else j]
        return second if self.load(second) < self.load(first) else first
