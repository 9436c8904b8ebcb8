"""What the terminal says while the classifier stage runs: which fit, and how long the rest takes."""

from __future__ import annotations


def test_each_fit_says_where_it_stands_and_the_time_the_rest_should_take() -> None:
    from pathsynth.experiment.classification import fit_position

    assert fit_position(0, 12, 0.0) == "fit 1 of 12"  # no pace measured yet
    assert fit_position(3, 12, 90.0) == "fit 4 of 12, about 4.5 min left"  # 30 s a fit, 9 left
    assert fit_position(11, 12, 110.0) == "fit 12 of 12, about 10.0 s left"
