"""Routing policies: how the router picks one queue among the queues of up workers.

A policy is one class: :meth:`Policy.choose` picks a queue for each task
(:meth:`Policy.choose_in_pool` may send it to its pool's shared queue instead); two hooks
that do nothing by default let a policy check its settings when they are built
(:meth:`Policy.check`) and keep what it reads in each process (:meth:`Policy.start`).
Each policy lives in its own module and is named in :data:`BUILTIN` (kept with the
settings, :data:`rfqueue.validation.BUILTIN_POLICIES`, which check a policy's name); a
dotted path (``pkg.mod:Class`` or ``pkg.mod.Class``) names a policy of your own.

This package may import the table (:mod:`rfqueue.table`), the brokers' depth readers
and the foundation modules; never the worker side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rfqueue.validation import BUILTIN_POLICIES as BUILTIN
from rfqueue.validation import check_policy, check_policy_name, resolve_policy

if TYPE_CHECKING:
    from rfqueue.brokers.base import DepthReader
    from rfqueue.routing.routed import RoutedCounts
    from rfqueue.settings import Settings
    from rfqueue.table.snapshot import Snapshot

__all__ = [
    "BUILTIN",
    "Policy",
    "PolicyError",
    "check_policy",
    "check_policy_name",
    "create_policy",
    "policy_class",
]


class PolicyError(ValueError):
    """A task the policy cannot route (say, without its hash key): raised into ``apply_async``."""


class Policy:
    """Chooses the queue for one task. Called once per routed task: keep it cheap."""

    #: the name settings use for this policy
    name: ClassVar[str] = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def check(cls, settings: Settings) -> None:
        """Raise :class:`~rfqueue.settings.SettingsError` when settings lack what it needs."""

    def start(
        self, snapshot: Snapshot, routed: RoutedCounts, depths: DepthReader | None = None
    ) -> None:
        """Called in each process before its first choice: keep what it reads, start threads.

        ``depths`` reads queue depths from the broker (None: from the table's Redis).
        """

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        """Return one of ``queues`` (never empty) for the task ``task_name``."""
        raise NotImplementedError

    def choose_in_pool(
        self,
        pool: str,
        whole: bool,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        """The queue for a task of ``pool``: by default :meth:`choose` among ``queues``.

        ``whole`` is true when ``queues`` are every up worker of ``pool`` (so each of
        them has the task): then the pool's own queue, which exactly those workers
        consume, is a safe answer too (the ``pull`` policy gives it).
        """
        return self.choose(queues, task_name, args, kwargs, options)


def policy_class(name: str) -> type[Policy]:
    """The :class:`Policy` subclass a policy name or dotted path names; ``ValueError`` if none."""
    cls = resolve_policy(name)
    if not issubclass(cls, Policy):
        raise ValueError(f"{name!r} is not a rfqueue.routing.policies.Policy subclass")
    return cls


def create_policy(settings: Settings) -> Policy:
    """The policy object the settings ask for."""
    return policy_class(settings.policy)(settings)
