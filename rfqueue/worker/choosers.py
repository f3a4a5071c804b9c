"""How a rescuer picks the up queue a rescued message goes to: the router's policy."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

from rfqueue.routing.policies import Policy


class QueueChooser(Protocol):
    """Picks a target for a rescued message of ``pool``: one of the given up queues, or
    ``pool`` itself when ``whole`` (they are every up worker of the pool) and the policy
    pulls (see :meth:`~rfqueue.routing.policies.Policy.choose_in_pool`)."""

    def __call__(self, queues: Sequence[str], pool: str = "", whole: bool = False) -> str: ...


#: the task name policies see for a rescued message (its real name is not decoded)
RESCUE_TASK_NAME = "rfqueue.worker.rescue"


def policy_chooser(policy: Policy) -> QueueChooser:
    """Choose rescue targets with the router's policy; round robin if it cannot choose.

    A rescued message is not decoded, so the policy sees no task name or arguments
    (a ``hash`` policy, say, cannot keep affinity for it). With ``pull`` a message
    goes back to its pool's queue when every up worker of the pool has its task.
    """
    turn = itertools.count()

    def choose(queues: Sequence[str], pool: str = "", whole: bool = False) -> str:
        try:
            return policy.choose_in_pool(
                pool, whole and bool(pool), queues, RESCUE_TASK_NAME, (), {}, {}
            )
        except Exception:  # a policy that needs the task: spread evenly instead
            return queues[next(turn) % len(queues)]

    return choose
