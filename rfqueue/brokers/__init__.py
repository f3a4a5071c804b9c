"""What rfqueue needs from a Celery broker, one class per transport.

The failure table always lives in Redis; the broker is whatever the Celery app uses.
The rescuer and the load-aware policies need three things from it: the depth of
queues, moving the messages that wait in one queue to others, and putting back the
unacknowledged messages of a worker that died. :class:`Broker` declares them, with
defaults that do nothing; :mod:`rfqueue.brokers.redis` and :mod:`rfqueue.brokers.amqp`
implement them with what each transport offers. :func:`broker_for` picks one by the
scheme of the app's broker URL.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar

from rfqueue.depth import DepthReader

__all__ = ["Broker", "BrokerRefused", "BrokerUnavailable", "Chooser", "DepthReader", "broker_for"]

logger = logging.getLogger(__name__)

#: picks the up queue that one moved message goes to
Chooser = Callable[[], str]


class BrokerUnavailable(OSError):
    """The broker could not be reached or refused an operation; try again later."""


class BrokerRefused(Exception):
    """The broker refuses this URL for good (wrong credentials, no such virtual host)."""


class Broker:
    """The queues of one Celery broker, as the rescuer and the policies see them."""

    #: the broker URL schemes this class serves
    schemes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any], url: str, socket_timeout: float) -> Broker:
        """One for a Celery app's config and its broker URL."""
        raise NotImplementedError

    def depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages waiting in each queue; an empty dict when the broker cannot tell."""
        return {}

    def move(self, source: str, choose: Chooser) -> Counter[str]:
        """Move the messages waiting in ``source``, each to the queue ``choose()`` names."""
        return Counter()

    def restore_unacked(
        self, queues: Collection[str], choose: Chooser, held: Collection[str] = ()
    ) -> Counter[str]:
        """Put back now the unacknowledged messages delivered from ``queues``."""
        return Counter()

    def check_login(self) -> None:
        """Raise :class:`BrokerRefused` if the broker refuses the URL's credentials."""

    def consumer_started(self, consumer: Any) -> None:
        """Called in a worker each time its consumer (re)connects to the broker."""

    def consumer_resumed(self, consumer: Any) -> None:
        """Called in a worker's event loop right after it consumes its own queue again."""

    def close(self) -> None:
        """Release the connections this object opened."""


def broker_url(conf: Mapping[str, Any]) -> str:
    """The app's first broker URL (Celery accepts a list or ``;``-separated failover URLs).

    A Celery app's ``conf.broker_url`` applies Celery's own rule: a non-empty
    ``CELERY_BROKER_URL`` wins over the configured URL.
    """
    url = getattr(conf, "broker_url", None) or conf.get("broker_url") or ""
    if isinstance(url, (list, tuple)):
        url = url[0] if url else ""
    url = str(url).strip()
    # In a Sentinel URL the parts are the Sentinels of one broker, not failover brokers.
    return url if url.startswith("sentinel://") else url.split(";")[0].strip()


def broker_for(conf: Mapping[str, Any], socket_timeout: float) -> Broker | None:
    """The :class:`Broker` for a Celery app's config, or None for a transport rfqueue
    cannot look into (messages then simply wait for their worker)."""
    from rfqueue.brokers.amqp import AmqpBroker
    from rfqueue.brokers.redis import RedisBroker

    url = broker_url(conf)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    for cls in (RedisBroker, AmqpBroker):
        if scheme in cls.schemes:
            return cls.from_conf(conf, url, socket_timeout)
    return None
