"""Policies: the built-in ones, custom ones by dotted path, and the errors for bad names."""

from __future__ import annotations

import itertools
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rfqueue.routing.policies import BUILTIN, Policy, check_policy_name, create_policy, policy_class
from rfqueue.routing.policies.random_choice import RandomPolicy
from rfqueue.routing.policies.round_robin import RoundRobinPolicy
from rfqueue.settings import Settings, SettingsError

QUEUES = ("rfqueue.a@h", "rfqueue.b@h", "rfqueue.c@h")


def pick(policy: Policy, queues: tuple[str, ...] = QUEUES) -> str:
    return policy.choose(queues, "tasks.add", (1, 2), {}, {})


class TestLookup:
    def test_builtin_names(self) -> None:
        assert policy_class("random") is RandomPolicy
        assert policy_class("round_robin") is RoundRobinPolicy
        assert sorted(BUILTIN) == [
            "hash",
            "least_loaded",
            "p2c",
            "pull",
            "random",
            "round_robin",
            "weighted",
        ]
        assert {policy_class(name).name for name in BUILTIN} == set(BUILTIN)

    def test_create_policy_from_settings(self) -> None:
        policy = create_policy(Settings(policy="random", seed=1))
        assert isinstance(policy, RandomPolicy)
        assert policy.settings.seed == 1

    @pytest.mark.parametrize("sep", [":", "."])
    def test_custom_policy_by_dotted_path(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sep: str
    ) -> None:
        # Given a module of our own with a Policy subclass
        (tmp_path / "my_rfq_policies.py").write_text(
            "from rfqueue.routing.policies import Policy\n"
            "class LastQueue(Policy):\n"
            "    def choose(self, queues, task_name, args, kwargs, options):\n"
            "        return queues[-1]\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "my_rfq_policies", raising=False)
        path = f"my_rfq_policies{sep}LastQueue"
        # When settings name it
        settings = Settings(policy=path)
        policy = create_policy(settings)
        # Then it is used
        assert type(policy).__name__ == "LastQueue"
        assert pick(policy) == QUEUES[-1]

    @pytest.mark.parametrize(
        ("name", "message"),
        [
            (
                "bogus",
                "unknown policy 'bogus'; choose one of "
                "hash, least_loaded, p2c, pull, random, round_robin, weighted",
            ),
            ("", "unknown policy"),
            ("no_such_module_xyz:Policy", "cannot import policy"),
            ("rfqueue.routing.policies:NoSuchPolicy", "cannot import policy"),
            ("collections:OrderedDict", "is not a rfqueue.routing.policies.Policy subclass"),
            ("os.path:join", "is not a rfqueue.routing.policies.Policy subclass"),
            ("rfqueue.routing.policies", "is not a rfqueue.routing.policies.Policy subclass"),
        ],
    )
    def test_bad_names(self, name: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            policy_class(name)
        with pytest.raises(SettingsError, match=r"^rfqueue_policy: "):
            check_policy_name(name)

    def test_base_policy_must_be_subclassed(self) -> None:
        with pytest.raises(NotImplementedError):
            pick(Policy(Settings()))


class TestRandom:
    def test_uniform(self) -> None:
        # Given 9,000 draws over three queues
        policy = RandomPolicy(Settings(policy="random", seed=12345))
        counts = Counter(pick(policy) for _ in range(9000))
        # Then each queue gets about a third (3,000 +- 5 sigma, sigma ~ 45)
        assert set(counts) == set(QUEUES)
        assert all(2775 <= n <= 3225 for n in counts.values()), counts

    def test_same_seed_same_choices(self) -> None:
        a = RandomPolicy(Settings(policy="random", seed=7))
        b = RandomPolicy(Settings(policy="random", seed=7))
        c = RandomPolicy(Settings(policy="random", seed=8))
        first = [pick(a) for _ in range(200)]
        assert first == [pick(b) for _ in range(200)]
        assert first != [pick(c) for _ in range(200)]

    def test_only_given_queues(self) -> None:
        policy = RandomPolicy(Settings(policy="random"))
        assert {pick(policy, ("only",)) for _ in range(20)} == {"only"}


class TestRoundRobin:
    def test_perfect_rotation(self) -> None:
        policy = RoundRobinPolicy(Settings())
        assert [pick(policy) for _ in range(7)] == [*QUEUES, *QUEUES, QUEUES[0]]

    def test_balance_over_ten_thousand_routes(self) -> None:
        policy = RoundRobinPolicy(Settings())
        counts = Counter(pick(policy) for _ in range(10_000))
        mean = 10_000 / len(QUEUES)
        assert max(counts.values()) / mean <= 1.02
        assert set(counts) == set(QUEUES)

    def test_never_twice_in_a_row_while_two_are_up(self) -> None:
        policy = RoundRobinPolicy(Settings())
        picks = [pick(policy, QUEUES[:2]) for _ in range(101)]
        assert all(a != b for a, b in itertools.pairwise(picks))

    def test_threads_share_the_turns(self) -> None:
        # Given four threads routing 2,500 tasks each over four queues
        policy = RoundRobinPolicy(Settings())
        queues = ("q0", "q1", "q2", "q3")
        counts: Counter[str] = Counter()
        lock = threading.Lock()

        def route() -> None:
            local = Counter(pick(policy, queues) for _ in range(2500))
            with lock:
                counts.update(local)

        threads = [threading.Thread(target=route) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Then no turn was lost or doubled
        assert counts == Counter({q: 2500 for q in queues})


@given(
    st.lists(
        st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=7, unique=True),
        min_size=1,
        max_size=30,
    ),
    st.integers(1, 20),
)
def test_round_robin_changing_queues(up_sets: list[list[str]], per_set: int) -> None:
    """Whatever the up set does between routes, each choice is one of the queues given."""
    policy = RoundRobinPolicy(Settings())
    for up in up_sets:
        queues = tuple(sorted(up))
        picks = [pick(policy, queues) for _ in range(per_set)]
        assert set(picks) <= set(queues)
        # Within one up set the turns rotate: any len(queues) picks in a row are all different
        for i in range(len(picks) - len(queues) + 1):
            window = picks[i : i + len(queues)]
            assert len(set(window)) == len(window)
