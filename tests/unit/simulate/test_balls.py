"""Balls into bins: one random choice against two, checked against the theory.

n balls into n bins: the fullest bin holds about ln n / ln ln n balls with one random
choice, and ln ln n / ln 2 + O(1) with the better of two. The first grows without
bound; the second barely moves from a thousand bins to a million.
"""

from __future__ import annotations

import pytest

from rfqueue.simulate.balls import balls_into_bins, one_choice_theory, two_choices_theory

SIZES = (10**3, 10**4, 10**5, 10**6)
SEED = 1


@pytest.fixture(scope="module")
def fullest() -> dict[str, dict[int, int]]:
    """The fullest bin for each policy and size, with a fixed seed (about 1 s in all)."""
    return {
        policy: {n: balls_into_bins(n, policy, SEED) for n in SIZES} for policy in ("random", "p2c")
    }


def test_two_choices_stay_within_a_small_constant_of_ln_ln_n_over_ln_2(
    fullest: dict[str, dict[int, int]],
) -> None:
    for n in SIZES:
        # Then at every size the fullest bin is within one ball of ln ln n / ln 2
        assert abs(fullest["p2c"][n] - two_choices_theory(n)) <= 1.0, n
    # and a thousandfold more bins add at most one ball
    assert fullest["p2c"][10**6] - fullest["p2c"][10**3] <= 1


def test_one_random_choice_grows_like_ln_n_over_ln_ln_n(fullest: dict[str, dict[int, int]]) -> None:
    for n in SIZES:
        # Then the fullest bin is the theory's order: between 1.2 and 2.5 times ln n / ln ln n
        ratio = fullest["random"][n] / one_choice_theory(n)
        assert 1.2 <= ratio <= 2.5, (n, ratio)
    # and it keeps growing: at least three balls more from a thousand bins to a million
    assert fullest["random"][10**6] - fullest["random"][10**3] >= 3


def test_the_gap_between_one_choice_and_two_widens_with_n(
    fullest: dict[str, dict[int, int]],
) -> None:
    gaps = [fullest["random"][n] - fullest["p2c"][n] for n in SIZES]
    assert gaps[0] >= 1 and gaps[-1] >= gaps[0] + 2, gaps


def test_a_ball_per_bin_at_n_equal_one_and_bad_input_is_named() -> None:
    assert balls_into_bins(1, "random", 0) == balls_into_bins(1, "p2c", 0) == 1
    with pytest.raises(ValueError, match=r"^policy: "):
        balls_into_bins(10, "hash", 0)
    with pytest.raises(ValueError, match=r"^n: "):
        balls_into_bins(0, "p2c", 0)
