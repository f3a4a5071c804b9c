"""What rfqueue needs from a Celery broker: the :class:`Broker` interface.

The rescuer and the load-aware policies need three things from the broker: the depth
of queues, moving the messages that wait in one queue to others, and putting back the
unacknowledged messages of a worker that died. :class:`Broker` declares them, with
hooks that do nothing by default.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar

import redis

__all__ = [
    "Broker",
    "BrokerRefused",
    "BrokerUnavailable",
    "Chooser",
    "DepthReader",
    "broker_url",
    "depths_or_none",
]

logger = logging.getLogger(__name__)

#: picks the up queue one moved message goes to, by its task name and its pool (the
#: ``rfqueue-pool`` header; '' for what a message lacks); None: it has nowhere to go, and stays
Chooser = Callable[[str, str], "str | None"]

#: reads the depth of each of the given queues (a broker's, or a Redis client's)
DepthReader = Callable[[Sequence[str]], dict[str, int]]


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
        """Move the messages waiting in ``source``, each to the queue ``choose`` names.

        Those it names none for stay in ``source``, in their order.
        """
        return Counter()

    def restore_unacked(
        self, queues: Collection[str], choose: Chooser, held: Collection[str] = ()
    ) -> Counter[str]:
        """Put back now the unacknowledged messages delivered from ``queues``."""
        return Counter()

    def check_login(self) -> None:
        """Raise :class:`BrokerRefused` if the broker refuses the URL's credentials."""

    def consumer_started(self, consumer: Any, own_queue: str = "") -> None:
        """Called in a worker each time its consumer (re)connects to the broker;
        ``own_queue`` is the worker's dedicated queue."""

    def consumer_leaving(self, consumer: Any) -> None:
        """Called in a stopping worker once its event loop has stopped reading."""

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


def depths_or_none(read: DepthReader, queues: Sequence[str]) -> dict[str, int] | None:
    """Each queue's depth for a display, or None when the broker cannot be reached now."""
    try:
        return read(queues) if queues else {}
    except (redis.RedisError, OSError) as exc:  # OSError: BrokerUnavailable too
        logger.debug("rfqueue: cannot read queue depths: %s", exc)
        return None
