"""When the proxy cannot rank children (search.proxy_ranking): at chance, or indistinguishable within noise."""

import math

import pytest

from search.proxy_ranking import advice, cannot_rank, noise_tolerance


def test_the_tolerance_is_two_binomial_standard_errors():
    assert noise_tolerance(0.1, 500) == 2 * math.sqrt(0.1 * 0.9 / 500) == pytest.approx(0.026833, abs=1e-6)
    assert noise_tolerance(0.5, 100) == pytest.approx(0.1)
    assert noise_tolerance(1.0, 10) == 0.0


def test_eight_children_all_at_ten_percent_cannot_be_ranked():
    """The issue's demo: --proxy-epochs 1 --proxy-train-size 800 gave all 8 children exactly 10.00% top-1."""
    assert cannot_rank([0.1] * 8, 10, 500) == ("all 8 networks scored within 2.68 points of chance (10.00% top-1 "
                                               "for 10 classes) on 500 mini-val examples")


@pytest.mark.parametrize("accuracies, classes, val_examples, reason", [
    # at chance: the best is at most chance + 2 standard errors at chance (2.68 points here)
    ([0.1268, 0.09, 0.05], 10, 500, "all 3 networks scored within 2.68 points of chance (10.00% top-1 for 10 "
                                    "classes) on 500 mini-val examples"),
    ([0.1270], 10, 500, None),  # one network above chance: nothing to rank it against
    ([0.52], 2, 100, "the one network scored within 10.00 points of chance (50.00% top-1 for 2 classes) on 100 "
                     "mini-val examples"),
    # indistinguishable: max - min within 2 standard errors at the mean (4.41 points at 41.55%)
    ([0.41, 0.422, 0.415], 10, 500, "the top-1 of all 3 networks lies within 1.20 points (41.00% to 42.20%), "
                                    "inside the noise of 500 mini-val examples (4.41 points)"),
    ([0.41, 0.46], 10, 500, None),  # 5 points apart: ranked
    ([0.41, 0.46], 10, 100, "the top-1 of all 2 networks lies within 5.00 points (41.00% to 46.00%), inside the "
                            "noise of 100 mini-val examples (9.92 points)"),  # ... but not on 100 examples
    ([], 10, 500, None),
])
def test_cannot_rank_at_chance_or_within_noise(accuracies, classes, val_examples, reason):
    assert cannot_rank(accuracies, classes, val_examples) == reason


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"^classes must be an int >= 2, got 1$"):
        cannot_rank([0.1], 1, 100)
    with pytest.raises(ValueError, match=r"^val_examples must be an int >= 1, got 0$"):
        cannot_rank([0.1], 10, 0)
    with pytest.raises(ValueError, match=r"^accuracy must be in \[0, 1\], got 1.5$"):
        noise_tolerance(1.5, 10)


def test_the_advice_names_the_settings_to_change_and_their_values():
    assert advice(1, 800, 4000) == (
        "the reward then ranks children by their cost alone. Give each child more to learn from: raise "
        "--proxy-epochs (now 1) or --proxy-train-size (now 800), or give more mini-val examples (--val-size) so "
        "that scores can differ beyond their noise; check that the data's labels are right")
    assert "--proxy-train-size (now all 4000)" in advice(3, None, 4000)
    assert advice(1, 800, 4000, weighs_cost=False).startswith(
        "the reward then differs between children by noise alone. Give each child more to learn from: ")
