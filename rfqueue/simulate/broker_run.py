"""What a broker-model run leaves: when each task started and ended, where, and how it got there."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rfqueue.simulate.workload import FloatArray, IntArray, Pauses


@dataclass(frozen=True)
class BrokerRun:
    """What happened to every task under one design."""

    policy: str
    arrival: FloatArray
    start: FloatArray
    finish: FloatArray
    worker: IntArray
    routed_at: FloatArray
    #: 1 where the task's last routing sent it to the shared queue
    shared: npt.NDArray[np.bool_]
    pauses: Pauses
    #: tasks the rescue moved; pub/sub messages the feeds cost (each delivery counted)
    moved: int
    messages: int
    #: the longest any dedicated queue and the shared queue got
    max_dedicated: int
    max_shared: int
    seconds: float

    @property
    def latency(self) -> FloatArray:
        return self.finish - self.arrival

    @property
    def wait(self) -> FloatArray:
        return self.start - self.arrival


def routed_at(arrival: FloatArray, moved: dict[int, float]) -> FloatArray:
    """When each task was last routed: its arrival, or when the rescue moved it."""
    routed = arrival.copy()
    if moved:
        tasks = np.fromiter(moved, dtype=np.int64, count=len(moved))
        routed[tasks] = np.fromiter(moved.values(), dtype=np.float64, count=len(moved))
    return routed
