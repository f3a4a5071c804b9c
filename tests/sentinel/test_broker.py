"""A broker on Redis through Sentinel: the rescue's depths and moves reach its master."""

from __future__ import annotations

import itertools

from kombu import Connection

from rfqueue.brokers import broker_for
from rfqueue.brokers.redis import RedisBroker
from tests.sentinel.servers import MASTER_NAME, SentinelCluster

SOURCE, TARGETS = "rfqueue.w1@h", ("rfqueue.w2@h", "rfqueue.w3@h")


def test_depths_and_moves_on_a_sentinel_broker(cluster: SentinelCluster) -> None:
    # Given a Celery config whose broker is the Sentinel-managed master, as kombu takes it
    conf = {"broker_url": cluster.url, "broker_transport_options": {"master_name": MASTER_NAME}}
    # And 6 messages kombu put in a paused worker's queue through Sentinel
    with Connection(cluster.url, transport_options={"master_name": MASTER_NAME}) as conn:
        queue = conn.SimpleQueue(SOURCE)
        for seq in range(6):
            queue.put({"seq": seq})
        queue.close()
    # When rfqueue looks at the broker
    broker = broker_for(conf, socket_timeout=2.0)
    assert isinstance(broker, RedisBroker)
    # Then it reads the depth on the master, and moves every message, none lost
    assert broker.depths([SOURCE, *TARGETS]) == {SOURCE: 6, TARGETS[0]: 0, TARGETS[1]: 0}
    turn = itertools.cycle(TARGETS)
    assert broker.move(SOURCE, lambda *_: next(turn)) == {TARGETS[0]: 3, TARGETS[1]: 3}
    assert broker.depths([SOURCE, *TARGETS]) == {SOURCE: 0, TARGETS[0]: 3, TARGETS[1]: 3}
