"""Checks of every setting: :func:`validate` raises :class:`SettingsError` naming the first bad one.

Each message starts with the setting's Celery name (``rfqueue_<name>: ...``), so the
CLI and the reference app can print it as the one line a user mistake deserves.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, get_args

import redis
from kombu.utils.imports import symbol_by_name

from rfqueue.connection import is_sentinel_url, masked_url, parse_sentinel_url

if TYPE_CHECKING:
    from rfqueue.settings import Settings

#: what the router does when no worker is up
NoWorkerUp = Literal["spread", "fallback", "error"]

#: policy name -> the class, by dotted path. Policies are plugins: a setting names one (or
#: a dotted path of the user's own) and kombu's ``symbol_by_name`` imports it when it is
#: checked or built, as Celery resolves its own loaders and backends by name.
BUILTIN_POLICIES: Mapping[str, str] = {
    "hash": "rfqueue.routing.policies.hash:HashPolicy",
    "least_loaded": "rfqueue.routing.policies.least_loaded:LeastLoadedPolicy",
    "p2c": "rfqueue.routing.policies.p2c:PowerOfTwoPolicy",
    "pull": "rfqueue.routing.policies.pull:PullPolicy",
    "random": "rfqueue.routing.policies.random_choice:RandomPolicy",
    "round_robin": "rfqueue.routing.policies.round_robin:RoundRobinPolicy",
    "weighted": "rfqueue.routing.policies.weighted:WeightedPolicy",
}

#: the largest weight of the ``weighted`` policy: a cycle holds sum(weights) slots
MAX_WEIGHT = 100


class SettingsError(ValueError):
    """A setting with a value rfqueue cannot use."""


def validate(s: Settings) -> None:
    """Raise :class:`SettingsError` naming the first bad setting."""
    _check_url(s.redis_url)
    _check(bool(s.namespace.strip()), "namespace", "must not be empty")
    _check(bool(s.queue_prefix), "queue_prefix", "must not be empty")
    check_policy(s)  # the name, then what that policy needs (weights, hash_key)
    modes = get_args(NoWorkerUp)
    _check(s.no_worker_up in modes, "no_worker_up", f"must be one of {', '.join(modes)}")
    if s.no_worker_up == "fallback":
        _check(bool(s.fallback_queue), "fallback_queue", "must name a queue for 'fallback'")
    intervals = ("refresh_interval", "heartbeat_interval", "depth_interval", "max_pause")
    for name in (*intervals, "socket_timeout"):
        _check(getattr(s, name) > 0, name, f"must be positive, got {getattr(s, name)}")
    _check(
        s.heartbeat_timeout >= 2 * s.heartbeat_interval,
        "heartbeat_timeout",
        f"must be at least twice heartbeat_interval ({s.heartbeat_interval})",
    )
    _check(s.events_max >= 1, "events_max", "must be at least 1")
    _check(s.rescue_interval > 0, "rescue_interval", f"must be positive, got {s.rescue_interval}")
    _validate_replication(s)
    _validate_chaos(s)
    _validate_lifecycle(s)


def _validate_replication(s: Settings) -> None:
    if is_sentinel_url(s.redis_url):
        # No "redis_url" in the message: the CLI would blame --redis-url for it.
        required = "required with a sentinel:// URL"
        _check(bool(s.sentinel_master.strip()), "sentinel_master", required)
    acks = s.replica_acks
    _check(acks is None or acks >= 0, "replica_acks", f"must not be negative, got {acks}")
    _check(s.replica_timeout > 0, "replica_timeout", f"must be positive, got {s.replica_timeout}")
    _check(
        s.replicas_wanted == 0 or s.replica_timeout < s.socket_timeout,
        "replica_timeout",
        f"must be shorter than socket_timeout ({s.socket_timeout:g} s)",
    )


def _validate_chaos(s: Settings) -> None:
    _check(s.chaos_interval > 0, "chaos_interval", f"must be positive, got {s.chaos_interval}")
    _check(0 <= s.chaos_probability <= 1, "chaos_probability", "must be between 0 and 1")
    _check(s.chaos_k >= 1, "chaos_k", f"must be at least 1, got {s.chaos_k}")
    _check(s.chaos_min_duration > 0, "chaos_min_duration", "must be positive")
    _check(
        s.chaos_max_duration >= s.chaos_min_duration,
        "chaos_max_duration",
        f"must be at least chaos_min_duration ({s.chaos_min_duration})",
    )
    _check(
        s.chaos_max_duration <= s.max_pause,
        "chaos_max_duration",
        f"must not exceed max_pause ({s.max_pause})",
    )
    if isinstance(s.max_paused, float):
        _check(0 < s.max_paused < 1, "max_paused", "a fraction must be between 0 and 1")
    else:
        _check(s.max_paused >= 0, "max_paused", "must not be negative")
    _check(s.min_up >= 0, "min_up", "must not be negative")
    pool_max_paused(s.pool_max_paused)
    pool_min_up(s.pool_min_up)


def _validate_lifecycle(s: Settings) -> None:
    """Outlier ejection and forgetting the departed."""
    _check(s.outlier_consecutive_failures >= 0, "outlier_consecutive_failures",
           "must not be negative (0 turns the count off)")  # fmt: skip
    for name in ("outlier_base_ejection", "outlier_interval", "forget_after"):
        _check(getattr(s, name) > 0, name, f"must be positive, got {getattr(s, name)}")
    _check(s.outlier_min_requests >= 1, "outlier_min_requests", "must be at least 1")
    gap = s.outlier_failure_rate_gap
    _check(0 < gap <= 1, "outlier_failure_rate_gap", f"must be above 0 and at most 1, got {gap}")
    percent = s.outlier_max_ejection_percent
    _check(0 <= percent <= 100, "outlier_max_ejection_percent", "must be from 0 to 100")
    _check(
        s.departed_silence > s.heartbeat_timeout,
        "departed_after",
        f"must be longer than heartbeat_timeout ({s.heartbeat_timeout:g})",
    )


def max_paused_value(value: Any, name: str = "rfqueue_max_paused") -> int | float:
    """``3`` is a count, ``0.25`` or ``25%`` a fraction of the fleet (or of a pool)."""
    text = str(value).strip()
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100.0
        number = float(text)
    except ValueError:
        raise SettingsError(f"{name}: expected a count or a fraction, got {value!r}") from None
    # A whole number (0 included) is a count; validation rejects negative counts.
    return int(number) if number.is_integer() else number


def _pairs(pairs: Iterable[str], name: str) -> Iterator[tuple[str, str]]:
    for pair in pairs:
        pool, sep, raw = pair.rpartition("=")
        if not sep or not pool.strip() or not raw.strip():
            raise SettingsError(f"rfqueue_{name}: expected pool=value, got {pair!r}")
        yield pool.strip(), raw.strip()


def pool_max_paused(pairs: Iterable[str]) -> dict[str, int | float]:
    """``["video=1", "celery=25%"]`` -> ``{"video": 1, "celery": 0.25}``; SettingsError if bad."""
    limits: dict[str, int | float] = {}
    for pool, raw in _pairs(pairs, "pool_max_paused"):
        limit = max_paused_value(raw, "rfqueue_pool_max_paused")
        if isinstance(limit, float):
            ok = 0 < limit < 1
            _check(ok, "pool_max_paused", f"a fraction for {pool} must be between 0 and 1")
        else:
            _check(limit >= 0, "pool_max_paused", f"{pool} must not be negative, got {limit}")
        limits[pool] = limit
    return limits


def pool_min_up(pairs: Iterable[str]) -> dict[str, int]:
    """``["video=2"]`` -> ``{"video": 2}``; SettingsError if bad."""
    floors: dict[str, int] = {}
    for pool, raw in _pairs(pairs, "pool_min_up"):
        try:
            floors[pool] = int(raw)
        except ValueError:
            raise SettingsError(
                f"rfqueue_pool_min_up: {pool} needs a whole number, got {raw!r}"
            ) from None
        _check(floors[pool] >= 0, "pool_min_up", f"{pool} must not be negative")
    return floors


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise SettingsError(f"rfqueue_{name}: {message}")


def _check_url(url: str) -> None:
    try:
        if is_sentinel_url(url):
            parse_sentinel_url(url)
            return
        options = redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"rfqueue_redis_url: cannot use {masked_url(url)!r}: {exc}") from None
    _check_tls(url, options)


def _check_tls(url: str, options: dict[str, Any]) -> None:
    """Check a URL's TLS parameters now: redis-py would only fail on them at the first call."""
    for key in options:
        _check(
            not key.startswith("ssl_") or url.startswith("rediss://"),
            "redis_url",
            f"{key} needs a rediss:// URL",
        )
    reqs = options.get("ssl_cert_reqs", "required")
    _check(
        reqs in ("none", "optional", "required"),
        "redis_url",
        f"ssl_cert_reqs must be none, optional or required, got {reqs!r}",
    )
    for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        path = options.get(key)
        _check(path is None or os.path.isfile(path), "redis_url", f"{key}: no file {path!r}")


def resolve_policy(name: str) -> type:
    """The class a policy name or dotted path refers to; ``ValueError`` if none.

    Anything with the :class:`~rfqueue.routing.policies.Policy` hooks (``check``,
    ``start``, ``choose``) will do here; the router insists on a subclass.
    """
    path = BUILTIN_POLICIES.get(name, name)
    if "." not in path and ":" not in path:
        known = ", ".join(sorted(BUILTIN_POLICIES))
        raise ValueError(f"unknown policy {name!r}; choose one of {known}")
    try:
        cls = symbol_by_name(path)  # type: ignore[no-untyped-call]
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import policy {name!r}: {exc}") from None
    hooks = ("check", "start", "choose")
    if not (isinstance(cls, type) and all(callable(getattr(cls, h, None)) for h in hooks)):
        raise ValueError(f"{name!r} is not a rfqueue.routing.policies.Policy subclass")
    return cls


def check_policy_name(name: str) -> None:
    """Raise the settings error for an unusable policy name."""
    try:
        resolve_policy(name)
    except ValueError as exc:
        raise SettingsError(f"rfqueue_policy: {exc}") from None


def check_policy(s: Settings) -> None:
    """A usable policy name, well-formed weights, and what that policy itself needs."""
    check_policy_name(s.policy)
    parse_weights(s.weights)
    policy: Any = resolve_policy(s.policy)
    policy.check(s)


def parse_weights(pairs: Iterable[str]) -> dict[str, int]:
    """``["w1@h=3", "w2@h=1"]`` -> ``{"w1@h": 3, "w2@h": 1}``; SettingsError on bad input."""
    weights: dict[str, int] = {}
    for pair in pairs:
        node, sep, raw = pair.rpartition("=")
        node = node.strip()
        if not sep or not node:
            raise SettingsError(f"rfqueue_weights: expected nodename=weight, got {pair!r}")
        try:
            weight = int(raw.strip())
        except ValueError:
            raise SettingsError(
                f"rfqueue_weights: weight of {node} must be a whole number, got {raw.strip()!r}"
            ) from None
        if not 0 <= weight <= MAX_WEIGHT:
            raise SettingsError(
                f"rfqueue_weights: weight of {node} must be from 0 to {MAX_WEIGHT}, got {weight}"
            )
        weights[node] = weight
    if weights and not any(weights.values()):
        raise SettingsError("rfqueue_weights: the weights must not all be zero")
    return weights
