"""A Turing test's figures from its stored answers.

"Positive" is ``synthetic``: sensitivity is the share of synthetic images called synthetic,
specificity the share of real images called real, accuracy the share of all calls that were
right. Every proportion carries its 95% Wilson interval. Agreement between raters is Fleiss' kappa
on the real/synthetic calls of the items every rater answered. Class agreement is the share of
class answers naming the class the image was made (synthetic) or labelled (real) as.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from pathsynth.files import csv_cell
from pathsynth.metrics.agreement import Proportion, fleiss_kappa, wilson

TRUTHS = ("real", "synthetic")


class AnswerLike(Protocol):
    """What one answer must offer (:class:`pathsynth.turing.store.AnswerRecord` does)."""

    @property
    def rater(self) -> str: ...
    @property
    def item(self) -> str: ...
    @property
    def truth(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def called(self) -> str: ...
    @property
    def called_label(self) -> str | None: ...
    @property
    def confidence(self) -> int | None: ...
    @property
    def answered_at(self) -> str: ...


@dataclass(frozen=True)
class Calls:
    """How well a group of answers told synthetic from real."""

    answers: int
    accuracy: Proportion
    sensitivity: Proportion
    specificity: Proportion


@dataclass(frozen=True)
class TuringResults:
    """Every figure of a test.

    Attributes:
        raters: every rater's name, answered or not.
        items: the number of items in the test.
        overall: all answers pooled.
        per_rater: rater -> their calls.
        per_class: class -> calls pooled over raters.
        per_rater_class: (rater, class) -> calls.
        kappa: Fleiss' kappa on real/synthetic (NaN when not computable) and ``kappa_items``, the
            number of items every rater answered, it was computed on.
        class_agreement_synthetic: class -> share of class answers on synthetic images that named
            the class they were generated as; ``class_agreement_real`` the same on real images.
    """

    raters: list[str]
    items: int
    overall: Calls
    per_rater: dict[str, Calls]
    per_class: dict[str, Calls]
    per_rater_class: dict[tuple[str, str], Calls]
    kappa: float
    kappa_items: int
    class_agreement_synthetic: dict[str, Proportion]
    class_agreement_real: dict[str, Proportion]


def calls(answers: Iterable[AnswerLike]) -> Calls:
    """Accuracy, sensitivity and specificity of ``answers`` with Wilson intervals."""
    listed = list(answers)
    synthetic = [a for a in listed if a.truth == "synthetic"]
    real = [a for a in listed if a.truth == "real"]
    return Calls(
        answers=len(listed),
        accuracy=wilson(sum(a.called == a.truth for a in listed), len(listed)),
        sensitivity=wilson(sum(a.called == "synthetic" for a in synthetic), len(synthetic)),
        specificity=wilson(sum(a.called == "real" for a in real), len(real)),
    )


def turing_results(
    raters: list[str], answers: list[AnswerLike], items: int, class_names: list[str]
) -> TuringResults:
    """The figures of a test.

    Args:
        raters: every rater's name.
        answers: the stored answers, with their truths.
        items: the number of items in the test.
        class_names: the test's classes, in the order they are shown.
    """
    classes = list(class_names) + sorted({a.label for a in answers} - set(class_names))
    per_rater = {r: calls(a for a in answers if a.rater == r) for r in raters}
    per_class = {c: calls(a for a in answers if a.label == c) for c in classes}
    per_rater_class = {
        (r, c): calls(a for a in answers if a.rater == r and a.label == c)
        for r in raters
        for c in classes
    }
    kappa, kappa_items = _kappa(raters, answers)
    return TuringResults(
        raters=list(raters),
        items=items,
        overall=calls(answers),
        per_rater=per_rater,
        per_class=per_class,
        per_rater_class=per_rater_class,
        kappa=kappa,
        kappa_items=kappa_items,
        class_agreement_synthetic=_class_agreement(answers, classes, "synthetic"),
        class_agreement_real=_class_agreement(answers, classes, "real"),
    )


def _kappa(raters: list[str], answers: list[AnswerLike]) -> tuple[float, int]:
    """Fleiss' kappa over the items every (answering) rater answered."""
    answering = sorted({a.rater for a in answers})
    if len(answering) < 2:
        return math.nan, 0
    by_item: dict[str, list[str]] = {}
    for answer in answers:
        by_item.setdefault(answer.item, []).append(answer.called)
    rows = [
        [called.count(truth) for truth in TRUTHS]
        for called in by_item.values()
        if len(called) == len(answering)
    ]
    if not rows:
        return math.nan, 0
    return fleiss_kappa(rows), len(rows)


def _class_agreement(
    answers: list[AnswerLike], classes: list[str], truth: str
) -> dict[str, Proportion]:
    named = [a for a in answers if a.truth == truth and a.called_label is not None]
    return {
        c: wilson(
            sum(a.called_label == c for a in named if a.label == c),
            sum(1 for a in named if a.label == c),
        )
        for c in classes
    }


ANSWER_COLUMNS = (
    "rater",
    "item",
    "truth",
    "class",
    "called",
    "called_class",
    "confidence",
    "correct",
    "answered_at",
)


def answers_csv(answers: Iterable[AnswerLike]) -> str:
    """One CSV row per answer: who, which item, the truth, the call and whether it was right."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ANSWER_COLUMNS)
    for a in answers:
        writer.writerow(
            [
                csv_cell(a.rater),
                a.item,
                a.truth,
                csv_cell(a.label),
                a.called,
                csv_cell(a.called_label or ""),
                a.confidence if a.confidence is not None else "",
                int(a.called == a.truth),
                a.answered_at,
            ]
        )
    return buffer.getvalue()


SUMMARY_COLUMNS = (
    "group",
    "rater",
    "class",
    "answers",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "sensitivity",
    "sensitivity_low",
    "sensitivity_high",
    "specificity",
    "specificity_low",
    "specificity_high",
)


def summary_rows(results: TuringResults) -> list[tuple[str, str, str, Calls]]:
    """``(group, rater, class, calls)`` for the overall figure, each rater, each class and each
    rater x class, in the order tables show them."""
    rows = [("overall", "", "", results.overall)]
    rows += [("rater", r, "", c) for r, c in results.per_rater.items()]
    rows += [("class", "", k, c) for k, c in results.per_class.items()]
    rows += [("rater_class", r, k, c) for (r, k), c in results.per_rater_class.items()]
    return rows


def summary_csv(results: TuringResults) -> str:
    """The figures as CSV: one row per group (overall, rater, class, rater x class), plus a final
    row with Fleiss' kappa in the accuracy column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for group, rater, label, c in summary_rows(results):
        cells: list[object] = [group, csv_cell(rater), csv_cell(label), c.answers]
        for p in (c.accuracy, c.sensitivity, c.specificity):
            cells += [_num(p.value), _num(p.low), _num(p.high)]
        writer.writerow(cells)
    writer.writerow(["fleiss_kappa", "", "", results.kappa_items, _num(results.kappa)])
    return buffer.getvalue()


def _num(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6f}"
