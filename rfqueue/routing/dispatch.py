"""Batch dispatch: publish many tasks at once, each routed as usual, all or nothing.

``dispatch_many(task, items)`` sends one task per item. On Redis, when nothing the
caller relies on would be bypassed, every message is routed (rfqueue's policy and the
failure table, and your own ``task_routes``), built and encoded by Celery's and kombu's
own functions first, and the batch is written in one ``MULTI``/``EXEC``
(:mod:`~rfqueue.routing.batch`): an item that cannot be routed or encoded raises before
anything is written, and ``after_task_publish`` fires once the messages are in Redis.

Otherwise each item goes through ``task.apply_async`` in turn, published at once: a
``Task`` class that overrides ``apply_async`` or an app that overrides ``send_task``
(their headers, locks or bookkeeping must run), eager mode, a transport other than
Redis, and options the fast path does not mirror (``link``, ``eta``, ``expires``...).
A batch cannot be all or nothing there: a failure raises :class:`DispatchError`, which
carries the ids already published.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from celery import Celery
from celery.app.task import Task as CeleryTask

from rfqueue.routing import accepted
from rfqueue.routing.batch import Batch, NotMirrored, Uncertain

#: messages per LPUSH inside the transaction (kombu's own batch size)
DEFAULT_BATCH_SIZE = 1000

#: ``send_task`` arguments the fast path does not mirror: any of them sends every item
#: through ``apply_async``
_SEND_TASK_ARGS = frozenset(
    {
        "eta", "expires", "task_id", "connection", "router", "result_cls", "publisher",
        "link", "link_error", "add_to_parent", "group_id", "group_index", "retries",
        "chord", "reply_to", "root_id", "parent_id", "route_name", "shadow", "chain",
        "task_type", "replaced_task_nesting",
    }
)  # fmt: skip

Item = Sequence[Any] | Mapping[str, Any]
Call = tuple[tuple[Any, ...], dict[str, Any]]


class DispatchError(RuntimeError):
    """A batch did not go out whole. ``published``: the ids that did, in order;
    ``unpublished``: those that did not; ``uncertain``: those Redis may or may not have
    (the connection broke while the transaction ran). Its cause is the original error."""

    def __init__(
        self,
        message: str,
        published: Sequence[str],
        unpublished: Sequence[str],
        uncertain: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.published = tuple(published)
        self.unpublished = tuple(unpublished)
        self.uncertain = tuple(uncertain)


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
    (``countdown``, ``priority``, ``queue``, ``producer``, ``retry``...). An error
    before the write (an item that cannot be routed or encoded) propagates with
    nothing published; a batch that went out in part raises :class:`DispatchError`.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: must be a positive whole number, got {batch_size!r}")
    common = dict(kwargs or {})
    task = getattr(task, "_get_current_object", lambda: task)()  # a task not yet finalized
    calls = [_split(item, common) for item in iterable_of_args]  # every item checked first
    app = task._get_app()
    with app.producer_or_acquire(options.pop("producer", None)) as producer:
        if _fast_path(task, app, producer, options):
            try:
                return _all_at_once(task, producer, options, calls, batch_size)
            except NotMirrored:
                pass  # found while building: nothing was written
        return _one_by_one(task, producer, options, calls)


def _split(item: Item, common: dict[str, Any]) -> Call:
    if type(item) is tuple:  # the common case first: no ABC checks
        return item, dict(common)
    if isinstance(item, Mapping):
        return (), {**common, **item}
    if isinstance(item, (str, bytes)) or not isinstance(item, Sequence):
        raise TypeError(
            "dispatch_many: each item must be a tuple of arguments or a mapping of "
            f"keyword arguments, got {type(item).__name__} {item!r}"
        )
    return tuple(item), dict(common)


def _fast_path(task: Any, app: Any, producer: Any, options: dict[str, Any]) -> bool:
    """Whether the batch can be built here exactly as ``apply_async`` would send it."""
    from kombu.transport.redis import Channel as RedisChannel

    conf, task_class = app.conf, type(task)
    return not (
        conf.task_always_eager
        or conf.task_protocol != 2
        or conf.task_send_sent_event
        or task_class.apply_async is not CeleryTask.apply_async  # the override must run
        or type(app).send_task is not Celery.send_task
        or task_class.__v2_compat__
        or getattr(task, "_dump_pydantic_arguments", None) is not None
        or _SEND_TASK_ARGS & options.keys()
        or task._get_exec_options().get("expires") is not None
        or not isinstance(producer.channel, RedisChannel)
    )


def _all_at_once(
    task: Any, producer: Any, options: dict[str, Any], calls: list[Call], batch_size: int
) -> list[str]:
    batch = Batch(task, producer, dict(options))
    prepared = []
    try:
        for args, kwargs in calls:
            prepared.append(batch.build(args, kwargs))
        batch.subscribe(prepared)
        landed = batch.write(prepared, batch_size)
    except Uncertain as exc:
        ids = [p.task_id for p in prepared]  # counted: they may well have landed
        raise DispatchError(
            f"dispatch_many: the connection to Redis broke while the batch of {len(ids)} "
            f"was written; whether it landed is unknown ({exc})",
            (), (), ids,
        ) from exc.__cause__  # fmt: skip
    except BaseException:
        _take_back(prepared, [False] * len(prepared))  # nothing was written
        raise
    _take_back(prepared, landed)
    listened = accepted.others_listen()
    for message, ok in zip(prepared, landed, strict=True):
        if ok:
            batch.announce(message, listened)
    ids = [p.task_id for p in prepared]
    if not all(landed):
        published = [i for i, ok in zip(ids, landed, strict=True) if ok]
        raise DispatchError(
            f"dispatch_many: Redis refused part of the batch: {len(published)} of "
            f"{len(ids)} published",
            published, [i for i, ok in zip(ids, landed, strict=True) if not ok],
        )  # fmt: skip
    return ids


def _take_back(prepared: Sequence[Any], landed: Sequence[bool]) -> None:
    """Routed counts were added as each task was routed: take back those that did not land."""
    for message, ok in zip(prepared, landed, strict=True):
        if not ok and message.counted is not None:
            counts, queue = message.counted
            counts.add(queue, -1)


def _one_by_one(task: Any, producer: Any, options: dict[str, Any], calls: list[Call]) -> list[str]:
    """``task.apply_async`` per item, each published at once (overrides run)."""
    ids: list[str] = []
    for args, kwargs in calls:
        try:
            ids.append(str(task.apply_async(args, kwargs, producer=producer, **options).id))
        except Exception as exc:
            if not ids:
                raise
            raise DispatchError(
                f"dispatch_many: {len(ids)} of {len(calls)} published, then: {exc!r}",
                ids, (),
            ) from exc  # fmt: skip
    return ids
