"""A batch's body encoding is kombu's, to the byte, and follows a replaced codec."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from kombu.exceptions import EncodeError
from kombu.serialization import dumps, register, register_json

from rfqueue.routing.wire import body_encoder

BODIES = [
    ((1, "a"), {"user": 7}, {"callbacks": None, "chain": None}),
    (("é ü ✓",), {"when": datetime.datetime(2026, 12, 1, 21, 0)}, {}),
    ((uuid.UUID(int=7), Decimal("1.5"), b"raw"), {}, {"nested": [{"a": [1.0, None]}]}),
]


@pytest.mark.parametrize("body", BODIES)
def test_json_bodies_are_kombus_own_text(body) -> None:
    assert body_encoder("json")(body) == dumps(body, serializer="json")


def test_an_unencodable_body_raises_kombus_encode_error() -> None:
    with pytest.raises(EncodeError):
        body_encoder("json")(((object(),), {}, {}))


@pytest.fixture
def replaced_json() -> Iterator[None]:
    register("json", lambda body: "custom", lambda text: text, "application/json", "utf-8")
    try:
        yield
    finally:
        register_json()


def test_a_replaced_json_codec_is_the_one_used(replaced_json: None) -> None:
    assert body_encoder("json")(BODIES[0]) == ("application/json", "utf-8", "custom")
