"""Outlier ejection (after Envoy's outlier detection): what a beat reports, how it is judged.

A worker counts its task outcomes in memory and sends them with its heartbeat
(:class:`Outcomes`). ``heartbeat.lua`` adds them to the worker's window and judges it by
the :class:`OutlierRules`, in the same atomic step and without another round trip: a
worker whose last ``consecutive_failures`` tasks all failed, or whose failure rate over
at least ``min_requests`` tasks exceeds its pool's other up workers' rate by ``gap`` or
more, is an outlier, unless those others have finished too few tasks to compare with
or the pool already has its share of ejected workers. When the whole pool fails alike
the gap is small and nobody is ejected. The reply carries an :class:`Ejection`; the
worker then pauses itself with reason ``outlier`` through ``pause.lua`` and the chaos
budget (``max_paused``, ``min_up``, per pool), which therefore holds for ejections too.
The n-th ejection in a row lasts n times ``base_ejection`` (at most ``max_pause``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rfqueue.settings import Settings


@dataclass(frozen=True)
class Outcomes:
    """Tasks a worker finished since its last beat, and the failures in a row at their end."""

    successes: int = 0
    failures: int = 0
    #: failures since its last success (may reach back before this batch)
    streak: int = 0

    def script_args(self) -> list[int]:
        """heartbeat.lua's ARGV[7..9]."""
        return [self.successes, self.failures, self.streak]


@dataclass(frozen=True)
class OutlierRules:
    """When a worker is an outlier, and for how long it is ejected.

    Built from the ``outlier_*`` settings (:meth:`from_settings`), which hold the defaults.
    """

    consecutive_failures: int
    base_ejection: float
    min_requests: int
    gap: float
    max_ejection_percent: float
    interval: float
    max_pause: float
    #: the pool of entries with no known pools: the app's default queue
    default_pool: str = "celery"

    @classmethod
    def from_settings(cls, s: Settings, default_pool: str = "celery") -> OutlierRules:
        return cls(
            s.outlier_consecutive_failures,
            s.outlier_base_ejection,
            s.outlier_min_requests,
            s.outlier_failure_rate_gap,
            s.outlier_max_ejection_percent,
            s.outlier_interval,
            s.max_pause,
            default_pool,
        )

    def as_arg(self) -> str:
        """heartbeat.lua's ARGV[10]."""
        return json.dumps(
            {
                "consecutive": self.consecutive_failures,
                "base": self.base_ejection,
                "min_requests": self.min_requests,
                "gap": self.gap,
                "max_percent": self.max_ejection_percent,
                "interval": self.interval,
                "max_pause": self.max_pause,
                "default": self.default_pool,
            }
        )


@dataclass(frozen=True)
class Ejection:
    """A heartbeat's verdict: eject the worker for ``seconds``; ``note`` says why."""

    seconds: float
    note: str

    @classmethod
    def from_reply(cls, data: Any) -> Ejection | None:
        if not isinstance(data, dict):
            return None
        return cls(float(data["seconds"]), str(data.get("note") or "outlier"))
