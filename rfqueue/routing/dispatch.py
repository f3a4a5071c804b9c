"""Batch dispatch: publish many tasks in pipelined round trips, each routed as usual.

``dispatch_many(task, items)`` publishes one task per item inside kombu's publish
batch (``Producer.batch``, kombu 5.7+): on Redis the LPUSHes wait in one
non-transactional pipeline, sent every ``batch_size`` messages and at the end, on one
client, instead of one round trip (and, in kombu, one new client object) per task.

Every message is built and published by Celery's own functions, in the order
``Celery.send_task`` calls them: the app's router (rfqueue's policy and the failure
table, and your own ``task_routes``), ``app.amqp.create_task_message`` and
``app.amqp.send_task_message`` (with its publish signals), so the message format is
exactly Celery's. What a batch makes pointless is skipped: a publish retry per
message (nothing reaches Redis before the flush) and declaring the same queue once
per message (each queue is declared once per call), and no ``AsyncResult`` is made:
the ids are returned. Options this fast path does not mirror (``link``, ``eta``,
``expires``...), eager mode and transports without batches go through
``task.apply_async`` for each item instead, still inside the batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from kombu.utils.uuid import uuid

#: messages per pipeline round trip (kombu's own default)
DEFAULT_BATCH_SIZE = 1000

#: ``apply_async`` options the fast path passes on exactly as ``Celery.send_task`` does;
#: any other ``send_task`` argument sends every item through ``apply_async``
_SEND_TASK_ARGS = frozenset(
    {
        "eta", "expires", "task_id", "connection", "router", "result_cls", "publisher",
        "link", "link_error", "add_to_parent", "group_id", "group_index", "retries",
        "chord", "reply_to", "root_id", "parent_id", "route_name", "shadow", "chain",
        "task_type", "replaced_task_nesting", "producer",
    }
)  # fmt: skip

Item = Sequence[Any] | Mapping[str, Any]
Sender = Callable[[tuple[Any, ...], dict[str, Any]], str]


def dispatch_many(
    task: Any,
    iterable_of_args: Iterable[Item],
    kwargs: Mapping[str, Any] | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    **options: Any,
) -> list[str]:
    """Publish ``task`` once per item and return the task ids, in order.

    Each item is the positional arguments of one task (a tuple or list), or its
    keyword arguments (a mapping). ``kwargs`` are added to every task (an item's own
    keywords win); ``options`` are ``apply_async`` options for every task
    (``countdown``, ``priority``, ``queue``...). A publishing error propagates:
    pipelines already sent are published, the rest is not, and kombu's
    ``BatchPublishError`` says the last pipeline's delivery is uncertain.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: must be a positive whole number, got {batch_size!r}")
    common = dict(kwargs or {})
    app = task._get_app()
    with app.producer_or_acquire() as producer, _batch(producer, batch_size):
        send = _fast_sender(task, producer, options) or _apply_async_sender(task, producer, options)
        return [send(*_split(item, common)) for item in iterable_of_args]


def _batch(producer: Any, batch_size: int) -> contextlib.AbstractContextManager[Any]:
    # Producer.batch arrived in kombu 5.7; without it every publish goes out at once.
    batch = getattr(producer, "batch", None)
    return batch(max_size=batch_size) if batch is not None else contextlib.nullcontext()


def _split(item: Item, common: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(item, Mapping):
        return (), {**common, **item}
    if isinstance(item, (str, bytes)) or not isinstance(item, Sequence):
        raise TypeError(
            "dispatch_many: each item must be a tuple of arguments or a mapping of "
            f"keyword arguments, got {type(item).__name__} {item!r}"
        )
    return tuple(item), dict(common)


def _apply_async_sender(task: Any, producer: Any, options: dict[str, Any]) -> Sender:
    def send(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return str(task.apply_async(args, kwargs, producer=producer, **options).id)

    return send


def _fast_sender(task: Any, producer: Any, options: dict[str, Any]) -> Sender | None:
    """Celery's send path minus what a batch makes pointless; None where it cannot mirror it."""
    app = task._get_app()
    if (
        app.conf.task_always_eager
        or app.conf.task_protocol != 2
        or not getattr(producer, "supports_batch_publish", False)
        or task.__v2_compat__
        or getattr(task, "_dump_pydantic_arguments", None) is not None
        or _SEND_TASK_ARGS & options.keys()
        or task._get_exec_options().get("expires") is not None
    ):
        return None
    return _FastSender(task, producer, options).send


class _FastSender:
    """Sends one task the way ``Task.apply_async`` -> ``Celery.send_task`` would."""

    def __init__(self, task: Any, producer: Any, options: dict[str, Any]) -> None:
        if task.soft_time_limit and task.time_limit and task.soft_time_limit > task.time_limit:
            raise ValueError("soft_time_limit must be less than or equal to time_limit")
        app = self.app = task._get_app()
        self.task, self.producer, self.name = task, producer, task.name
        self.options = options
        self.amqp, self.conf = app.amqp, app.conf
        # Read once: each is a settings lookup or a property per access.
        self.sent_event, self.reply_to = app.conf.task_send_sent_event, app.thread_oid
        self.repr_levels, self.origin = app.conf.task_repr_maxlevels, anon_nodename()
        base = dict(task._get_exec_options(), **options)  # as apply_async merges them
        base.setdefault("ignore_result", task.ignore_result)
        self.countdown = base.pop("countdown", None)
        self.time_limit = base.pop("time_limit", None)
        self.soft_time_limit = base.pop("soft_time_limit", None)
        base.pop("expires", None)  # None here: a real expires takes the apply_async path
        self.ignore_result = base.pop("ignore_result")
        self.parent = app.current_worker_task
        self.root_id = self.parent_id = None
        if self.parent is not None:
            self.root_id = self.parent.request.root_id or self.parent.request.id
            self.parent_id = self.parent.request.id
            if self.conf.task_inherit_parent_priority:
                base.setdefault("priority", self.parent.request.delivery_info.get("priority"))
        self.base = base
        self.check_arguments = getattr(task, "__header__", None) if task.typing else None
        #: queues declared by this call: a batch declares each one once
        self.declared: set[int] = set()

    def send(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if self.check_arguments is not None:
            self.check_arguments(*args, **kwargs)
        task_id = uuid()
        options = dict(self.base)
        shadow = self.task.shadow_name(args, kwargs, self.options)  # the caller's options
        options = self.amqp.router.route(options, self.name, args, kwargs, self.task)
        message = self.amqp.create_task_message(
            task_id, self.name, args, kwargs, self.countdown, None, None, None, None, 0, None,
            None, None, self.reply_to, self.time_limit, self.soft_time_limit,
            self.sent_event, self.root_id, self.parent_id, shadow, None,
            ignore_result=self.ignore_result, replaced_task_nesting=0,
            **self._headers(args, kwargs, options), **options,
        )  # fmt: skip
        for stamp in options.pop("stamped_headers", []):
            options.pop(stamp)
        if not self.ignore_result:
            self.app.backend.on_task_call(self.producer, task_id)
        self.amqp.send_task_message(
            self.producer, self.name, message, retry=False, declare=self._declare(options),
            **options,
        )  # fmt: skip
        if self.parent is not None:
            self.parent.add_trail(self.task.AsyncResult(task_id))
        return str(task_id)

    def _headers(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any]:
        """What as_task_v2 would compute with two settings lookups per message, the same way.

        Only for create_task_message: a key in ``options`` would also become a message
        property in send_task_message. A caller's own ``argsrepr`` (say) is left alone.
        """
        amqp, levels, headers = self.amqp, self.repr_levels, {}
        if "argsrepr" not in options:
            headers["argsrepr"] = saferepr(args, amqp.argsrepr_maxsize, maxlevels=levels)
        if "kwargsrepr" not in options:
            headers["kwargsrepr"] = saferepr(kwargs, amqp.kwargsrepr_maxsize, maxlevels=levels)
        if "origin" not in options:
            headers["origin"] = self.origin
        return headers

    def _declare(self, options: dict[str, Any]) -> list[Any] | None:
        """Celery's default declare (the queue) the first time a queue is seen, then none."""
        queue = options.get("queue")
        if queue is None or isinstance(queue, str):
            return None
        if hash(queue) in self.declared:  # kombu's declaration cache keys on hash() too
            return []
        self.declared.add(hash(queue))
        return None
