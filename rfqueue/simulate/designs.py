"""Every design of the broker model by name, for the engine and the CLI."""

from __future__ import annotations

from rfqueue.simulate.candidates import (
    Candidate,
    JoinIdleQueue,
    LeastLoaded,
    PowerOfTwo,
    RandomChoice,
    RoundRobin,
    Shared,
    ShortestExpectedDelay,
    Spill,
)
from rfqueue.simulate.completions import LeastOutstanding, PeakEwma

CANDIDATES: dict[str, type[Candidate]] = {
    cls.name: cls
    for cls in (
        Shared,
        RoundRobin,
        RandomChoice,
        PowerOfTwo,
        LeastLoaded,
        JoinIdleQueue,
        ShortestExpectedDelay,
        LeastOutstanding,
        PeakEwma,
        Spill,
    )
}
