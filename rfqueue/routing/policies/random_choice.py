"""``random``: each task goes to a uniformly chosen up worker."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rfqueue.routing.policies import Policy

if TYPE_CHECKING:
    from rfqueue.settings import Settings


class RandomPolicy(Policy):
    """Uniform random choice; seeded by ``rfqueue_seed`` for reproducible runs."""

    name = "random"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._choice = random.Random(settings.seed).choice

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        return self._choice(queues)
