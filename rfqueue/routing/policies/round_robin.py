"""``round_robin``: up workers take turns, in the order of their names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rfqueue.routing.policies import Policy
from rfqueue.routing.policies.turns import Turns

if TYPE_CHECKING:
    from rfqueue.settings import Settings


class RoundRobinPolicy(Policy):
    """Takes turns over whichever workers are up when each task is routed.

    Each pool (set of queues) takes its own turns (see :mod:`.turns`); a pause makes a
    new set, which starts its own rotation.
    """

    name = "round_robin"

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
        return queues[self._turns.next(queues) % len(queues)]
