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

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rfqueue.routing.policies import Policy
from rfqueue.routing.policies.turns import MAX_SETS, Turns
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
        #: each pool (set of queues) takes its own turns through its own cycle
        self._turns = Turns()
        #: cycles by queues, by the tuple's identity (the router hands out the same tuple
        #: per pool until the table changes) and then by value
        self._cycles: dict[int, tuple[Sequence[str], tuple[str, ...]]] = {}
        self._by_value: dict[tuple[str, ...], tuple[str, ...]] = {}

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        known = self._cycles.get(id(queues))
        cycle = known[1] if known is not None and known[0] is queues else self._cycle(queues)
        return cycle[self._turns.next(queues) % len(cycle)]

    def _cycle(self, queues: Sequence[str]) -> tuple[str, ...]:
        if len(self._cycles) > MAX_SETS:
            self._cycles, self._by_value = {}, {}
        key = tuple(queues)
        cycle = self._by_value.get(key)
        if cycle is None:  # a re-read of an unchanged table keeps the cycle
            cycle = weighted_cycle(queues, [self.weights.get(q, 1) for q in queues])
            self._by_value[key] = cycle
        self._cycles[id(queues)] = (queues, cycle)
        return cycle
