"""The random-failure job: resume what has expired, reap the silent, pause a few at random.

One tick, in this order: resume every expired pause; mark down every worker whose
heartbeat is older than ``heartbeat_timeout``; then, with ``chaos_probability``,
pause up to ``chaos_k`` randomly chosen up workers for a random duration in
``[chaos_min_duration, chaos_max_duration]``. Each pause checks the blast-radius
budget (``max_paused``, ``min_up``) inside the same atomic script that takes it, so
two beat processes ticking at once can never exceed it.

With ``seed`` set, tick number N (a counter in Redis) always makes the same choices
from the same table, whichever process runs it.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from rfqueue.control import RemoteControl
from rfqueue.settings import Settings, SettingsError
from rfqueue.table import Budget, FailureTable
from rfqueue.table.entry import Entry, Reason, State
from rfqueue.table.registry import snapshot_for
from rfqueue.table.service import pools_or_default

logger = logging.getLogger(__name__)


class ChaosRefused(ValueError):
    """The chaos settings do not fit the fleet in the table."""


@dataclass
class TickReport:
    """What one tick did."""

    tick: int
    resumed: list[Entry] = field(default_factory=list)
    marked_down: list[Entry] = field(default_factory=list)
    rolled: float = 1.0
    paused: list[Entry] = field(default_factory=list)
    #: (worker, why) for chosen workers the budget or their state refused
    refused: list[tuple[str, str]] = field(default_factory=list)
    #: (worker, seconds) that a dry run would have paused
    would_pause: list[tuple[str, float]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One human line per action, for logs and the CLI."""
        out = [f"resumed {e.worker} (pause expired)" for e in self.resumed]
        out += [f"marked {e.worker} down (no heartbeat)" for e in self.marked_down]
        out += [f"paused {e.worker} until {_clock(e.until)}" for e in self.paused]
        out += [f"would pause {w} for {s:.1f}s (dry run)" for w, s in self.would_pause]
        out += [f"did not pause {w}: {why}" for w, why in self.refused]
        return out or ["nothing to do"]


class ChaosJob:
    """Runs ticks against one table, with one set of settings."""

    def __init__(
        self,
        settings: Settings,
        table: FailureTable,
        control: RemoteControl | None = None,
        default_pool: str = "celery",
    ) -> None:
        self.settings = settings
        self.table = table
        self.control = control or RemoteControl(None)
        #: the app's ``task_default_queue``: the pool of entries with no known pools
        self.budget = Budget.from_settings(settings, default_pool)

    def check_fleet(self, entries: dict[str, Entry]) -> None:
        """Refuse a ``max_paused`` count larger than the fleet, or a pool nobody serves."""
        limit = self.settings.max_paused
        if isinstance(limit, int) and limit > len(entries):
            raise ChaosRefused(
                f"rfqueue_max_paused: {limit} is larger than the fleet ({len(entries)} workers)"
            )
        served = {
            p for e in entries.values() for p in pools_or_default(e.pools, self.budget.default_pool)
        }
        for name, named in (("pool_max_paused", self.budget.pool_max_paused),
                            ("pool_min_up", self.budget.pool_min_up)):  # fmt: skip
            unknown = sorted(set(named) - served)
            if unknown:
                raise ChaosRefused(
                    f"rfqueue_{name}: no registered worker serves pool {unknown[0]!r} "
                    f"(pools: {', '.join(sorted(served)) or 'none'})"
                )

    def tick(self) -> TickReport:
        """One tick; raises Redis errors rather than act on a view it could not read."""
        s = self.settings
        entries = self.table.entries()
        self.check_fleet(entries)
        report = TickReport(tick=int(self.table.client.incr(self.table.keys.chaos_ticks)))
        if not s.dry_run:  # a dry run changes nothing: it neither resumes nor reaps
            report.resumed = self.table.resume_expired()
            report.marked_down = self.table.reap(s.heartbeat_timeout)
        for entry in report.resumed:
            self.control.sync(entry)
        rng = random.Random(f"{s.seed}:{report.tick}") if s.seed is not None else random.Random()
        report.rolled = rng.random()
        if report.rolled < s.chaos_probability:
            self._pause_some(rng, report)
        for line in report.lines():
            logger.info("rfqueue chaos tick %d: %s", report.tick, line)
        return report

    def _pause_some(self, rng: random.Random, report: TickReport) -> None:
        s = self.settings
        now = self.table.now()
        entries = self.table.entries()  # fresh: the reap above may have changed it
        eligible = sorted(
            name
            for name, e in entries.items()
            if e.effective_state(now) is State.UP and name not in s.protected
        )
        budget = self.budget
        # Only a dry run counts by itself (as pause.lua: the departed count nowhere).
        counted = budget.present(entries.values(), now)
        out = sum(e.effective_state(now) is not State.UP for e in counted) if s.dry_run else 0
        planned: list[str] = []
        for name in rng.sample(eligible, min(s.chaos_k, len(eligible))):
            seconds = rng.uniform(s.chaos_min_duration, s.chaos_max_duration)
            if s.dry_run:  # the same budget check as the pause script, without the pause
                if budget.allows(out, len(counted)) and budget.allows_in_pools(
                    entries[name], entries.values(), now, planned
                ):
                    out += 1
                    planned.append(name)
                    report.would_pause.append((name, seconds))
                    self._record_dry_run(name, seconds)
                else:
                    report.refused.append((name, "budget exhausted"))
                continue
            change = self.table.pause(name, seconds, Reason.CHAOS, budget=budget)
            if change.changed and change.entry is not None:
                report.paused.append(change.entry)
                self.control.sync(change.entry)
            else:
                report.refused.append(
                    (name, "budget exhausted" if change.status == "budget" else change.status)
                )

    def _record_dry_run(self, worker: str, seconds: float) -> None:
        event = {
            "time": self.table.now(),
            "worker": worker,
            "action": "dry_run_pause",
            "reason": "chaos",
            "state": None,
            "until": self.table.now() + seconds,
            "note": None,
            "version": self.table.version(),
        }
        keys = self.table.keys
        pipe = self.table.client.pipeline(transaction=True)
        pipe.lpush(keys.events, json.dumps(event))
        pipe.ltrim(keys.events, 0, self.table.events_max - 1)
        pipe.execute()


def _clock(epoch: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch)) if epoch else "-"


#: the settings a scheduled tick carries from beat to the worker that runs it
CHAOS_FIELDS = (
    "chaos_probability",
    "chaos_k",
    "chaos_min_duration",
    "chaos_max_duration",
    "max_paused",
    "min_up",
    "pool_max_paused",
    "pool_min_up",
    "protected",
    "seed",
    "dry_run",
    "heartbeat_timeout",
)


def chaos_overrides(settings: Settings) -> dict[str, Any]:
    """The chaos part of ``settings``, JSON-ready, for the beat schedule entry."""
    values = {name: getattr(settings, name) for name in CHAOS_FIELDS}
    for name in ("protected", "pool_max_paused", "pool_min_up"):
        values[name] = list(getattr(settings, name))
    return values


def run_tick(app: Any, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Body of the ``rfqueue.chaos`` Celery task."""
    unknown = set(overrides or {}) - set(CHAOS_FIELDS)
    if unknown:
        return _skipped(f"unknown arguments {sorted(unknown)}")
    try:
        settings = Settings.load(app.conf, **(overrides or {}))
        table, control = snapshot_for(settings).table, RemoteControl(app)
        report = ChaosJob(settings, table, control, app.conf.task_default_queue).tick()
    except (SettingsError, ChaosRefused) as exc:
        return _skipped(str(exc))
    except (redis.RedisError, OSError) as exc:
        # Never act on a view that could not be read: skip, the next tick tries again.
        return _skipped(f"cannot read the failure table: {exc}")
    return {"tick": report.tick, "actions": report.lines()}


def _skipped(why: str) -> dict[str, Any]:
    logger.error("rfqueue chaos: %s; tick skipped", why)
    return {"skipped": why}
