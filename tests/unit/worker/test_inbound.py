"""The guard that keeps a worker alive when its queue holds something that is no kombu message.

The real thing (a worker fed garbage) is tests/faults/test_bad_input.py; here the parts,
on kombu's own in-memory Redis channel class where one is needed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from kombu.transport.virtual import Message

from rfqueue.worker.inbound import MalformedMessage, checked_message_class, guard_channel, problem

GOOD: dict[str, Any] = {
    "body": "e30=",
    "content-type": "application/json",
    "content-encoding": "utf-8",
    "headers": {"task": "t"},
    "properties": {
        "delivery_tag": "tag-1",
        "body_encoding": "base64",
        "delivery_info": {"exchange": "", "routing_key": "q"},
    },
}


def with_properties(**changes: Any) -> dict[str, Any]:
    return {**GOOD, "properties": {**GOOD["properties"], **changes}}


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ([1, 2], "a JSON list, not an object"),
        ("text", "a JSON str, not an object"),
        ({"task": "t"}, "no 'properties' object"),
        ({**GOOD, "properties": 7}, "no 'properties' object"),
        (with_properties(delivery_tag=None), "no 'delivery_tag'"),
        (with_properties(delivery_info={"exchange": ""}), "'routing_key'"),
        ({**GOOD, "body": 5}, "a 'body' that is not a string"),
        ({**GOOD, "headers": []}, "'headers' that are not an object"),
    ],
)
def test_problem_names_what_is_wrong(payload: Any, why: str) -> None:
    found = problem(payload)
    assert found is not None and why in found


def test_a_kombu_message_has_no_problem() -> None:
    assert problem(GOOD) is None


class FakeChannel:
    """Just what the guard touches on kombu's Redis channel."""

    Message = Message

    def __init__(self, items: list[bytes]) -> None:
        self.items = items
        self.delivered: list[Any] = []
        self.handlers = {"BRPOP": self._brpop_read, "LISTEN": lambda: None}

    def decode_body(self, body: str, encoding: str | None = None) -> Any:
        if encoding not in (None, "base64"):
            raise AttributeError(f"no codec {encoding!r}")
        return body

    def _brpop_read(self, **options: Any) -> bool:
        # as kombu does: json-decode the popped item, then build the message from it
        payload = json.loads(self.items.pop(0).decode())
        self.delivered.append(self.Message(payload, channel=self))
        return True


def test_a_guarded_channel_drops_garbage_with_one_error_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a guarded channel with garbage and then a good message on its queue
    unknown_encoding = json.dumps(with_properties(body_encoding="x")).encode()
    channel = FakeChannel(
        [b"not json", b"\xff\xfe", b"[1]", unknown_encoding, json.dumps(GOOD).encode()]
    )
    assert guard_channel(channel)
    # When the poller reads every item
    with caplog.at_level(logging.ERROR, logger="rfqueue.inbound"):
        results = [channel.handlers["BRPOP"]() for _ in range(5)]
    # Then nothing raised, each bad item made one error line, the good one was delivered
    assert results == [True] * 5
    assert len(caplog.records) == 4
    assert all("not a kombu message" in r.getMessage() for r in caplog.records)
    assert len(channel.delivered) == 1 and channel.delivered[0].delivery_tag == "tag-1"


def test_guarding_twice_wraps_once() -> None:
    channel = FakeChannel([])
    guard_channel(channel)
    read = channel.handlers["BRPOP"]
    guard_channel(channel)
    assert channel.handlers["BRPOP"] is read


def test_a_channel_of_another_transport_is_left_alone() -> None:
    class Other:
        handlers = {"LISTEN": None}

    assert guard_channel(Other()) is False


def test_the_checked_message_class_stays_a_message_class() -> None:
    # kombu asks isinstance(raw, channel.Message): it must stay a class
    checked = checked_message_class(Message)
    assert issubclass(checked, Message)
    with pytest.raises(MalformedMessage):
        checked([1], channel=FakeChannel([]))
