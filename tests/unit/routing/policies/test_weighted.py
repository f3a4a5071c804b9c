"""``weighted``: shares follow static per-worker weights; bad weights fail at setup."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rfqueue.routing.policies.weighted import (
    MAX_WEIGHT,
    WeightedPolicy,
    parse_weights,
    weighted_cycle,
)
from rfqueue.settings import Settings, SettingsError

QA, QB, QC = "rfqueue.a@h", "rfqueue.b@h", "rfqueue.c@h"
QUEUES = (QA, QB, QC)


def weighted(spec: str) -> WeightedPolicy:
    return WeightedPolicy(
        Settings.load({}, {"RFQUEUE_POLICY": "weighted", "RFQUEUE_WEIGHTS": spec})
    )


def picks(policy: WeightedPolicy, n: int, queues: tuple[str, ...] = QUEUES) -> Counter[str]:
    return Counter(policy.choose(queues, "t", (), {}, {}) for _ in range(n))


def test_shares_follow_the_weights_exactly() -> None:
    # Given weights 3, 1 and an unlisted worker (weight 1)
    policy = weighted("a@h=3,b@h=1")
    # When five full cycles are routed
    counts = picks(policy, 25)
    # Then every cycle gives exact shares
    assert counts == {QA: 15, QB: 5, QC: 5}


def test_turns_are_spread_within_a_cycle() -> None:
    # Smooth: a weight-3 worker never takes its three turns back to back
    policy = weighted("a@h=3")
    sequence = [policy.choose(QUEUES, "t", (), {}, {}) for _ in range(5)]
    assert max(len(list(g)) for _, g in itertools.groupby(sequence)) < 3
    assert Counter(sequence) == {QA: 3, QB: 1, QC: 1}


def test_weight_zero_gets_nothing_while_others_are_up() -> None:
    policy = weighted("a@h=0,b@h=2")
    assert picks(policy, 30) == {QB: 20, QC: 10}
    # ... and plain turns when only zero-weight workers are up
    assert picks(policy, 4, (QA,)) == {QA: 4}


def test_paused_worker_share_goes_to_the_others_in_proportion() -> None:
    policy = weighted("a@h=2,b@h=1,c@h=1")
    assert picks(policy, 30, (QA, QB)) == {QA: 20, QB: 10}


def test_settings_accept_a_list_of_pairs() -> None:
    settings = Settings(policy="weighted", weights=("a@h=2", "b@h = 1"))
    assert parse_weights(settings.weights) == {"a@h": 2, "b@h": 1}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("a@h=-1", "rfqueue_weights: weight of a@h must be from 0 to 100, got -1"),
        ("a@h=0,b@h=0", "rfqueue_weights: the weights must not all be zero"),
        ("a@h", "rfqueue_weights: expected nodename=weight, got 'a@h'"),
        ("=3", "rfqueue_weights: expected nodename=weight, got '=3'"),
        ("a@h=1.5", "rfqueue_weights: weight of a@h must be a whole number, got '1.5'"),
        ("a@h=many", "rfqueue_weights: weight of a@h must be a whole number, got 'many'"),
        (f"a@h={MAX_WEIGHT + 1}", "must be from 0 to 100"),
    ],
)
def test_bad_weights_fail_when_settings_are_built(spec: str, message: str) -> None:
    # Whatever the policy: a bad weight is bad input, caught before any task
    for policy in ("weighted", "round_robin"):
        with pytest.raises(SettingsError) as info:
            Settings.load({}, {"RFQUEUE_POLICY": policy, "RFQUEUE_WEIGHTS": spec})
        assert message in str(info.value)
        assert str(info.value).startswith("rfqueue_weights: ")


@given(st.lists(st.integers(0, 20), min_size=1, max_size=6))
def test_cycle_holds_each_queue_weight_times(weights: list[int]) -> None:
    queues = tuple(f"q{i}" for i in range(len(weights)))
    cycle = weighted_cycle(queues, weights)
    if any(weights):
        assert Counter(cycle) == {q: w for q, w in zip(queues, weights, strict=True) if w}
    else:
        assert cycle == queues
