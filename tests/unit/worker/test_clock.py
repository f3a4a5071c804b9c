"""The clock check: a host too far from the table's Redis clock is told so, once per check."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from rfqueue.worker.clock import SkewCheck, skew


class RedisAt:
    """A client whose server clock is ``offset`` seconds from this host's."""

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self.calls = 0

    def time(self) -> tuple[int, int]:
        import time

        self.calls += 1
        now = time.time() + self.offset
        return int(now), int((now % 1) * 1e6)


def test_skew_is_this_host_minus_the_server() -> None:
    assert skew(RedisAt(-10.0)) == pytest.approx(10.0, abs=0.05)
    assert skew(RedisAt(+2.5)) == pytest.approx(-2.5, abs=0.05)


def test_a_skew_past_a_quarter_of_the_timeout_warns(caplog: Any) -> None:
    # Given a heartbeat timeout of 8 s (a limit of 2 s) and a host 3 s ahead of Redis
    check = SkewCheck(heartbeat_timeout=8.0)
    with caplog.at_level(logging.WARNING, logger="rfqueue.worker.clock"):
        check.maybe_check(RedisAt(-3.0))
    # Then one warning says by how much and what to do
    [record] = caplog.records
    assert "3.0" in record.getMessage() and "ahead of" in record.getMessage()
    assert "NTP" in record.getMessage()


def test_a_small_skew_is_quiet_and_checks_are_spaced(caplog: Any) -> None:
    check = SkewCheck(heartbeat_timeout=8.0, every=300)
    client = RedisAt(-0.5)
    with caplog.at_level(logging.WARNING, logger="rfqueue.worker.clock"):
        for _ in range(100):  # a heartbeat loop
            check.maybe_check(client)
    assert caplog.records == []
    assert client.calls == 1  # once per 300 s, not once per beat
    assert check.last == pytest.approx(0.5, abs=0.05)


def test_an_unreachable_redis_skips_the_check() -> None:
    class Down:
        def time(self) -> None:
            raise ConnectionError("down")

    check = SkewCheck(heartbeat_timeout=8.0)
    check.maybe_check(Down())
    assert check.last is None
