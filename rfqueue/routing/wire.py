"""What a batch writes, made cheaply and exactly as Celery and kombu make it.

Helpers of :mod:`~rfqueue.routing.batch`, each measured (cProfile, docs/benchmarks.md):
task ids and delivery tags as uuid4 strings made from one ``os.urandom`` read per
thousand; ``argsrepr``/``kwargsrepr`` by ``repr`` where Celery's ``saferepr`` gives the
same text (flat arguments of plain values; anything else goes to ``saferepr``); and a
message for the default exchange turned into the ``LPUSH`` kombu's Redis channel would
run (``Channel.basic_publish`` -> ``_put``), without its per-message uuid.
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kombu.exceptions import EncodeError
from kombu.serialization import dumps as registry_dumps
from kombu.serialization import registry
from kombu.utils import json as kombu_json

#: characters whose ``repr`` in a str is themselves, between single quotes
_PLAIN_TEXT = frozenset(string.ascii_letters + string.digits + " _-.:/@,;+=()[]{}#%&*!?<>|~^$")
#: longer strings go through ``saferepr`` (it shortens long values)
_PLAIN_TEXT_MAX = 100

Command = tuple[str, tuple[Any, ...]]
Encoded = tuple[str, str, Any]

#: kombu's JSON encoder, made once: ``kombu.utils.json.dumps`` makes one per call (a
#: fifth of its time), with the same class and options, so the same text
_KOMBU_JSON = kombu_json.JSONEncoder().encode


def body_encoder(serializer: str) -> Callable[[Any], Encoded]:
    """``kombu.serialization.dumps(body, serializer)`` for one batch: with kombu's own
    ``json`` codec, that codec's output and errors from the encoder made once."""
    codec = registry._encoders.get(serializer)
    if serializer != "json" or codec is None or codec.encoder is not kombu_json.dumps:
        return lambda body: registry_dumps(body, serializer=serializer)  # type: ignore[no-untyped-call]
    content_type, content_encoding = codec.content_type, codec.content_encoding

    def encode(body: Any) -> Encoded:
        try:
            return content_type, content_encoding, _KOMBU_JSON(body)
        except Exception as exc:  # as kombu's _reraise_errors wraps a codec's error
            raise EncodeError(exc) from exc

    return encode


def uuids(count: int = 1000) -> Iterator[str]:
    """uuid4 strings (random, version 4, RFC 4122 variant), read from the OS in blocks."""
    while True:
        block = bytearray(os.urandom(16 * count))
        for start in range(0, len(block), 16):
            block[start + 6] = (block[start + 6] & 0x0F) | 0x40
            block[start + 8] = (block[start + 8] & 0x3F) | 0x80
        text = block.hex()
        for start in range(0, len(text), 32):
            h = text[start : start + 32]
            yield f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is int or kind is float or kind is bool or value is None:
        return True
    return kind is str and len(value) <= _PLAIN_TEXT_MAX and _PLAIN_TEXT.issuperset(value)


def quick_repr(value: Any, maxsize: int) -> str | None:
    """``repr(value)`` when it is what ``saferepr(value, maxsize)`` gives; else None."""
    kind = type(value)
    if kind is tuple:
        plain = all(_plain(item) for item in value)
    elif kind is dict:
        plain = all(type(k) is str and _plain(k) and _plain(v) for k, v in value.items())
    else:
        return None
    if not plain:
        return None
    text = repr(value)
    return text if len(text) < maxsize else None


def direct_push(channel: Any, message: dict[str, Any], queue: str, tag: str) -> Command | None:
    """The LPUSH kombu's Redis channel runs for ``message`` sent by the default exchange to
    ``queue`` (``basic_publish`` -> ``_inplace_augment_message``, ``_put``); None where it
    would do more (a queue with an expiry), for ``basic_publish`` itself to say."""
    if channel._expires and queue in channel._expires:
        return None
    message["body"], encoding = channel.encode_body(message["body"], channel.body_encoding)
    properties = message["properties"]
    properties.update(body_encoding=encoding, delivery_tag=tag)
    properties["delivery_info"].update(exchange="", routing_key=queue)
    priority = channel._get_message_priority(message, reverse=False)
    return "lpush", (channel._q_for_pri(queue, priority), _KOMBU_JSON(message))


def publish_properties(properties: dict[str, Any]) -> tuple[int, bool]:
    """Take ``Producer.publish``'s own arguments out of the properties, as it does: the
    priority it gives the message, and whether it can be mirrored (no content type)."""
    for key in ("mandatory", "immediate"):
        properties.pop(key, None)
    expiration = properties.pop("expiration", None)
    if expiration is not None:
        properties["expiration"] = str(int(expiration * 1000))
    priority = properties.pop("priority", None)
    mirrored = "content_type" not in properties and "content_encoding" not in properties
    return int(priority or 0), mirrored


def queue_commands(pipe: Any, commands: Sequence[Sequence[Command]], size: int) -> list[list[int]]:
    """Queue every message's commands on ``pipe``: one LPUSH per list and ``size``
    messages (each list keeps the messages' order). Which messages each command carries."""
    pushes: dict[str, list[tuple[Any, int]]] = {}
    others: list[tuple[str, tuple[Any, ...], int]] = []
    for index, own in enumerate(commands):
        for name, args in own:
            if name == "lpush":
                pushes.setdefault(args[0], []).append((args[1], index))
            else:
                others.append((name, args, index))
    owners: list[list[int]] = []
    for key, values in pushes.items():
        for start in range(0, len(values), size):
            chunk = values[start : start + size]
            pipe.lpush(key, *(payload for payload, _ in chunk))
            owners.append([index for _, index in chunk])
    for name, args, index in others:
        getattr(pipe, name)(*args)
        owners.append([] if name == "pexpire" else [index])  # an expiry is no delivery
    return owners
