"""The Celery broker as rfqueue sees it: one :class:`Broker` per transport.

The failure table always lives in Redis; the broker is whatever the Celery app uses.
:mod:`~rfqueue.brokers.redis` (kombu's Redis transport: lists, the unacked hash, Lua
moves in ``lua/``, with :mod:`~rfqueue.brokers.redis_layout`,
:mod:`~rfqueue.brokers.stranded`, :mod:`~rfqueue.brokers.handoff` and
:mod:`~rfqueue.brokers.wake`) and :mod:`~rfqueue.brokers.amqp` (RabbitMQ) implement
the interface of :mod:`~rfqueue.brokers.base`; :func:`broker_for` picks one by the
scheme of the app's broker URL.

Layering: this package imports only the foundation modules (settings, connection,
log); it knows nothing of the table, routing or workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rfqueue.brokers.amqp import AmqpBroker
from rfqueue.brokers.base import (
    Broker,
    BrokerRefused,
    BrokerUnavailable,
    Chooser,
    DepthReader,
    broker_url,
)
from rfqueue.brokers.redis import RedisBroker

__all__ = [
    "AmqpBroker",
    "Broker",
    "BrokerRefused",
    "BrokerUnavailable",
    "Chooser",
    "DepthReader",
    "RedisBroker",
    "broker_for",
    "broker_url",
]


def broker_for(conf: Mapping[str, Any], socket_timeout: float) -> Broker | None:
    """The :class:`Broker` for a Celery app's config, or None for a transport rfqueue
    cannot look into (messages then simply wait for their worker)."""
    url = broker_url(conf)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    for cls in (RedisBroker, AmqpBroker):
        if scheme in cls.schemes:
            return cls.from_conf(conf, url, socket_timeout)
    return None
