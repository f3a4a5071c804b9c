"""How a rescuer picks the up queue a rescued message goes to: the router's policy."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from rfqueue.routing.policies import Policy

#: picks one of the given up queues for a rescued message
QueueChooser = Callable[[Sequence[str]], str]

#: the task name policies see for a rescued message (its real name is not decoded)
RESCUE_TASK_NAME = "rfqueue.worker.rescue"


def policy_chooser(policy: Policy) -> QueueChooser:
    """Choose rescue targets with the router's policy; round robin if it cannot choose.

    A rescued message is not decoded, so the policy sees no task name or arguments
    (a ``hash`` policy, say, cannot keep affinity for it).
    """
    turn = itertools.count()

    def choose(queues: Sequence[str]) -> str:
        try:
            return policy.choose(queues, RESCUE_TASK_NAME, (), {}, {})
        except Exception:  # a policy that needs the task: spread evenly instead
            return queues[next(turn) % len(queues)]

    return choose
