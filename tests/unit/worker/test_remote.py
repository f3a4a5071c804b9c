"""The ``rfqueue_sync`` remote-control command, as Celery's control panel runs it."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from celery.worker.control import Panel

from rfqueue.keys import SYNC_COMMAND
from rfqueue.worker.remote import ENFORCER_ATTRIBUTE


class Enforcer:
    def __init__(self) -> None:
        self.woken = threading.Event()

    def wake(self) -> None:
        self.woken.set()


def test_the_command_wakes_the_workers_enforcer() -> None:
    enforcer = Enforcer()
    consumer = SimpleNamespace(**{ENFORCER_ATTRIBUTE: enforcer})
    reply = Panel.data[SYNC_COMMAND](SimpleNamespace(consumer=consumer))
    assert enforcer.woken.is_set()
    assert reply == {"ok": "syncing with the failure table"}


def test_a_worker_without_rfqueue_answers_with_an_error() -> None:
    reply = Panel.data[SYNC_COMMAND](SimpleNamespace(consumer=SimpleNamespace()))
    assert reply == {"error": "rfqueue is not installed in this worker"}
