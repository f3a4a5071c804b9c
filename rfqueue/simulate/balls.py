"""Balls into bins: n balls, n bins, no service; how full does the fullest bin get?

The classic results behind ``random`` and ``p2c``: one random choice per ball gives
a fullest bin of about ln n / ln ln n balls; the better of two random choices gives
ln ln n / ln 2 + O(1) (Azar, Broder, Karlin and Upfal, 1994). Two choices are
inherently sequential (each ball looks at the bins as the earlier balls left them),
so that loop is plain Python over choices drawn in bulk: about 0.3 s per million.
"""

from __future__ import annotations

import math

import numpy as np

#: policy -> random choices per ball
CHOICES = {"random": 1, "p2c": 2}


def balls_into_bins(n: int, policy: str, seed: int) -> int:
    """The fullest bin's count after ``n`` balls go into ``n`` bins by ``policy``."""
    if policy not in CHOICES:
        raise ValueError(f"policy: balls_into_bins knows {', '.join(CHOICES)}, not {policy!r}")
    if n < 1:
        raise ValueError(f"n: must be at least 1, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, n]))
    if CHOICES[policy] == 1:
        return int(np.bincount(rng.integers(0, n, size=n), minlength=n).max())
    return _two_choices(rng.integers(0, n, size=(2, n)), n)


def _two_choices(draws: np.ndarray, n: int) -> int:
    load = [0] * n
    for first, second in zip(draws[0].tolist(), draws[1].tolist(), strict=True):
        if load[second] < load[first]:
            first = second
        load[first] += 1
    return max(load)


def one_choice_theory(n: int) -> float:
    """ln n / ln ln n: the order of the fullest bin under one random choice (n >= 3)."""
    return math.log(n) / math.log(math.log(n))


def two_choices_theory(n: int) -> float:
    """ln ln n / ln 2: the fullest bin under two choices, up to an additive constant."""
    return math.log(math.log(n)) / math.log(2)
