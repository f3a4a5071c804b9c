"""``weighted``: up workers take turns in proportion to static weights.

``rfqueue_weights`` lists ``nodename=weight`` pairs (``"w1@h=3,w2@h=1"``); weights are
whole numbers from 0 to :data:`MAX_WEIGHT`, and a worker that is not listed weighs 1.
For each set of up workers the policy lays out one cycle in which every queue appears
``weight`` times, spread evenly (each queue's turns sit at ``(k + 0.5) / weight`` of
the cycle, as in smooth weighted round robin), and hands out its slots in order, so
every cycle gives exact shares. A worker of weight 0 gets tasks only when every up
worker weighs 0; then they take plain turns.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rfqueue.routing.policies import Policy
from rfqueue.validation import MAX_WEIGHT, parse_weights

if TYPE_CHECKING:
    from rfqueue.settings import Settings

__all__ = ["MAX_WEIGHT", "WeightedPolicy", "parse_weights", "weighted_cycle"]


def weighted_cycle(queues: Sequence[str], weights: Sequence[int]) -> tuple[str, ...]:
    """One cycle of turns: ``queues[i]`` appears ``weights[i]`` times, evenly spread."""
    if not any(weights):
        return tuple(queues)
    slots = sorted(((k + 0.5) / w, i) for i, w in enumerate(weights) if w for k in range(w))
    return tuple(queues[i] for _, i in slots)


class WeightedPolicy(Policy):
    """Exact shares by weight over each cycle; turns shared across threads."""

    name = "weighted"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        by_node = parse_weights(settings.weights)
        self.weights = {settings.queue_for(node): w for node, w in by_node.items()}
        # next() on itertools.count is atomic under the GIL: safe across threads.
        self._turn = itertools.count()
        #: the last queues seen and their cycle; the snapshot hands out the same tuple
        self._last: tuple[Sequence[str], tuple[str, ...]] = ((), ())

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        seen, cycle = self._last
        if queues is not seen:
            if tuple(queues) != tuple(seen):  # a re-read of an unchanged table keeps the cycle
                cycle = weighted_cycle(queues, [self.weights.get(q, 1) for q in queues])
            self._last = (queues, cycle)
        return cycle[next(self._turn) % len(cycle)]
