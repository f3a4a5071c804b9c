"""``dispatch_many`` on Redis: every message routed, built and encoded, then one transaction.

Each task goes the way ``Task.apply_async`` -> ``Celery.send_task`` ->
``amqp.send_task_message`` -> ``Producer.publish`` would send it, with Celery's and
kombu's own functions (the app's router, ``create_task_message``, kombu's serializer and
its Redis channel's ``basic_publish``, which hands over the exact commands it would run),
but nothing is written until every item is built: an item that cannot be routed or
encoded raises before the first write. The commands then go in one ``MULTI``/``EXEC``
(one ``LPUSH`` of up to ``batch_size`` messages per list), so the batch lands whole or
not at all; ``after_task_publish`` fires once it has landed. A command Redis refuses
inside the transaction (a key of another type) leaves the others applied, as Redis does:
:class:`~rfqueue.routing.dispatch.DispatchError` then names the ids that went out.

What is the same for every message is worked out once per call (settings lookups, the
``origin`` header, the parent task, the exec options); per message remain the route, the
ids, ``argsrepr``/``kwargsrepr``, the two JSON encodings and the delivery tag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import signals
from celery.app.task import Task as CeleryTask
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from kombu.compression import compress
from kombu.utils.functional import retry_over_time

from rfqueue.routing import accepted
from rfqueue.routing.routed import RoutedCounts
from rfqueue.routing.wire import (
    Encoded,
    body_encoder,
    direct_push,
    publish_properties,
    queue_commands,
    quick_repr,
    uuids,
)

#: the errors of reaching Redis that a publish retry rides out
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class NotMirrored(Exception):
    """A message needs what this path does not mirror: send the batch one by one instead."""


class Uncertain(Exception):
    """The connection broke while the transaction was sent or answered: it may have run."""


@dataclass(slots=True)
class Prepared:
    """One message, ready to write: what kombu would run for it, and what follows the write."""

    task_id: str
    body: Any
    exchange: Any
    routing_key: str
    commands: list[tuple[str, tuple[Any, ...]]]
    counted: tuple[RoutedCounts, str] | None


@dataclass
class Collector:
    """The ``_publish_batch`` kombu's Redis channel gives a message's commands to."""

    commands: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def add(self, name: str, *args: Any) -> None:
        self.commands.append((name, args))


class Batch:
    """Builds the messages of one ``dispatch_many`` call, then writes them in one transaction."""

    def __init__(self, task: Any, producer: Any, options: dict[str, Any]) -> None:
        if task.soft_time_limit and task.time_limit and task.soft_time_limit > task.time_limit:
            raise ValueError("soft_time_limit must be less than or equal to time_limit")
        app = self.app = task._get_app()
        self.task, self.producer, self.name, self.options = task, producer, task.name, options
        self.amqp, conf = app.amqp, app.conf
        # Bound once: each is a cached property looked up per access.
        self.route, self.create_message = self.amqp.router.route, self.amqp.create_task_message
        self.channel = producer.channel
        self.reply_to, self.origin = app.thread_oid, anon_nodename()
        self.repr_levels = conf.task_repr_maxlevels
        self.serializer, self.compression = conf.task_serializer, conf.task_compression
        #: serializer -> its encoder, made at its first message
        self.encoders: dict[str, Callable[[Any], Encoded]] = {}
        self.delivery_mode = conf.task_default_delivery_mode
        self.retry = options.pop("retry", conf.task_publish_retry)
        own_policy = options.pop("retry_policy", None) or {}
        self.retry_policy = {**conf.task_publish_retry_policy, **own_policy}
        base = dict(task._get_exec_options(), **options)  # as apply_async merges them
        base.setdefault("ignore_result", task.ignore_result)
        if task.priority:
            base.setdefault("priority", task.priority)
        self.countdown = base.pop("countdown", None)
        self.time_limit = base.pop("time_limit", None)
        self.soft_time_limit = base.pop("soft_time_limit", None)
        base.pop("expires", None)  # None here: a real expires takes the one-by-one path
        self.ignore_result = base.pop("ignore_result")
        self.base = base
        self._parent(app)
        self.check_arguments = getattr(task, "__header__", None) if task.typing else None
        self.shadow = type(task).shadow_name is not CeleryTask.shadow_name
        self.declare: dict[int, Any] = {}
        self.ids = uuids()
        self.collector = Collector()

    def _parent(self, app: Any) -> None:
        self.parent = app.current_worker_task
        self.root_id = self.parent_id = self.parent_priority = None
        self.inherit = False
        if self.parent is not None:
            request = self.parent.request
            self.root_id, self.parent_id = request.root_id or request.id, request.id
            self.inherit = bool(app.conf.task_inherit_parent_priority)
            self.parent_priority = (request.delivery_info or {}).get("priority")

    def build(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Prepared:
        """Route, build and encode one task; write nothing."""
        if self.check_arguments is not None:
            self.check_arguments(*args, **kwargs)
        task_id = next(self.ids)
        shadow = self.task.shadow_name(args, kwargs, self.options) if self.shadow else None
        options = self.route(dict(self.base), self.name, args, kwargs, self.task)
        if self.inherit:  # after the route, as send_task does
            options.setdefault("priority", self.parent_priority)
        headers, properties, body, _ = self.create_message(
            task_id, self.name, args, kwargs, self.countdown, None, None, None, None, 0, None,
            None, None, self.reply_to, self.time_limit, self.soft_time_limit, False,
            self.root_id, self.parent_id, shadow, None, ignore_result=self.ignore_result,
            replaced_task_nesting=0, **self._reprs(args, kwargs, options), **options,
        )  # fmt: skip
        for stamp in options.pop("stamped_headers", []):
            options.pop(stamp)
        return self._encode(task_id, headers, properties, body, options)

    def _reprs(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any]:
        """What as_task_v2 would compute with two settings lookups per message, the same way."""
        amqp, levels, out = self.amqp, self.repr_levels, {}
        if "argsrepr" not in options:
            size = amqp.argsrepr_maxsize
            out["argsrepr"] = quick_repr(args, size) or saferepr(args, size, maxlevels=levels)
        if "kwargsrepr" not in options:
            size = amqp.kwargsrepr_maxsize
            out["kwargsrepr"] = quick_repr(kwargs, size) or saferepr(kwargs, size, maxlevels=levels)
        if "origin" not in options:
            out["origin"] = self.origin
        return out

    def _encode(
        self,
        task_id: str,
        headers: dict[str, Any],
        properties: dict[str, Any],
        body: Any,
        options: dict[str, Any],
    ) -> Prepared:
        """``send_task_message`` and ``Producer.publish`` up to the write, as they do it."""
        exchange, routing_key, mode, declare = self._destination(options)
        for key in ("event_dispatcher", "retry", "retry_policy", "timeout", "confirm_timeout"):
            options.pop(key, None)
        serializer = options.pop("serializer", None) or self.serializer
        compression = options.pop("compression", None) or self.compression
        if options.get("headers"):
            headers.update(options.pop("headers"))
        options.pop("headers", None)
        properties.update(options)
        if signals.before_task_publish.receivers:
            signals.before_task_publish.send(
                sender=self.name, body=body, exchange=exchange, routing_key=routing_key,
                declare=declare, headers=headers, properties=properties,
                retry_policy=self.retry_policy,
            )  # fmt: skip
        exchange_name, properties["delivery_mode"] = self.producer._delivery_details(
            exchange or self.producer.exchange, mode
        )
        priority, mirrored = publish_properties(properties)
        if not mirrored:
            raise NotMirrored("a content type of the caller's")
        encode = self.encoders.get(serializer)
        if encode is None:
            encode = self.encoders[serializer] = body_encoder(serializer)
        content_type, content_encoding, data = encode(body)
        if compression:
            data, headers["compression"] = compress(data, compression)  # type: ignore[no-untyped-call]
        message = self.channel.prepare_message(
            data, priority, content_type, content_encoding, headers, properties
        )
        tag = next(self.ids)
        pushed = None if exchange_name else direct_push(self.channel, message, routing_key, tag)
        if pushed is not None:
            commands = [pushed]
        else:  # kombu routes it through the exchange and hands over its commands
            commands = self.collector.commands = []
            self.channel.basic_publish(
                message, exchange=exchange_name, routing_key=routing_key,
                _publish_batch=self.collector,
            )  # fmt: skip
        counted = accepted.take(exchange_name, routing_key)  # the router's note of this route
        if counted is not None:
            counted[0].add(counted[1])  # now: the next routes of the batch see it (least_loaded)
        return Prepared(task_id, body, exchange, routing_key, commands, counted)

    def _destination(self, options: dict[str, Any]) -> tuple[Any, str, Any, list[Any]]:
        """Exchange, routing key, delivery mode, declarations: as send_task_message finds them."""
        queue, exchange = options.pop("queue", None), options.pop("exchange", None)
        routing_key = options.pop("routing_key", None)
        exchange_type, mode = options.pop("exchange_type", None), options.pop("delivery_mode", None)
        declare = options.pop("declare", None)
        qname = queue
        if queue is None and exchange is None:
            queue = self.amqp.default_queue
        if queue is not None:
            if isinstance(queue, str):
                qname, queue = queue, self.amqp.queues[queue]
            else:
                qname = queue.name
        mode = mode or getattr(getattr(queue, "exchange", None), "delivery_mode", None)
        mode = mode or self.delivery_mode
        exchange_type = exchange_type or getattr(getattr(queue, "exchange", None), "type", "direct")
        if (not exchange or not routing_key) and exchange_type == "direct":
            exchange, routing_key = "", qname
        elif exchange is None:
            raise NotMirrored("an exchange taken from the queue")
        if declare is None:
            declare = [queue] if queue is not None else []
        for entity in declare:
            self.declare.setdefault(hash(entity), entity)
        return exchange, routing_key, mode, declare

    def write(self, prepared: Sequence[Prepared], batch_size: int) -> list[bool]:
        """Declare, then run every message's commands in one transaction; which landed."""
        for entity in self.declare.values():
            self.producer.maybe_declare(entity, retry=self.retry, **self.retry_policy)
        with self.channel.conn_or_acquire() as client:
            if self.retry:
                self._reach(client)
            pipe = client.pipeline(transaction=True)
            owners = queue_commands(pipe, [p.commands for p in prepared], batch_size)
            try:
                results = pipe.execute(raise_on_error=False)
            except CONNECTION_ERRORS as exc:
                raise Uncertain(str(exc)) from exc
        landed = [True] * len(prepared)
        for result, owned in zip(results, owners, strict=True):
            if isinstance(result, Exception):
                for index in owned:
                    landed[index] = False
        return landed

    def _reach(self, client: Any) -> None:
        """Ride out a Redis that cannot be reached yet, as the publish retry policy says."""
        policy = self.retry_policy
        retry_over_time(  # type: ignore[no-untyped-call]
            client.ping, CONNECTION_ERRORS, max_retries=policy.get("max_retries", 3),
            interval_start=policy.get("interval_start", 0),
            interval_step=policy.get("interval_step", 0.2),
            interval_max=policy.get("interval_max", 1),
        )  # fmt: skip

    def announce(self, prepared: Prepared, listened: bool) -> None:
        """What follows a landed message: ``after_task_publish`` (``listened``: someone
        besides rfqueue's count hears it) and the parent's trail."""
        if listened:
            signals.after_task_publish.send(
                sender=self.name, body=prepared.body, exchange=prepared.exchange,
                routing_key=prepared.routing_key,
            )  # fmt: skip
        if self.parent is not None:
            self.parent.add_trail(self.task.AsyncResult(prepared.task_id))

    def subscribe(self, prepared: Sequence[Prepared]) -> None:
        """The result backend hears of each id before the task can run (as send_task does)."""
        if not self.ignore_result:
            for message in prepared:
                self.app.backend.on_task_call(self.producer, message.task_id)
