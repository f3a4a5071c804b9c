"""``rfqueue_sync``: the remote-control command that has a worker look at its entry now.

A pause, drain or resume writes the table, then tells the worker over Celery's remote
control so that it acts within milliseconds even when the table's change channel is slow
or cut. It sends this one command rather than Celery's ``cancel_consumer`` and
``add_consumer`` for each queue because Celery runs what remote control schedules
(``call_soon``) in no set order: kombu's hub keeps those callbacks in a set. A pause's
``cancel_consumer`` of a pool could run after the resume's ``add_consumer`` and leave an
up worker without its pool, for good (seen in the propagation benchmark). This command
carries no state to run out of order: it only wakes the enforcer, which reads the entry
from the table and brings the worker's own queue and every pool in line at once.
"""

from __future__ import annotations

from typing import Any

from celery.worker.control import control_command, ok

from rfqueue.keys import SYNC_COMMAND

#: the consumer attribute where the rfqueue bootstep leaves its enforcer
ENFORCER_ATTRIBUTE = "rfqueue_enforcer"


@control_command(name=SYNC_COMMAND)  # type: ignore[untyped-decorator]
def rfqueue_sync(state: Any, **_: Any) -> dict[str, str]:
    """Wake this worker's enforcer: it reads its entry and reconciles its consumers."""
    enforcer = getattr(state.consumer, ENFORCER_ATTRIBUTE, None)
    if enforcer is None:
        return {"error": "rfqueue is not installed in this worker"}
    enforcer.wake()
    return dict(ok("syncing with the failure table"))
