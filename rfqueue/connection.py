"""One way in to a Redis: ``redis://``, ``rediss://``, ``unix://`` or through Redis Sentinel.

A Sentinel URL is written the way kombu writes it for Celery's broker::

    sentinel://[[user]:password@]host[:port][/db][;sentinel://host2[:port2]...]

Each part names one Sentinel (port 26379 when none is given). As in kombu, the user,
password and database of the first part are the *master's*: Sentinels are asked
without a password (pass ``sentinel_kwargs`` for Sentinels that want one). The name of
the monitored master is not part of the URL; Celery users set it as
``broker_transport_options["master_name"]``, rfqueue as ``sentinel_master``.

The client Sentinel hands out (redis-py's ``Sentinel.master_for``) asks a Sentinel for
the master's address whenever it opens a connection, so after a failover it finds the
promoted replica by itself; connections to a demoted master are dropped on their first
``READONLY`` reply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from kombu.utils.url import maybe_sanitize_url
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

#: the port a Sentinel listens on when the URL does not say
SENTINEL_PORT = 26379

_SCHEME = "sentinel://"


class ReplicationError(redis.RedisError):
    """A change reached the master, but fewer replicas than required confirmed it in time."""

    def __init__(self, acked: int, wanted: int, timeout: float) -> None:
        super().__init__(
            f"the change reached the master but only {acked} of {wanted} replicas "
            f"within {timeout:g} s; a failover could lose it"
        )
        self.acked = acked
        self.wanted = wanted


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``sentinel://`` URL says: where the Sentinels are, and how to log in to the master."""

    sentinels: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    db: int = 0

    def addresses(self) -> str:
        """``host:port, host:port`` of every Sentinel, for messages."""
        return ", ".join(f"{host}:{port}" for host, port in self.sentinels)


def is_sentinel_url(url: str) -> bool:
    """Whether ``url`` names Sentinels rather than one Redis."""
    return url.strip().lower().startswith(_SCHEME)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The Sentinels and master login of a ``sentinel://`` URL; ``ValueError`` says why not."""
    parts = [part.strip() for part in url.split(";") if part.strip()]
    if not parts:
        raise ValueError("no Sentinel named")
    sentinels = tuple(_sentinel_address(part) for part in parts)
    first = urlsplit(parts[0])
    return SentinelTarget(
        sentinels,
        username=unquote(first.username) if first.username else None,
        password=unquote(first.password) if first.password else None,
        db=_db(first.path),
    )


def _sentinel_address(part: str) -> tuple[str, int]:
    split = urlsplit(part)
    if split.scheme.lower() != "sentinel":
        raise ValueError(f"every part must be a sentinel:// URL, not {split.scheme or 'none'}://")
    if not split.hostname:
        raise ValueError("a sentinel:// part names no host")
    if split.query or split.fragment:
        raise ValueError("sentinel:// URLs take no query parameters")
    try:
        port = split.port
    except ValueError:  # urllib's message would repeat the raw text, password and all
        port = 0
    if port == 0:
        raise ValueError(f"a port must be a number from 1 to 65535 (Sentinel {split.hostname})")
    return split.hostname, port or SENTINEL_PORT


def _db(path: str) -> int:
    text = path.strip("/")
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(f"the database must be a number, got {text!r}")
    return int(text)


def kombu_master_name(transport_options: Any) -> str:
    """The ``master_name`` of Celery's ``broker_transport_options``, or ``""``."""
    if not isinstance(transport_options, Mapping):
        return ""
    return str(transport_options.get("master_name") or "")


def masked_url(url: str) -> str:
    """``url`` with the password of every part masked, even when it cannot be parsed."""
    return ";".join(_masked_part(part) for part in url.split(";"))


def _masked_part(url: str) -> str:
    try:
        return str(maybe_sanitize_url(url))
    except ValueError:  # e.g. a bad port: mask whatever sits between ':' and '@'
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1**@", url)


class _SentinelClient(redis.Redis):
    """A client of one Sentinel that remembers why its last question failed."""

    last_error = ""

    @property
    def address(self) -> str:
        return "{host}:{port}".format_map(self.connection_pool.connection_kwargs)

    def sentinel_masters(self) -> Any:
        try:
            masters = super().sentinel_masters()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.last_error = str(exc)
            raise
        self.last_error = ""
        return masters


class _NamedSentinel(Sentinel):
    """redis-py's Sentinel, whose "no master" error says which Sentinel answered what."""

    def __init__(self, sentinels: list[tuple[str, int]], **options: Any) -> None:
        super().__init__(sentinels, **options)  # type: ignore[no-untyped-call]
        self.sentinels = [_SentinelClient(h, p, **self.sentinel_kwargs) for h, p in sentinels]

    def discover_master(self, service_name: str) -> Any:
        try:
            return super().discover_master(service_name)  # type: ignore[no-untyped-call]
        except MasterNotFoundError:
            raise MasterNotFoundError(self._no_master(service_name)) from None

    def _no_master(self, service_name: str) -> str:
        answers = ", ".join(
            f"{s.address} ({s.last_error or 'names no such master that is up: a failover?'})"
            for s in self.sentinels
            if isinstance(s, _SentinelClient)
        )
        return f"no master {service_name!r} from Sentinel {answers}"


def connect(
    url: str,
    *,
    sentinel_master: str = "",
    sentinel_kwargs: Mapping[str, Any] | None = None,
    **client_options: Any,
) -> redis.Redis:
    """A client for the Redis ``url`` names; for a Sentinel URL, for the master ``sentinel_master``.

    ``client_options`` go to every connection to the Redis itself (timeouts, retries,
    ``decode_responses``); Sentinels get its ``socket_*`` options and no retries (the next
    Sentinel is the retry), or ``sentinel_kwargs``.
    Nothing connects until the first command.
    """
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **client_options)
    if not sentinel_master:
        raise ValueError("a sentinel:// URL needs the name of the master the Sentinels monitor")
    target = parse_sentinel_url(url)
    sentinel = _NamedSentinel(
        list(target.sentinels),
        sentinel_kwargs=_sentinel_options(client_options, sentinel_kwargs),
        username=target.username,
        password=target.password,
        db=target.db,
        **client_options,
    )
    client: redis.Redis = sentinel.master_for(sentinel_master)  # type: ignore[no-untyped-call]
    return client


def _sentinel_options(
    client_options: Mapping[str, Any], sentinel_kwargs: Mapping[str, Any] | None
) -> dict[str, Any]:
    """How to talk to the Sentinels: ``sentinel_kwargs``, else the client's ``socket_*`` options."""
    if sentinel_kwargs is not None:
        return dict(sentinel_kwargs)
    options = {k: v for k, v in client_options.items() if k.startswith("socket_")}
    # redis-py asks the next Sentinel when one fails; its default of ten retries with
    # backoff per Sentinel would only delay that by seconds.
    return {**options, "retry": Retry(NoBackoff(), 0)}
