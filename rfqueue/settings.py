"""Typed settings, read from the Celery config (``rfqueue_*``) and the environment (``RFQUEUE_*``).

Precedence, lowest first: defaults, the Celery app's config, the environment. Every
value is checked when the settings are built; a bad one raises :class:`SettingsError`
whose message starts with the setting's name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import redis

from rfqueue.connection import (
    connect,
    is_sentinel_url,
    kombu_master_name,
    masked_url,
)
from rfqueue.keys import DEFAULT_NAMESPACE
from rfqueue.validation import NoWorkerUp, SettingsError, max_paused_value, validate

__all__ = ["DEFAULT_REDIS_URL", "NoWorkerUp", "Settings", "SettingsError", "default_redis_url"]

DEFAULT_REDIS_URL = "redis://localhost:6379/0"


@dataclass(frozen=True)
class Settings:
    """Everything rfqueue can be told. Celery key: ``rfqueue_<name>``; env: ``RFQUEUE_<NAME>``."""

    #: Redis holding the failure table; defaults to the broker URL when that is Redis
    redis_url: str = DEFAULT_REDIS_URL
    #: with a ``sentinel://`` redis_url: the name of the master the Sentinels monitor
    sentinel_master: str = ""
    #: replicas that must confirm each state change (``WAIT``); unset: 1 through Sentinel, else 0
    replica_acks: int | None = None
    #: how long a state change waits for its replicas to confirm it (seconds)
    replica_timeout: float = 0.5
    #: prefix of every key, so several fleets can share one Redis
    namespace: str = DEFAULT_NAMESPACE
    #: each worker consumes ``queue_prefix + nodename``
    queue_prefix: str = "rfqueue."
    #: how the router picks among up workers: a policy name or a dotted path
    policy: str = "pull"
    #: what the router does when no worker is up
    no_worker_up: NoWorkerUp = "spread"
    #: the queue used when ``no_worker_up`` is ``fallback``
    fallback_queue: str = ""
    #: ``weighted`` policy: ``nodename=weight`` pairs (whole numbers); unlisted workers weigh 1
    weights: tuple[str, ...] = ()
    #: ``hash`` policy: the task argument to hash on, a keyword name or a position (``0``)
    hash_key: str = ""
    #: ``least_loaded`` and ``p2c``: seconds between two reads of the queue depths
    depth_interval: float = 0.5
    #: the longest a router's snapshot goes without a full re-read (seconds)
    refresh_interval: float = 1.0
    #: how often a worker writes its heartbeat and re-checks its own state (seconds)
    heartbeat_interval: float = 1.0
    #: silence after which the chaos job marks a worker down (seconds)
    heartbeat_timeout: float = 5.0
    #: move tasks waiting for paused, down or silent workers to up workers (and restore
    #: the unacknowledged tasks of dead workers at once)
    rescue: bool = True
    #: the longest the rescuer waits between two looks at the stranded queues (seconds)
    rescue_interval: float = 0.5
    #: the longest pause anyone may ask for (seconds)
    max_pause: float = 3600.0
    #: events kept in the capped event log
    events_max: int = 1000
    #: socket timeout of every rfqueue Redis call (seconds): a hung Redis never hangs a caller
    socket_timeout: float = 2.0
    #: install the random-failure job in ``beat_schedule``
    chaos_enabled: bool = False
    #: seconds between chaos ticks
    chaos_interval: float = 60.0
    #: chance that a tick pauses anyone
    chaos_probability: float = 0.5
    #: workers a tick tries to pause
    chaos_k: int = 1
    #: shortest chaos pause (seconds)
    chaos_min_duration: float = 10.0
    #: longest chaos pause (seconds)
    chaos_max_duration: float = 60.0
    #: most workers out at once (paused, draining or down): a count, or a fraction of the fleet
    max_paused: int | float = 1
    #: fewest workers that must stay up
    min_up: int = 1
    #: per pool: ``pool=max_paused`` pairs (``video=1,celery=25%``); other pools: max_paused
    pool_max_paused: tuple[str, ...] = ()
    #: per pool: ``pool=min_up`` pairs (``video=2``); other pools: min_up
    pool_min_up: tuple[str, ...] = ()
    #: workers the chaos job never pauses
    protected: tuple[str, ...] = ()
    #: seed for reproducible chaos choices; unset for fresh randomness
    seed: int | None = None
    #: log and record what chaos would do, change nothing
    dry_run: bool = False
    #: outlier ejection (Envoy's outlier detection): consecutive failures that eject a worker
    #: whose pool's other workers do not fail alike (0: never by count)
    outlier_consecutive_failures: int = 5
    #: first ejection's length (seconds); the n-th in a row lasts n times as long (<= max_pause)
    outlier_base_ejection: float = 30.0
    #: tasks a worker (and, together, its pool's others) must have finished in the window
    #: before its failure rate is judged
    outlier_min_requests: int = 20
    #: how far a worker's failure rate must exceed its peers' to eject it (0.5: 60 % vs 10 %)
    outlier_failure_rate_gap: float = 0.5
    #: most of a pool ejected at once, in percent (at least one worker may be)
    outlier_max_ejection_percent: float = 10.0
    #: the outcome window: outcomes of the last one to two intervals are judged (seconds)
    outlier_interval: float = 10.0
    #: a down worker silent this long, with nothing waiting or unacked, is forgotten (seconds)
    forget_after: float = 3600.0
    #: a down worker silent this long has departed: outside the chaos budget, skipped by
    #: ``spread`` and the rescuers (seconds; unset: 10 x heartbeat_timeout)
    departed_after: float | None = None

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def load(
        cls,
        conf: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from a Celery config, the environment and explicit overrides."""
        conf = conf or {}
        environ = os.environ if environ is None else environ
        broker_default = default_redis_url(conf, environ)
        values: dict[str, Any] = {"redis_url": broker_default}
        for f in fields(cls):
            if f"rfqueue_{f.name}" in conf and conf[f"rfqueue_{f.name}"] is not None:
                values[f.name] = _coerce(f, conf[f"rfqueue_{f.name}"], f"rfqueue_{f.name}")
            env_name = f"RFQUEUE_{f.name.upper()}"
            if environ.get(env_name, "") != "":
                values[f.name] = _coerce(f, environ[env_name], env_name)
        for name, value in overrides.items():
            if value is not None:
                values[name] = _coerce(_field(name), value, f"rfqueue_{name}")
        if is_sentinel_url(values["redis_url"]) and values["redis_url"] == broker_default:
            # As the broker's: Celery users give kombu the master's name this way.
            options = conf.get("broker_transport_options")
            values.setdefault("sentinel_master", kombu_master_name(options))
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (and checked again)."""
        return dataclasses.replace(self, **changes)

    def queue_for(self, nodename: str) -> str:
        """The dedicated queue of the worker named ``nodename``."""
        return f"{self.queue_prefix}{nodename}"

    @property
    def safe_redis_url(self) -> str:
        """The Redis URL with its password masked (every part of a Sentinel URL), for output."""
        return masked_url(self.redis_url)

    @property
    def departed_silence(self) -> float:
        """Silence after which a down worker counts as departed (``departed_after``)."""
        if self.departed_after is not None:
            return self.departed_after
        return 10 * self.heartbeat_timeout

    @property
    def replicas_wanted(self) -> int:
        """Replicas that confirm each state change: ``replica_acks``, else 1 through Sentinel."""
        if self.replica_acks is not None:
            return self.replica_acks
        return 1 if is_sentinel_url(self.redis_url) else 0

    def redis_client(self, **kwargs: Any) -> redis.Redis:
        """A client for the table's Redis (its master, through Sentinel) with rfqueue's timeouts."""
        options: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            "health_check_interval": 10,
            "decode_responses": True,
        }
        options.update(kwargs)
        return connect(self.redis_url, sentinel_master=self.sentinel_master, **options)


def default_redis_url(conf: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """The broker URL when it is Redis (or Redis through Sentinel), else the local default."""
    # As Celery does: a non-empty CELERY_BROKER_URL wins over the configured broker_url.
    broker = environ.get("CELERY_BROKER_URL") or conf.get("broker_url")
    if isinstance(broker, str) and broker.split("://")[0] in ("redis", "rediss", "sentinel"):
        return broker
    return DEFAULT_REDIS_URL


def parse_max_paused(value: Any, name: str = "rfqueue_max_paused") -> int | float:
    """``3`` is a count, ``0.25`` or ``25%`` a fraction of the fleet."""
    return max_paused_value(value, name)


def _field(name: str) -> dataclasses.Field[Any]:
    for f in fields(Settings):
        if f.name == name:
            return f
    raise SettingsError(f"rfqueue_{name}: no such setting")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(f: dataclasses.Field[Any], value: Any, name: str) -> Any:
    kind = f.type if isinstance(f.type, str) else str(f.type)
    if f.name == "max_paused":
        return parse_max_paused(value, name)
    try:
        if kind == "bool":
            return _coerce_bool(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "int | None":
            return None if value in ("", None) else int(value)
        if kind == "float | None":
            return None if value in ("", None) else float(value)
        if kind.startswith("tuple"):
            if isinstance(value, Mapping):  # {"video": 1} in a Celery config: video=1
                value = [f"{key}={item}" for key, item in value.items()]
            items = value.split(",") if isinstance(value, str) else value
            return tuple(str(item).strip() for item in items if str(item).strip())
    except (TypeError, ValueError):
        raise SettingsError(f"{name}: expected {kind}, got {value!r}") from None
    return str(value)


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(value)
