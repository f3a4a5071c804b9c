"""What the Fleet page's handlers call: one table client, one depth reader, one remote control.

Made once per Flower process from the Celery app Flower serves. Every method blocks
on Redis or the broker, so the handlers run them on Flower's thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rfqueue.brokers import broker_for
from rfqueue.brokers.redis_layout import redis_depth_reader
from rfqueue.control import (
    Outcome,
    Refused,
    RemoteControl,
    drain_worker,
    pause_worker,
    resume_worker,
)
from rfqueue.flower.document import FleetSources, fleet_document
from rfqueue.settings import Settings
from rfqueue.table import FailureTable

#: a form's fields, each a string (Tornado's request arguments, decoded)
Form = Mapping[str, str]


class FleetBackend:
    """The table, the broker and remote control, as the Fleet page uses them."""

    def __init__(self, settings: Settings, celery_app: Any) -> None:
        self.settings = settings
        self.table = FailureTable.from_settings(settings)
        broker = broker_for(celery_app.conf, settings.socket_timeout)
        # A transport rfqueue cannot look into: the table's Redis, the broker when it is Redis.
        depths = broker.depths if broker is not None else redis_depth_reader(self.table.client)
        self.sources = FleetSources(self.table, depths, settings)
        self.control = RemoteControl(celery_app)
        #: the page's buttons, by name (the states that show each: BUTTONS in static/fleet.js)
        self.actions: dict[str, Callable[[str, Form], Outcome]] = {
            "pause": self.pause,
            "drain": self.drain,
            "resume": self.resume,
        }

    def document(self) -> dict[str, Any]:
        """The Fleet page's JSON document (see :mod:`rfqueue.flower.document`)."""
        return fleet_document(self.sources, actions=self.actions)

    def pause(self, worker: str, form: Form) -> Outcome:
        """``rfqueue pause WORKER --for SECONDS --reason TEXT``, from a form."""
        seconds = parse_seconds(form.get("seconds", ""))
        note = form.get("reason", "").strip() or None
        return pause_worker(
            self.table, self.control, worker, seconds, self.settings.max_pause, note=note
        )

    def drain(self, worker: str, form: Form) -> Outcome:
        """``rfqueue drain WORKER [--timeout SECONDS] [--reason TEXT]``, from a form.

        Without ``seconds`` the drain lasts until the worker stops, is resumed, or
        ``max_pause`` has passed.
        """
        text = form.get("seconds", "").strip()
        seconds = parse_seconds(text) if text else self.settings.max_pause
        note = form.get("reason", "").strip() or None
        return drain_worker(self.table, self.control, worker, seconds, note=note)

    def resume(self, worker: str, form: Form) -> Outcome:
        """``rfqueue resume WORKER``."""
        return resume_worker(self.table, self.control, worker)


def parse_seconds(text: str) -> float:
    """A form's ``seconds`` field as a number; refused with one line when it is not one."""
    try:
        return float(text.strip())
    except ValueError:
        raise Refused(f"{text.strip()!r} is not a number of seconds", "seconds") from None
