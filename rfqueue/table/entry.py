"""One worker's row in the failure-state table, and the words it is made of."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


class State(str, Enum):
    """Whether a worker takes new tasks."""

    #: consuming its queue; the router may choose it
    UP = "up"
    #: consumer cancelled until ``until``; the router skips it
    PAUSED = "paused"
    #: not running, or silent for longer than the heartbeat timeout
    DOWN = "down"
    #: on its way out (a shutdown, or ``rfqueue drain``): the router skips it, its consumers
    #: are cancelled and its queue moves on, while it beats and finishes what it runs; it
    #: ends down when the worker stops, or up at ``until`` (an operator's drain only)
    DRAINING = "draining"


class Reason(str, Enum):
    """Why a worker is in its state, or why an event happened."""

    #: paused by the random-failure job
    CHAOS = "chaos"
    #: paused or resumed by an operator
    MANUAL = "manual"
    #: marked down, or back up, by its heartbeat
    HEARTBEAT = "heartbeat"
    #: marked down by its own clean shutdown, or draining because that shutdown began
    SHUTDOWN = "shutdown"
    #: a pause that reached its ``until``
    EXPIRED = "expired"
    #: the worker started and registered
    START = "start"
    #: ejected: its tasks failed far more often than its pool's others' (see table.outliers)
    OUTLIER = "outlier"


class MalformedEntry(ValueError):
    """A table entry that cannot be decoded into an :class:`Entry`."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A worker's row: its queue, its state and when that state ends."""

    worker: str
    queue: str
    state: State
    reason: Reason | None
    since: float
    until: float | None
    version: int
    heartbeat: float | None = None
    note: str | None = None
    #: queues it consumes besides its own and the control queue (``-Q``, or the default
    #: queue); () when unknown (an entry from before pools): the default queue only
    pools: tuple[str, ...] = ()
    #: digest of its registered task names (their set: ``Keys.task_set``); None: unknown
    tasks: str | None = None

    def effective_state(self, now: float) -> State:
        """The state with an expired pause or drain counted as up, as every reader sees it."""
        if self.state is State.PAUSED and (self.until is None or self.until <= now):
            return State.UP
        # A drain without ``until`` lasts until the worker stops; every pause expires.
        if self.state is State.DRAINING and self.until is not None and self.until <= now:
            return State.UP
        return self.state

    def silent(self, now: float, heartbeat_timeout: float) -> bool:
        """Whether its last heartbeat is older than ``heartbeat_timeout``: it may be dead."""
        return self.heartbeat is not None and now - self.heartbeat > heartbeat_timeout

    def departed(self, now: float, after: float | None) -> bool:
        """Down and silent for longer than ``after``: it left (outside budgets, never a target)."""
        return after is not None and self.state is State.DOWN and self.silent(now, after)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with plain strings for the enums."""
        data = asdict(self)
        data["state"] = self.state.value
        data["reason"] = self.reason.value if self.reason else None
        return data

    @classmethod
    def from_json(cls, raw: str | bytes, heartbeat: float | None = None) -> Entry:
        """Decode one stored entry; raise :class:`MalformedEntry` if it is not one."""
        try:
            data = json.loads(raw)
            return cls(
                worker=_text(data["worker"]),
                queue=_text(data["queue"]),
                state=State(data["state"]),
                reason=Reason(data["reason"]) if data.get("reason") else None,
                since=_number(data["since"]),
                until=_optional_float(data.get("until")),
                version=int(_number(data["version"])),
                heartbeat=heartbeat,
                note=data.get("note") or None,
                pools=_pools(data.get("pools")),
                tasks=_optional_text(data.get("tasks")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedEntry(f"{exc.__class__.__name__}: {exc}") from exc


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _pools(value: Any) -> tuple[str, ...]:
    # Lua's cjson writes an empty array as {}: both mean no pools known.
    if value is None or value == {}:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"expected a list of queue names, got {value!r}")
    return tuple(_text(pool) for pool in value)


def _number(value: Any) -> float:
    # Only a JSON number, as the Lua scripts require: a string, a bool or NaN is malformed.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else _number(value)
