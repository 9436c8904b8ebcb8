"""A Turing test's figures on answers small enough to count by hand."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import pytest

from pathsynth.turing.results import answers_csv, summary_csv, turing_results


@dataclass(frozen=True)
class A:
    rater: str
    item: str
    truth: str
    label: str
    called: str
    called_label: str | None = None
    confidence: int | None = None
    answered_at: str = "t"


ANSWERS = [
    # ann: 3 of 4 right; the 2 synthetic both caught, 1 of 2 real called real
    A("ann", "i1", "synthetic", "x", "synthetic", "x"), A("ann", "i2", "synthetic", "y", "synthetic", "x"),
    A("ann", "i3", "real", "x", "real"), A("ann", "i4", "real", "y", "synthetic"),
    # bob: agrees with ann on i2 and i3
    A("bob", "i1", "synthetic", "x", "real"), A("bob", "i2", "synthetic", "y", "synthetic", "y"),
    A("bob", "i3", "real", "x", "real"), A("bob", "i4", "real", "y", "real"),
]  # fmt: skip


def test_figures_per_rater_and_class_are_the_hand_counted_ones():
    results = turing_results(["ann", "bob"], ANSWERS, items=4, class_names=["x", "y"])
    ann, bob = results.per_rater["ann"], results.per_rater["bob"]
    assert (ann.accuracy.successes, ann.accuracy.total) == (3, 4)
    assert (ann.sensitivity.successes, ann.sensitivity.total) == (2, 2)
    assert (ann.specificity.successes, ann.specificity.total) == (1, 2)
    assert (bob.sensitivity.successes, bob.specificity.successes) == (1, 2)
    x = results.per_class["x"]
    assert (x.accuracy.successes, x.accuracy.total) == (3, 4)
    synthetic_x = results.class_agreement_synthetic["x"]
    assert (synthetic_x.successes, synthetic_x.total) == (1, 1)  # ann named i1 x; bob named none
    synthetic_y = results.class_agreement_synthetic["y"]
    assert (synthetic_y.successes, synthetic_y.total) == (1, 2)  # ann said x for a y, bob y
    # kappa by hand: items (real, synthetic) counts: i1 (1,1), i2 (0,2), i3 (2,0), i4 (1,1)
    p_items = [0, 1, 1, 0]
    shares = (4 / 8, 4 / 8)
    expected = sum(s * s for s in shares)
    assert results.kappa == pytest.approx((sum(p_items) / 4 - expected) / (1 - expected))
    assert results.kappa_items == 4


def test_kappa_needs_two_raters_and_csv_cells_cannot_be_formulas():
    one = turing_results(["ann"], ANSWERS[:4], items=4, class_names=["x", "y"])
    assert math.isnan(one.kappa) and one.kappa_items == 0
    rows = list(
        csv.reader(io.StringIO(answers_csv([A("=HYPERLINK(1)", "i", "real", "-x", "real")])))
    )
    assert rows[1][0] == "'=HYPERLINK(1)" and rows[1][3] == "'-x"
    summary = summary_csv(one).splitlines()
    assert summary[1].startswith("overall,,,4,0.750000")
    assert summary[-1] == "fleiss_kappa,,,0,"


def test_kappa_counts_only_the_items_every_answering_rater_answered():
    # cy answered i1 and i2 only: kappa is on those two, where ann, bob and cy said
    # i1 (synthetic, real, real) and i2 (synthetic, synthetic, synthetic)
    answers = [*ANSWERS, A("cy", "i1", "synthetic", "x", "real"),
               A("cy", "i2", "synthetic", "y", "synthetic")]  # fmt: skip
    results = turing_results(["ann", "bob", "cy"], answers, items=4, class_names=["x", "y"])
    assert results.kappa_items == 2
    # by hand: agreeing pairs per item 1 of 3 and 3 of 3; shares real 2/6, synthetic 4/6
    observed = (1 / 3 + 3 / 3) / 2
    chance = (2 / 6) ** 2 + (4 / 6) ** 2
    assert results.kappa == pytest.approx((observed - chance) / (1 - chance))
