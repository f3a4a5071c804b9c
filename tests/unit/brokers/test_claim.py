"""A task taken from a pool queue is recorded in kombu's unacked hash under the worker's queue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rfqueue.brokers.claim import claim_pool_deliveries, readdress
from rfqueue.brokers.handoff import handoff
from rfqueue.keys import POOL_HEADER
from tests.unit.brokers.test_handoff import kombu_channel
from tests.unit.kombu_fakes import TASK, Broker, broker_on, messages_on

OWN = "rfqueue.w1@h"

broker = pytest.fixture(broker_on, name="broker")


class Message:
    def __init__(self, routing_key: str, headers: dict[str, Any]) -> None:
        self.delivery_info = {"exchange": routing_key, "routing_key": routing_key}
        self.headers = headers


def test_a_message_from_its_pool_is_readdressed_to_the_worker() -> None:
    message = Message("video", {"rfqueue-pool": "video", "task": "app.v"})
    assert readdress(message, OWN)
    assert message.delivery_info == {"exchange": "", "routing_key": OWN}


def test_other_messages_keep_their_address() -> None:
    pushed = Message(OWN, {"rfqueue-pool": "video"})  # routed to this worker already
    foreign = Message("video", {"task": "app.v"})  # sent by a producer without rfqueue
    control = Message("rfqueue-control", {"rfqueue-pool": "video"})
    for message in (pushed, foreign, control):
        before = dict(message.delivery_info)
        assert not readdress(message, OWN)
        assert message.delivery_info == before


def send_to_video_pool(broker: Broker) -> None:
    """A task as the router sends it to the video pool (its queue, its pool header)."""
    with broker.app.producer_or_acquire() as producer:
        broker.app.send_task(TASK, queue="video", headers={POOL_HEADER: "video"}, producer=producer)


def test_the_unacked_entry_names_the_worker_and_the_rescue_finds_it(
    broker: Broker, client: Any
) -> None:
    # Given a task the router sent to the video pool, and w1's claimed kombu channel
    send_to_video_pool(broker)
    with kombu_channel(broker) as channel:
        handoff.wrap(channel)
        claim_pool_deliveries(channel, OWN)
        claim_pool_deliveries(channel, OWN)  # a second wrap is a no-op
        channel.basic_consume("video", False, lambda message: None, "w1")  # w1 consumes it
        # When w1 takes it and dies before acking
        message = channel.basic_get("video", no_ack=False)
    # Then kombu recorded it under w1's own queue
    (raw,) = client.hvals("unacked")
    assert json.loads(raw)[1:] == ["", OWN]
    assert message.delivery_info["routing_key"] == OWN
    # And the rescue of w1 finds it and puts it back where the chooser says
    restored = messages_on(client).restore_unacked({OWN}, lambda task, pool: pool)
    assert restored == {"video": 1}
    assert broker.consume_ids("video") == [message.headers["id"]]
    assert client.hlen("unacked") == 0


def test_a_message_delivered_after_its_pool_was_cancelled_goes_back_to_the_pool(
    broker: Broker, client: Any
) -> None:
    # Given a task the router sent to the video pool, and w1's claimed kombu channel
    send_to_video_pool(broker)
    with kombu_channel(broker) as channel:
        handoff.wrap(channel)
        claim_pool_deliveries(channel, OWN)
        # When a read under way as w1's pause cancelled the video consumer delivers it
        raw = client.rpop("video")
        channel.connection._deliver(json.loads(raw), "video")
    # Then kombu put it back in the pool's queue (not w1's own), and nothing is unacked
    assert client.llen("video") == 1
    assert client.llen(OWN) == 0
    assert client.hlen("unacked") == 0
