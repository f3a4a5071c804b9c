"""Routing policies: how the router picks one queue among the queues of up workers.

A policy is one class: :meth:`Policy.choose` picks a queue for each task; two hooks
that do nothing by default let a policy check its settings when they are built
(:meth:`Policy.check`) and keep what it reads in each process (:meth:`Policy.start`).
Each policy lives in its own module and is named in :data:`BUILTIN`; a dotted path
(``pkg.mod:Class`` or ``pkg.mod.Class``) names a policy of your own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from kombu.utils.imports import symbol_by_name

if TYPE_CHECKING:
    from rfqueue.brokers import DepthReader
    from rfqueue.routed import RoutedCounts
    from rfqueue.settings import Settings
    from rfqueue.snapshot import Snapshot

#: policy name -> class, imported on first use
BUILTIN: Mapping[str, str] = {
    "hash": "rfqueue.policies.hash:HashPolicy",
    "least_loaded": "rfqueue.policies.least_loaded:LeastLoadedPolicy",
    "p2c": "rfqueue.policies.p2c:PowerOfTwoPolicy",
    "random": "rfqueue.policies.random_choice:RandomPolicy",
    "round_robin": "rfqueue.policies.round_robin:RoundRobinPolicy",
    "weighted": "rfqueue.policies.weighted:WeightedPolicy",
}


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


def policy_class(name: str) -> type[Policy]:
    """The class a policy name or dotted path refers to; ``ValueError`` if none."""
    path = BUILTIN.get(name, name)
    if "." not in path and ":" not in path:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(sorted(BUILTIN))}")
    try:
        cls = symbol_by_name(path)  # type: ignore[no-untyped-call]
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import policy {name!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise ValueError(f"{name!r} is not a rfqueue.policies.Policy subclass")
    return cls


def check_policy_name(name: str) -> None:
    """Raise the settings error for an unusable policy name."""
    from rfqueue.settings import SettingsError

    try:
        policy_class(name)
    except ValueError as exc:
        raise SettingsError(f"rfqueue_policy: {exc}") from None


def check_policy(settings: Settings) -> None:
    """Settings validation: a usable policy name, well-formed weights, the policy's own needs."""
    from rfqueue.policies.weighted import parse_weights

    check_policy_name(settings.policy)
    parse_weights(settings.weights)
    policy_class(settings.policy).check(settings)


def create_policy(settings: Settings) -> Policy:
    """The policy object the settings ask for."""
    return policy_class(settings.policy)(settings)
