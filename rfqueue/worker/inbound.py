"""A worker survives whatever bytes land on its queues.

Anyone who can write to the broker can ``LPUSH`` onto a worker's queue list. kombu's
Redis transport decodes each item in the worker's event loop, and an item that is not
a kombu message (not JSON, or JSON of another shape) raises out of that loop: Celery
calls it an "Unrecoverable error" and the worker exits. This consumer bootstep guards
the task channel of every (re)connection, the way Celery itself patches that channel's
QoS for ``worker_disable_prefetch``: such an item is logged as one error line and
dropped (it was already popped and can never be a task), and the worker goes on.

A well-formed message that is not a task Celery can run (an unknown task name, a
pickle payload refused by ``accept_content``) is Celery's to refuse, and it does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import cache
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)

#: set on a channel once guarded, so a second start does not wrap it twice
_GUARDED = "_rfqueue_guarded"


class MalformedMessage(ValueError):
    """An item on a queue that is not a kombu message."""


def problem(payload: Any) -> str | None:
    """What makes ``payload`` (a decoded queue item) unusable as a kombu message, if anything."""
    if not isinstance(payload, dict):
        return f"a JSON {type(payload).__name__}, not an object"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "no 'properties' object"
    if not isinstance(properties.get("delivery_tag"), str):
        return "no 'delivery_tag'"
    info = properties.get("delivery_info")
    # The Redis QoS files every unacknowledged message under its exchange and routing key.
    if not (isinstance(info, dict) and "exchange" in info and "routing_key" in info):
        return "no 'delivery_info' with 'exchange' and 'routing_key'"
    if not isinstance(payload.get("body"), (str, type(None))):
        return "a 'body' that is not a string"
    if not isinstance(payload.get("headers"), (dict, type(None))):
        return "'headers' that are not an object"
    return None


@cache
def checked_message_class(base: type) -> type:
    """A subclass of a channel's ``Message`` class that raises one known error when malformed.

    A subclass, not a function: kombu checks ``isinstance(raw, channel.Message)``.
    """

    class CheckedMessage(base):  # type: ignore[misc]
        def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
            why = problem(payload)
            if why is not None:
                raise MalformedMessage(why)
            try:
                super().__init__(payload, channel=channel, **kwargs)
            except (ValueError, TypeError, AttributeError) as exc:  # a body not in its encoding
                raise MalformedMessage(f"{exc.__class__.__name__}: {exc}") from exc

    return CheckedMessage


def guarded_read(read: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Redis channel's ``_brpop_read`` so that a malformed item is dropped, not raised."""

    def read_one(**options: Any) -> Any:
        try:
            return read(**options)
        except (MalformedMessage, json.JSONDecodeError, UnicodeDecodeError) as exc:
            logger.error("rfqueue: dropped a queue item that is not a kombu message: %s", exc)
            return True  # an item was read: the poller goes on as after a delivery

    return read_one


def guard_channel(channel: Any) -> bool:
    """Guard one kombu Redis channel in place; False for other transports."""
    if getattr(channel, _GUARDED, False):
        return True
    handlers = getattr(channel, "handlers", None)
    if not isinstance(handlers, dict) or "BRPOP" not in handlers:
        return False  # not kombu's Redis channel: nothing known to guard
    channel.Message = checked_message_class(channel.Message)
    channel._brpop_read = guarded_read(channel._brpop_read)
    handlers["BRPOP"] = channel._brpop_read
    setattr(channel, _GUARDED, True)
    return True


class MalformedMessageGuard(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep: guard the task channel after every (re)connect."""

    requires = {"celery.worker.consumer.tasks:Tasks"}
    name = "rfqueue-inbound"

    def start(self, c: Any) -> None:
        channel = getattr(c.task_consumer, "channel", None)
        if channel is not None:
            guard_channel(channel)
