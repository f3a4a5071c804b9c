"""Series of the rescuers' work, read from the hashes they keep (rfqueue.worker.rescue_stats).

``rfqueue_tasks_rescued_from_total{queue}`` and ``rfqueue_tasks_rescued_to_total{queue}``
count the waiting tasks moved out of and into each queue, and
``rfqueue_tasks_restored_total{queue}`` the unacknowledged tasks of dead workers put
back into it. Sources and targets are counted apart rather than as pairs: pairs would
be up to n x n series for n workers. ``rfqueue_rescue_latency_seconds`` is the
histogram of the time from a worker leaving ``up`` until its queue was found empty.
The hashes' format is in rfqueue.keys; rfqueue.worker.rescue_stats writes them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rfqueue.keys import RESCUE_LATENCY_BUCKETS, Keys, bucket_field

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: the field prefix in ``Keys.rescued`` -> (series name, help)
COUNTERS = {
    "from": ("rfqueue_tasks_rescued_from", "Waiting tasks the rescuers moved out of a queue"),
    "to": ("rfqueue_tasks_rescued_to", "Waiting tasks the rescuers moved into a queue"),
    "restored": ("rfqueue_tasks_restored", "A dead worker's unacked tasks put back into a queue"),
}


def rescue_families(client: Any, keys: Keys, queues: Iterable[str] = ()) -> Iterator[Metric]:
    """Both hashes in one round trip; every one of ``queues`` (the registered workers')
    from zero, so that rate() and increase() see a queue's first rescue."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.rescued)
    pipe.hgetall(keys.rescue_latency)
    rescued, latency = pipe.execute()
    yield from _counters(rescued, queues)
    yield _histogram(latency)


def _counters(fields: Mapping[str, str], queues: Iterable[str]) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily

    zeros = dict.fromkeys(queues, 0.0)
    by_kind: dict[str, dict[str, float]] = defaultdict(lambda: dict(zeros))
    for field, raw in fields.items():
        kind, _, queue = str(field).partition(":")
        by_kind[kind][queue] = float(raw)
    for kind, (name, documentation) in COUNTERS.items():
        family = CounterMetricFamily(name, documentation, labels=["queue"])
        for queue, count in sorted(by_kind[kind].items()):
            family.add_metric([queue], count)
        yield family


def _histogram(fields: Mapping[str, str]) -> Metric:
    from prometheus_client.core import HistogramMetricFamily

    cumulative, buckets = 0.0, []
    for bound in (*RESCUE_LATENCY_BUCKETS, float("inf")):
        cumulative += float(fields.get(bucket_field(bound), 0))
        # le as Prometheus's own clients write it: "0.5", "30.0", "+Inf"
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
    return HistogramMetricFamily(
        "rfqueue_rescue_latency_seconds",
        "Seconds from a worker leaving up until its queue was found empty, once per leave",
        buckets=buckets,
        sum_value=float(fields.get("sum", 0)),
    )
