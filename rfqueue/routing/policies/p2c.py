"""``p2c``: the power of two choices. Draw two up workers, send the task to the less loaded.

A queue's load is its depth at the last read of a :class:`~rfqueue.depth.DepthSampler`
plus the tasks this policy sent there since that read (see
:class:`~rfqueue.routing.policies.least_loaded.LoadEstimate`), so a burst between
two reads does not pile onto one queue, nor a rescued backlog. Two dict lookups per
task, whatever the fleet's size. Drawing two at random keeps several
producers, each knowing only its own routes, from all choosing the same queue; the
busiest queue stays within about ln ln n of the mean.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rfqueue.routing.policies.least_loaded import EstimatingPolicy

if TYPE_CHECKING:
    from rfqueue.settings import Settings


class PowerOfTwoPolicy(EstimatingPolicy):
    """The lower of two random up queues by sampled depth plus own routes since the sample."""

    name = "p2c"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._random = random.Random(settings.seed).random

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
        estimate = self.estimate
        loads = estimate.loads()
        chosen = second if loads.get(second, 0) < loads.get(first, 0) else first
        estimate.chose(chosen)
        return chosen
