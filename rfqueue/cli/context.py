"""What every table command shares: settings, the table, remote control, refusals as lines."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click

from rfqueue.brokers import Broker, DepthReader, broker_for
from rfqueue.connection import is_sentinel_url
from rfqueue.control import Refused, RemoteControl
from rfqueue.settings import Settings
from rfqueue.table import FailureTable


@dataclass
class Context:
    """What every command needs: settings, the table, and an app for remote control."""

    settings: Settings
    app: Any

    @property
    def table(self) -> FailureTable:
        return FailureTable.from_settings(self.settings)

    def control(self) -> RemoteControl:
        app = self.app
        if app is None:
            from celery import Celery

            # The broker may be another server than the table's Redis (RabbitMQ, say).
            broker = os.environ.get("CELERY_BROKER_URL") or self.settings.redis_url
            app = Celery("rfqueue-cli", broker=broker)
            app.conf.accept_content = ["json"]
            app.conf.broker_connection_retry = False
            # Remote control is only the fast path: give up on a dead broker quickly.
            app.conf.broker_transport_options = {
                "socket_timeout": 2,
                "socket_connect_timeout": 2,
                "max_retries": 1,
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.2,
            }
            if is_sentinel_url(broker):  # kombu finds the master by this name
                app.conf.broker_transport_options["master_name"] = self.settings.sentinel_master
        return RemoteControl(app)

    @property
    def default_pool(self) -> str:
        """The app's default queue: the pool of workers whose pools are not known."""
        return str(self.app.conf.task_default_queue) if self.app is not None else "celery"

    def broker(self) -> Broker | None:
        """The app's broker, or ``CELERY_BROKER_URL``'s (None: unknown)."""
        url = os.environ.get("CELERY_BROKER_URL")
        conf = self.app.conf if self.app is not None else {"broker_url": url}
        return broker_for(conf, self.settings.socket_timeout)

    def broker_depths(self) -> DepthReader | None:
        """Queue depths from the app's broker, or ``CELERY_BROKER_URL``'s (None: unknown)."""
        broker = self.broker()
        return broker.depths if broker is not None else None


def load_app(path: str | None) -> Any:
    if not path:
        return None
    from celery.bin.celery import find_app

    try:
        return find_app(path)
    except Exception as exc:
        raise click.BadParameter(f"cannot load {path!r}: {exc}", param_hint="'--app'") from None


#: how the command line spells each argument an operation can refuse
_PARAM_HINTS = {"worker": "'WORKER'", "seconds": "'--for'"}


@contextmanager
def refusals(**spelling: str) -> Iterator[None]:
    """An operation's refusal as click's one-line usage error naming the argument.

    ``spelling``: this command's own spelling of an argument (``seconds="'--timeout'"``).
    """
    try:
        yield
    except Refused as exc:
        hint = {**_PARAM_HINTS, **spelling}.get(exc.argument)
        raise click.BadParameter(exc.message, param_hint=hint) from None
