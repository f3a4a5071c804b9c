"""``hash``: same key, same worker; a pause moves only that worker's keys, and only for a while."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from rfqueue.routing.policies import PolicyError
from rfqueue.routing.policies.hash import HashPolicy, HashRing, stable_hash
from rfqueue.routing.routed import RoutedCounts
from rfqueue.routing.router import Router
from rfqueue.settings import Settings, SettingsError
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from rfqueue.table.snapshot import Snapshot

QUEUES = tuple(f"rfqueue.w{i}@h" for i in range(4))
KEYS = [f"user-{i}" for i in range(2000)]


def policy(key: str = "user_id") -> HashPolicy:
    return HashPolicy(Settings(policy="hash", hash_key=key))


def owners(p: HashPolicy, up: tuple[str, ...] = QUEUES) -> dict[str, str]:
    return {k: p.choose(up, "app.fetch", (), {"user_id": k}, {}) for k in KEYS}


def test_same_key_same_queue() -> None:
    p = policy()
    assert owners(p) == owners(p)


def test_keys_spread_over_every_queue() -> None:
    shares = Counter(owners(policy()).values())
    assert set(shares) == set(QUEUES)
    assert max(shares.values()) / (len(KEYS) / len(QUEUES)) < 1.35, shares


def test_a_pause_moves_only_that_workers_keys_and_they_return() -> None:
    # Given every key's owner while all four are up
    p = policy()
    before = owners(p)
    # When w1 is paused (the ring still spans every registered queue)
    up = tuple(q for q in QUEUES if q != QUEUES[1])
    during = owners(p, up)
    # Then only w1's keys moved, spread over the others
    moved = {k for k in KEYS if before[k] != during[k]}
    assert moved == {k for k in KEYS if before[k] == QUEUES[1]}
    assert {during[k] for k in moved} == set(up)
    # And when w1 is back every key is home again
    assert owners(p) == before


def test_hash_is_stable_across_processes() -> None:
    # Python's hash() is salted per process; the ring must not be
    code = "from rfqueue.routing.policies.hash import stable_hash; print(stable_hash('user-7'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == stable_hash("user-7")


def test_key_by_position() -> None:
    p = policy("0")
    by_position = p.choose(QUEUES, "app.fetch", ("user-3", "x"), {}, {})
    by_keyword = policy().choose(QUEUES, "app.fetch", (), {"user_id": "user-3"}, {})
    assert by_position == by_keyword


@pytest.mark.parametrize(
    ("key", "args", "kwargs", "message"),
    [
        ("user_id", (), {}, "sent without the keyword argument 'user_id'"),
        ("user_id", ("user-3",), {}, "pass it by keyword, or name its position"),
        ("2", ("a", "b"), {}, "has no argument 2 to hash on"),
    ],
)
def test_task_without_its_key_is_a_clear_error(
    key: str, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError, match=message) as info:
        policy(key).choose(QUEUES, "app.fetch", args, kwargs, {})
    assert str(info.value).startswith("rfqueue_hash_key: app.fetch ")


def test_celery_and_rfqueue_tasks_take_turns() -> None:
    p = policy()
    chosen = [p.choose(QUEUES, name, (), {}, {}) for name in ["rfqueue.chaos", "celery.ping"] * 4]
    assert Counter(chosen) == dict.fromkeys(QUEUES, 2)


@pytest.mark.parametrize("key", ["", "  "])
def test_hash_without_a_key_fails_when_settings_are_built(key: str) -> None:
    with pytest.raises(SettingsError, match=r"^rfqueue_hash_key: policy 'hash' needs"):
        Settings.load({}, {"RFQUEUE_POLICY": "hash", "RFQUEUE_HASH_KEY": key})
    Settings(policy="round_robin", hash_key="")  # only hash needs one


def test_ring_owner_none_when_nothing_is_up() -> None:
    ring = HashRing(QUEUES)
    assert ring.owner("k", frozenset()) is None
    assert HashRing(()).owner("k", frozenset(QUEUES)) is None


def test_router_raises_the_missing_key_into_apply_async(
    use_fake_redis: None, table: FailureTable, stop: Callable[[Snapshot], None]
) -> None:
    # Given a hash router over two up workers
    table.register("a@h", "rfqueue.a@h")
    table.register("b@h", "rfqueue.b@h")
    settings = Settings(
        redis_url="redis://fake:6379/0", namespace="t", policy="hash", hash_key="user_id"
    )
    router = Router(settings=settings)
    # When a task comes without the key, Then the sender hears of it
    with pytest.raises(PolicyError, match="user_id"):
        router("app.fetch", (), {}, {})
    # And a task with it is routed, the same way every time
    first = router("app.fetch", (), {"user_id": 42}, {})
    assert first is not None and router("app.fetch", (), {"user_id": 42}, {}) == first


def test_ring_spans_paused_workers_via_the_snapshot(
    table: FailureTable, stop: Callable[[Snapshot], None]
) -> None:
    # Given a snapshot of four workers, w1 paused
    for q in QUEUES:
        table.register(q.removeprefix("rfqueue."), q)
    table.pause("w1@h", 600, Reason.MANUAL)
    snapshot = Snapshot(table, refresh_interval=60)
    snapshot.ensure_started()
    try:
        p = policy()
        p.start(snapshot, RoutedCounts())
        # When keys are routed over the up queues
        assert QUEUES[1] not in snapshot.up_queues
        during = owners(p, snapshot.up_queues)
        # Then they are the keys' homes on the full ring, except w1's
        home = owners(policy())
        assert {k for k in KEYS if during[k] != home[k]} == {
            k for k in KEYS if home[k] == QUEUES[1]
        }
    finally:
        stop(snapshot)


def test_the_ring_is_built_off_the_hot_path(
    table: FailureTable,
    stop: Callable[[Snapshot], None],
    monkeypatch: pytest.MonkeyPatch,
    poll: Callable[..., bool],
) -> None:
    # Given a started policy over four workers, counting the rings it builds
    for q in QUEUES:
        table.register(q.removeprefix("rfqueue."), q)
    snapshot = Snapshot(table, refresh_interval=60)
    snapshot.ensure_started()
    p = policy()
    built: list[tuple[str, ...]] = []
    real = HashRing.__init__

    def counting(ring: HashRing, queues: Any, vnodes: int = 160) -> None:
        built.append(tuple(queues))
        real(ring, queues, vnodes)

    monkeypatch.setattr(HashRing, "__init__", counting)
    try:
        p.start(snapshot, RoutedCounts())
        assert built == [QUEUES]
        # When tasks are routed, and a worker pauses: no ring is built per task
        owners(p)
        table.pause("w1@h", 600, Reason.MANUAL)
        snapshot.refresh()
        owners(p, snapshot.up_queues)
        assert built == [QUEUES]
        # When a fifth worker registers, the snapshot's thread builds the new ring
        table.register("w4@h", "rfqueue.w4@h")
        assert poll(lambda: len(built) == 2)
        assert built == [QUEUES, (*QUEUES, "rfqueue.w4@h")]
        snapshot.refresh()
        owners(p, snapshot.up_queues)
        assert len(built) == 2
    finally:
        stop(snapshot)
