"""The report's two-minute summary: every sentence computed from results.json."""

from __future__ import annotations

import dataclasses
import html
import re

from pathsynth.records.schema import (
    Comparison,
    Memorisation,
    Neighbours,
    SynthesisQuality,
    read_results,
)
from pathsynth.report import write_report
from pathsynth.report.summary import generator_verdict, summarise
from report.test_report import condition_result, example_results


def _quality(coverage: float | None, recall: float | None = None) -> SynthesisQuality:
    return SynthesisQuality("backbone", 0.1, 0.01, 20, 40.0, 0.9, recall, 0.8, coverage)


def _memorisation(flagged: int) -> Memorisation:
    near = Neighbours(1.0, 0.5, 2.0, 0.0)
    return Memorisation(0.25, flagged, 40, near, None)


def test_a_collapsed_generator_is_called_so_and_its_conditions_are_not_evidence():
    verdict = generator_verdict("gan", _quality(0.02), _memorisation(0))
    assert not verdict.usable
    assert "collapsed" in verdict.sentence and "cover 2.0% of the real" in verdict.sentence
    assert "read no conclusion" in verdict.sentence


def test_coverage_decides_partial_and_usable_and_recall_stands_in_when_coverage_is_missing():
    partial = generator_verdict("diffusion", _quality(0.3), _memorisation(0))
    assert partial.usable and "partial" in partial.sentence and "30.0%" in partial.sentence
    usable = generator_verdict("gan", _quality(None, recall=0.75), _memorisation(0))
    assert usable.usable and "usable" in usable.sentence and "75.0%" in usable.sentence
    unmeasured = generator_verdict("gan", None)
    assert not unmeasured.usable and "not measured" in unmeasured.sentence


def test_near_copies_make_a_generator_unusable_and_are_counted():
    verdict = generator_verdict("gan", _quality(0.8), _memorisation(3))
    assert not verdict.usable and "3 of 40 are near-copies" in verdict.sentence


def test_the_answer_says_no_change_beyond_noise_when_the_interval_spans_zero(tmp_path):
    results = read_results(example_results(tmp_path))
    noisy = Comparison("honest", "original", "synthetic", "balanced_accuracy", 0.02,
                       [-0.05, 0.09], None, None, 2)  # fmt: skip
    summary = summarise(dataclasses.replace(results, comparisons=[noisy]))
    text = " ".join(summary.answer)
    assert "Real images only: 81.2% balanced accuracy" in text
    assert "No condition differs from real images only beyond noise" in text
    assert "synthetic, is +2.0 pp [-5.0 pp, +9.0 pp] (paired, n = 2)" in text
    better = dataclasses.replace(noisy, difference_interval=[0.01, 0.03])
    text = " ".join(summarise(dataclasses.replace(results, comparisons=[better])).answer)
    assert "synthetic is better than real images only by +2.0 pp [+1.0 pp, +3.0 pp]" in text


def test_the_paper_protocol_is_named_as_inflated_and_next_steps_follow_the_run(tmp_path):
    results = read_results(example_results(tmp_path))
    paper = dataclasses.replace(condition_result("original", [0.95, 0.97], None), protocol="paper")
    summary = summarise(
        dataclasses.replace(results, conditions={**results.conditions, "paper/original": paper})
    )
    assert any("reference study's protocol" in line and "95.0%" in line for line in summary.answer)
    assert "affine" not in summary.question and "synthetic images" in summary.question
    steps = " ".join(summary.next_steps)
    assert "--folds 5" in steps and "--seeds 5" in steps  # one split, 2 seeds
    assert "image-level" not in steps  # no audit in this run
    assert summary.audit == "This run has no split audit."


def test_an_image_level_split_flagged_by_the_audit_asks_for_patient_keys(tmp_path):
    results = read_results(example_results(tmp_path))
    audit = {"split": "s", "verdict": "likely optimistic by about 0.37", "image_level": True,
             "likely_optimistic": True}  # fmt: skip
    data = dataclasses.replace(results.data, audits=[audit])
    summary = summarise(dataclasses.replace(results, data=data))
    assert summary.audit_warns and summary.audit == "likely optimistic by about 0.37"
    assert "patient keys" in summary.next_steps[0]


def test_the_report_opens_with_the_summary(tmp_path):
    page = write_report(example_results(tmp_path), tmp_path / "out").read_text()
    first = page.index('<section id="summary"')
    assert first < page.index("<h2>Accuracy on the test images</h2>")
    section = html.unescape(re.sub(r"<[^>]+>", "", page[first : page.index("</section>")]))
    for heading in ("The question.", "The answer.", "The generated images.", "The split.",
                    "What to do next."):  # fmt: skip
        assert heading in section
    assert "The gan generator is usable: its images cover 50.0%" in section


def test_the_gan_curves_are_two_panels_a_row_and_readable_at_page_width():
    """Five panels side by side (21 in wide) shrank to about 2 inches each on the page."""
    from pathsynth.report.figures import gan_curves

    records = [
        {"step": s, "loss_d": 1.0 / (s + 1), "loss_g": 2.0, "ada_p": s / 100, "quality_kid": 0.1,
         "r1": 0.5, "images_per_s": 40.0}
        for s in range(0, 100, 10)
    ]  # fmt: skip
    figure = gan_curves(records)
    assert figure is not None
    width, height = figure.get_size_inches()
    shown = [ax for ax in figure.axes if ax.axison]
    assert len(shown) == 5 and width <= 9.5 and height >= 9.0  # three rows of two
    page = 1150 / 100  # the report's column, in inches at 100 dpi
    assert all(ax.get_position().width * min(width, page) >= 3.5 for ax in shown)
