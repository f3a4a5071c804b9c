"""What the rescuers did, kept in Redis for the exporter: counts and a latency histogram.

Every worker's rescuer adds to two small hashes (see :mod:`rfqueue.keys`), never per
task: after a round that moved or restored something, one pipeline of HINCRBY per
queue touched (``from:<queue>``, ``to:<queue>``, ``restored:<queue>`` in
``{ns}:rescued``); and once per *episode* (a worker leaving ``up``: one entry version)
one observation of the rescue latency, the seconds from the entry's ``since`` until a
rescuer found its queue empty (at once, or after moving what waited there). Many
rescuers see the same episode: a Lua script records it only if the episode hash does
not hold that version yet, so each is observed once; each rescuer also remembers what
it has reported, so it asks Redis once per episode at most. The script takes the time
from Redis (``TIME``), the clock the table's stamps come from.

Buckets are stored one counter each (not cumulative, so an observation is one
HINCRBY); the exporter sums them into Prometheus's cumulative ``le`` buckets.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from rfqueue.keys import RESCUE_LATENCY_BUCKETS, Keys, bucket_field
from rfqueue.log import RateLimitedWarning
from rfqueue.table.entry import Entry

logger = logging.getLogger(__name__)

#: KEYS: episodes hash, latency hash. ARGV: worker, version, since, then the bucket bounds.
_OBSERVE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local t = redis.call('TIME')
local latency = math.max(0, tonumber(t[1]) + tonumber(t[2]) / 1000000 - tonumber(ARGV[3]))
local bucket = '+Inf'
for i = 4, #ARGV do
  if latency <= tonumber(ARGV[i]) then bucket = ARGV[i]; break end
end
redis.call('HINCRBY', KEYS[2], bucket, 1)
redis.call('HINCRBY', KEYS[2], 'count', 1)
redis.call('HINCRBYFLOAT', KEYS[2], 'sum', string.format('%.6f', latency))
return 1
"""


class RescueStats:
    """Records one rescuer's moves, restores and episode latencies in Redis."""

    def __init__(self, client: Any, keys: Keys, started: float | None = None) -> None:
        self.client = client
        self.keys = keys
        self._observe = client.register_script(_OBSERVE)
        #: episodes this process has reported: nodename -> entry version
        self._reported: dict[str, int] = {}
        #: episodes that began before this rescuer started are not its to time
        self._started = time.time() if started is None else started
        self._warn = RateLimitedWarning(logger)

    def record_counts(self, moved: Mapping[tuple[str, str], int], restored: Counter[str]) -> None:
        """One pipeline of HINCRBY for what one round moved and restored (nothing if none)."""
        fields: Counter[str] = Counter()
        for (source, target), n in moved.items():
            fields[f"from:{source}"] += n
            fields[f"to:{target}"] += n
        for target, n in restored.items():
            fields[f"restored:{target}"] += n
        if not fields:
            return
        pipe = self.client.pipeline(transaction=False)
        for field, n in fields.items():
            pipe.hincrby(self.keys.rescued, field, n)
        self._quietly(pipe.execute)

    def record_cleared(self, entries: Iterable[Entry]) -> None:
        """Observe the latency of each episode whose queue was found empty, once."""
        bounds = [bucket_field(b) for b in RESCUE_LATENCY_BUCKETS]
        for entry in entries:
            if self._reported.get(entry.worker) == entry.version:
                continue
            self._reported[entry.worker] = entry.version
            if entry.since < self._started:
                continue  # it began before we looked: its start is not ours to time
            keys = [self.keys.rescue_episodes, self.keys.rescue_latency]
            args = [entry.worker, entry.version, repr(entry.since), *bounds]
            self._quietly(lambda k=keys, a=args: self._observe(keys=k, args=a))

    def _quietly(self, call: Any) -> None:
        # Statistics must never cost a rescue round: a failure is a warning, and lost.
        try:
            call()
        except (redis.RedisError, OSError) as exc:
            self._warn("rfqueue: cannot record rescue statistics: %s", exc)
