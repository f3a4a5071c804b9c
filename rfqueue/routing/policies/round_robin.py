"""``round_robin``: up workers take turns, in the order of their names."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rfqueue.routing.policies import Policy

if TYPE_CHECKING:
    from rfqueue.settings import Settings


class RoundRobinPolicy(Policy):
    """Takes turns over whichever workers are up when each task is routed.

    The turn counter is shared across changes of the up set, so a pause shifts the
    rotation but never sends two tasks in a row to the same worker while two are up.
    """

    name = "round_robin"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # next() on itertools.count is atomic under the GIL: safe across threads.
        self._turn = itertools.count()

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        return queues[next(self._turn) % len(queues)]
