"""A task's logical queue (its pool), found as Celery would find it, before rfqueue picks a worker.

rfqueue's router sits early in ``task_routes`` (``install()`` puts it right after
:class:`~rfqueue.routing.unpin.Unpin` and the control route). For each task it
consults, in Celery's order, the routes that come after it (the user's own), and
then applies Celery's precedence to what they say:

1. the caller's ``queue=`` (or the task's ``queue`` attribute, which Celery has merged
   into the options): Celery lets options win over every route;
2. the ``rfqueue-pool`` header a retry carries over from the first attempt (the retry's
   pin to the worker's own queue was removed by ``Unpin``);
3. the first later route that answers;
4. ``task_default_queue``.

The router then picks a worker of that pool. A destination it does not route within
(a worker's dedicated queue, a queue no registered worker consumes, a route by exchange
and routing key alone) is left to Celery, with the later route's own answer.

The answer names the worker's queue as a ``kombu.Queue``, never a bare name: Celery
looks a name up in the app's ``task_queues`` (``QueueNotFound`` when
``task_create_missing_queues`` is off, and otherwise adds it, so a worker that routes
would come to consume every queue it routed to). The queue is the one Celery would
have made for the name (:func:`worker_queue`), with the arguments of the pool queue it
stands in for, so a priority queue's worker queues are priority queues too.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celery.utils.functional import maybe_evaluate
from kombu.entity import Exchange, Queue

from rfqueue.table.service import POOL_HEADER

#: option and route keys that name a destination besides the queue (they would win)
DESTINATION_KEYS = ("queue", "exchange", "routing_key", "exchange_type")

#: cached queue objects per app before the cache starts afresh (workers come and go)
MAX_QUEUES = 10_000


def direct_queue(name: str) -> Queue:
    """``name`` as Celery makes a missing queue by default: its own direct exchange."""
    return Queue(name, Exchange(name), name)  # type: ignore[no-untyped-call]


def worker_queue(app: Any, name: str, pool: str) -> Queue:
    """The queue ``name`` as the app declares it, else as Celery would make a missing
    one, with ``pool``'s arguments.

    Celery's ``Queues.new_missing`` gives the exchange and routing key (an exchange
    named after the queue, or ``task_create_missing_queue_exchange_type``); the queue
    arguments are those of the pool queue when the app declares it (``x-max-priority``,
    ``x-queue-type``), else what Celery gives a missing queue, plus
    ``task_queue_max_priority``. Neither queue is added to the app's queues.
    """
    return queue_in(app.amqp.queues, name, pool)


def queue_in(queues: Any, name: str, pool: str) -> Queue:
    """:func:`worker_queue` from the app's ``Queues`` (``app.amqp.queues``) itself."""
    declared = dict.get(queues, name)  # Queues[name] would create it
    if declared is not None:
        return declared  # type: ignore[no-any-return]
    made = queues.new_missing(name)
    known = dict.get(queues, pool)
    arguments = dict((known.queue_arguments if known is not None else made.queue_arguments) or {})
    if queues.max_priority is not None:
        arguments.setdefault("x-max-priority", queues.max_priority)
    made.queue_arguments = arguments or None
    return made  # type: ignore[no-any-return]


@dataclass
class AppRoutes:
    """What the router needs of one Celery app: its routes after the router, its default."""

    #: the routes after the router, each as ``route(name, args, kwargs, options, task=...)``
    later: Sequence[Any] = field(default_factory=tuple)
    default_queue: str = "celery"
    app: Any = None
    #: (queue name, pool) -> its kombu.Queue; Celery never mutates one, so it is shared
    queues: dict[tuple[str, str], Queue] = field(default_factory=dict)

    @classmethod
    def of(cls, app: Any, router: Any) -> AppRoutes:
        """``app``'s routes that come after ``router`` (none if ``router`` is not among them)."""
        routes = [maybe_evaluate(entry) for entry in app.amqp.router.routes]  # dotted: lazy
        later = routes[routes.index(router) + 1 :] if router in routes else []
        return cls(tuple(map(_asker, later)), app.conf.task_default_queue or "celery", app)

    def queue(self, name: str, pool: str) -> Queue:
        """The ``kombu.Queue`` named ``name`` that stands in for ``pool`` (cached)."""
        queue = self.queues.get((name, pool))
        if queue is None:
            if len(self.queues) > MAX_QUEUES:
                self.queues.clear()
            queue = self.queues[(name, pool)] = worker_queue(self.app, name, pool)
        return queue

    def later_route(self, name: str, args: Any, kwargs: Any, options: Any, task: Any) -> Any:
        """The first answer of the later routes, as Celery would ask them; None if none."""
        for route in self.later:
            answer = route(name, args, kwargs, options, task=task)
            if answer is not None:
                return answer
        return None

    def logical_queue(self, options: Mapping[str, Any], route: Any) -> str | None:
        """The queue Celery would send the task to; None when it goes by exchange alone."""
        explicit = options.get("queue")
        if explicit is not None:
            return _queue_name(explicit)
        headers = options.get("headers")
        if headers and isinstance(headers, Mapping) and isinstance(headers.get(POOL_HEADER), str):
            return str(headers[POOL_HEADER])
        if options.get("exchange") or options.get("routing_key"):
            return None  # the caller's own exchange routing: not a queue we know
        if route is None:
            return self.default_queue
        if isinstance(route, str):
            return route
        return _queue_name(route.get("queue")) if isinstance(route, Mapping) else None


def _asker(route: Any) -> Any:
    """``route`` as Celery's ``Router.query_router`` asks it (pre-4.0 routers included)."""
    if hasattr(route, "route_for_task"):
        return lambda name, args, kwargs, options, task=None: route.route_for_task(
            name, args, kwargs
        )
    return route


def _queue_name(queue: Any) -> str | None:
    """A queue name given as a string or a ``kombu.Queue`` (Celery expands options first)."""
    name = getattr(queue, "name", queue)
    return name if isinstance(name, str) and name else None


def to_worker(
    queue: Queue, pool: str, options: MutableMapping[str, Any], route: Any
) -> dict[str, Any]:
    """The answer that sends the task to ``queue`` in ``pool``, whatever the caller said.

    The caller's destination is removed from ``options`` in place (Celery lets options
    win over routes, as ``Unpin`` does); the later route's other keys (a priority, say)
    are kept; the pool travels in a message header, for the rescue and for retries.
    """
    if not options and route is None:  # the hot path's usual case: nothing to take or keep
        return {"queue": queue, "headers": {POOL_HEADER: pool}}
    for key in DESTINATION_KEYS:
        if key in options:
            del options[key]
    headers = options.get("headers")
    # (None first: an isinstance of an ABC costs more than the rest of the answer)
    if headers is not None and isinstance(headers, Mapping):  # options win: the pool must be
        options["headers"] = {**headers, POOL_HEADER: pool}  # in the caller's headers too
    if route is None or not isinstance(route, Mapping):
        return {"queue": queue, "headers": {POOL_HEADER: pool}}
    answer = {k: v for k, v in route.items() if k not in DESTINATION_KEYS}
    answer["queue"] = queue
    own = answer.get("headers")
    answer["headers"] = {**(own if isinstance(own, Mapping) else {}), POOL_HEADER: pool}
    return answer
