"""Queue depth: kombu's priority lists count, and the sampler reads them off the hot path."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis

from rfqueue.brokers.redis_layout import PRIORITY_SEP, queue_depths, queue_lists, redis_depth_reader
from rfqueue.routing.depth import SPACING, DepthSampler

A, B = "rfqueue.a@h", "rfqueue.b@h"


class CountingClient:
    """A fakeredis client that counts pipelines, to prove how many round trips happen."""

    def __init__(self, client: fakeredis.FakeRedis) -> None:
        self.client = client
        self.pipelines = 0
        self.fail = False

    def pipeline(self, transaction: bool = True) -> Any:
        if self.fail:
            raise redis.ConnectionError("redis is away")
        self.pipelines += 1
        return self.client.pipeline(transaction=transaction)


@pytest.fixture
def counting(client: fakeredis.FakeRedis) -> CountingClient:
    return CountingClient(client)


@pytest.fixture
def samplers() -> Iterator[list[DepthSampler]]:
    made: list[DepthSampler] = []
    yield made
    for sampler in made:
        sampler.stop()


@pytest.fixture
def make_sampler(
    counting: CountingClient, samplers: list[DepthSampler]
) -> Callable[..., DepthSampler]:
    def make(queues: tuple[str, ...] = (A, B), interval: float = 60.0) -> DepthSampler:
        sampler = DepthSampler(redis_depth_reader(counting), lambda: queues, interval)
        samplers.append(sampler)
        return sampler

    return make


def test_queue_lists_follow_kombu() -> None:
    assert queue_lists(A) == [
        A,
        f"{A}{PRIORITY_SEP}3",
        f"{A}{PRIORITY_SEP}6",
        f"{A}{PRIORITY_SEP}9",
    ]


def test_depth_sums_priority_lists_in_one_round_trip(
    client: fakeredis.FakeRedis, counting: CountingClient
) -> None:
    # Given A with 2 plain and 3 priority-6 messages, B empty
    client.lpush(A, "m1", "m2")
    client.lpush(f"{A}{PRIORITY_SEP}6", "p1", "p2", "p3")
    # When depths are read
    depths = queue_depths(counting, [A, B])
    # Then every list counts, in one pipeline
    assert depths == {A: 5, B: 0}
    assert counting.pipelines == 1


class TestSampler:
    def test_first_read_happens_on_start(
        self, client: fakeredis.FakeRedis, make_sampler: Callable[..., DepthSampler]
    ) -> None:
        client.lpush(A, "m")
        sampler = make_sampler()
        assert sampler.depths == {} and sampler.generation == 0
        sampler.ensure_started()
        assert sampler.depths == {A: 1, B: 0}
        assert sampler.generation == 1

    def test_reading_depths_never_calls_redis(
        self, counting: CountingClient, make_sampler: Callable[..., DepthSampler]
    ) -> None:
        # Given a started sampler with a long interval
        sampler = make_sampler(interval=60.0)
        sampler.ensure_started()
        before = counting.pipelines
        # When depths are read many times
        for _ in range(10_000):
            assert sampler.depths[A] == 0
        # Then no round trip happened
        assert counting.pipelines == before

    def test_thread_refreshes_every_interval(
        self,
        client: fakeredis.FakeRedis,
        make_sampler: Callable[..., DepthSampler],
        poll: Callable[..., bool],
    ) -> None:
        sampler = make_sampler(interval=0.02)
        sampler.ensure_started()
        client.lpush(B, "m1", "m2")
        assert poll(lambda: sampler.depths.get(B) == 2)
        assert sampler.generation >= 2

    def test_a_slow_read_spaces_out_the_next(
        self, samplers: list[DepthSampler], poll: Callable[..., bool]
    ) -> None:
        # Given a sampler every 10 ms whose reads take 50 ms (a fleet of thousands)
        def slow_read(queues: Any) -> dict[str, int]:
            time.sleep(0.05)
            return dict.fromkeys(queues, 0)

        sampler = DepthSampler(slow_read, lambda: (A,), 0.01)
        samplers.append(sampler)
        # When its thread has read twice (the pause is set after each read's generation)
        sampler.ensure_started()
        assert poll(lambda: sampler.generation >= 3)
        # Then it waits at least four reads' time before the next, not 10 ms
        assert sampler.pause >= SPACING * 0.05

    def test_a_fast_read_keeps_the_interval(
        self, make_sampler: Callable[..., DepthSampler], poll: Callable[..., bool]
    ) -> None:
        # Given a sampler every 100 ms whose reads take a millisecond or so
        sampler = make_sampler(interval=0.1)
        # When its thread has read twice
        sampler.ensure_started()
        assert poll(lambda: sampler.generation >= 3)
        # Then the next read is still one interval away
        assert sampler.pause == 0.1

    def test_follows_the_queue_list(
        self, counting: CountingClient, samplers: list[DepthSampler]
    ) -> None:
        queues: list[str] = [A]
        sampler = DepthSampler(redis_depth_reader(counting), lambda: queues, 60.0)
        samplers.append(sampler)
        sampler.ensure_started()
        queues.append(B)
        assert sampler.sample()
        assert set(sampler.depths) == {A, B}

    def test_redis_error_keeps_the_last_depths(
        self,
        client: fakeredis.FakeRedis,
        counting: CountingClient,
        make_sampler: Callable[..., DepthSampler],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        # Given a sampler that has read A at 1
        client.lpush(A, "m")
        sampler = make_sampler()
        sampler.ensure_started()
        # When Redis goes away
        counting.fail = True
        with caplog.at_level(logging.WARNING, logger="rfqueue.depth"):
            ok = sampler.sample()
        # Then the old depths stay, with a warning
        assert not ok
        assert sampler.depths[A] == 1 and sampler.generation == 1
        assert "cannot read queue depths" in caplog.text

    def test_no_queues_no_round_trip(
        self, counting: CountingClient, make_sampler: Callable[..., DepthSampler]
    ) -> None:
        sampler = make_sampler(queues=())
        assert sampler.sample()
        assert sampler.depths == {} and counting.pipelines == 0

    def test_start_is_idempotent_and_stop_ends_the_thread(
        self, make_sampler: Callable[..., DepthSampler]
    ) -> None:
        sampler = make_sampler(interval=0.01)
        sampler.ensure_started()
        thread = sampler._thread
        sampler.ensure_started()
        assert sampler._thread is thread
        sampler.stop()
        assert thread is not None and not thread.is_alive()
        assert not sampler.started

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
    def test_child_after_fork_starts_its_own_thread(
        self, make_sampler: Callable[..., DepthSampler]
    ) -> None:
        # Given a started sampler
        sampler = make_sampler(interval=0.01)
        sampler.ensure_started()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: no thread until ensure_started, then its own
            code = 1
            try:
                fresh = not sampler.started and sampler._thread is None
                sampler.ensure_started()
                alive = sampler._thread is not None and sampler._thread.is_alive()
                code = 0 if fresh and alive else 3
            finally:
                os.write(write, bytes([code]))
                os._exit(0)
        os.close(write)
        result = os.read(read, 1)
        os.close(read)
        os.waitpid(pid, 0)
        # Then the child saw a sampler without a thread and could start one
        assert result == bytes([0])
        assert sampler.started  # the parent's is untouched
