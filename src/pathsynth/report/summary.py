"""The report's opening: what a pathologist reads in two minutes.

The question the run asked, its answer on held-out patients with the interval, whether the
generated images are usable at all (a plain verdict from how much of the real images' variety
they cover, and near-copies), what the split audit says, and what to do next. Every sentence is
computed from ``results.json``; the sections below it hold the numbers it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pathsynth.records.conditions import Condition
from pathsynth.records.schema import (
    Comparison,
    ConditionResult,
    Memorisation,
    Results,
    SynthesisQuality,
)
from pathsynth.report.numbers import percent, points

# Coverage (Naeem et al. 2020): the share of real images with a generated image among their k
# nearest real neighbours. Held-out real images of the same fold cover about 0.9 of the training
# ones (BENCHMARKS.md, "Quality metrics on SSL features"); below 0.1 the generator draws a few
# kinds of image only (collapse), below 0.5 it misses much of the real variety.
COLLAPSED_BELOW = 0.1
PARTIAL_BELOW = 0.5
REFERENCE = "honest/original"


@dataclass(frozen=True)
class GeneratorVerdict:
    """One generator in plain words; ``usable`` is False for a collapsed generator or one that
    copies its training images."""

    kind: str
    usable: bool
    sentence: str


@dataclass(frozen=True)
class Summary:
    """The report's opening section."""

    question: str
    answer: list[str]
    generators: list[GeneratorVerdict]
    audit: str
    audit_warns: bool
    next_steps: list[str] = field(default_factory=list)


def summarise(results: Results) -> Summary:
    """The two-minute summary of a run."""
    verdicts = [
        generator_verdict(kind, quality, memorisation)
        for kind, (quality, memorisation) in results.generator_qualities().items()
    ]
    audits = results.data.audits
    flagged = [a for a in audits if a.get("likely_optimistic")]
    return Summary(
        question=_question(results),
        answer=_answer(results),
        generators=verdicts,
        audit=_audit(audits, flagged),
        audit_warns=bool(flagged),
        next_steps=_next_steps(results, verdicts, flagged),
    )


def _audit(audits: list[dict[str, Any]], flagged: list[dict[str, Any]]) -> str:
    """The split audit's verdict; for a cross-validation, how many folds it flags."""
    if not audits:
        return "This run has no split audit."
    if len(audits) == 1:
        return str(audits[0].get("verdict", ""))
    if not flagged:
        return f"The audit of each of the {len(audits)} folds' splits finds no sign of leakage."
    names = ", ".join(str(a.get("split", "?")) for a in flagged)
    return (
        f"The audit flags {len(flagged)} of {len(audits)} folds' splits as likely optimistic "
        f"({names}): either chance with this few test patients or images of one patient under "
        "several keys; the audit section gives each fold's reading."
    )


def generator_verdict(
    kind: str, quality: SynthesisQuality | None, copies: Memorisation | None = None
) -> GeneratorVerdict:
    """A generator's images in plain words, from coverage (recall where coverage is missing) and
    the memorisation check."""
    share = None if quality is None else quality.coverage
    if share is None and quality is not None:
        share = quality.recall
    if share is None:
        return GeneratorVerdict(
            kind, False, f"The {kind} generator's image quality was not measured."
        )
    variety = f"its images cover {percent(share)} of the real training images' variety"
    copied = (
        f"; {copies.flagged} of {copies.total} are near-copies of training images"
        if copies is not None and copies.flagged
        else ""
    )
    if share < COLLAPSED_BELOW:
        return GeneratorVerdict(
            kind,
            False,
            f"The {kind} generator has collapsed: {variety}{copied}. Its images are no evidence for or "
            "against synthetic data; read no conclusion from the conditions that use them.",
        )
    if share < PARTIAL_BELOW:
        return GeneratorVerdict(
            kind,
            not copied,
            f"The {kind} generator is partial: {variety}{copied}. A better generator may do otherwise.",
        )
    return GeneratorVerdict(
        kind,
        not copied,
        f"The {kind} generator is usable: {variety} (held-out real images: about 90%){copied}.",
    )


def _question(results: Results) -> str:
    e = results.experiment
    classes = f"{len(e.classes)} {e.modality} classes ({', '.join(e.classes)})"
    added = sorted(
        {
            origin
            for key in results.conditions
            for origin in Condition.of(key.split("/", 1)[1].split("@")[0]).origins
        }
        - {"original"}
    )
    if not added:
        return (
            f"How well does a classifier trained on the real images of {classes} do on images "
            "of patients it has never seen?"
        )
    return (
        f"Does adding {' or '.join(added)} images to the real training images of {classes} make "
        "a classifier better on images of patients it has never seen?"
    )


def _estimate(condition: ConditionResult, folds: int) -> str:
    """A condition's balanced accuracy on held-out patients with its interval."""
    ensemble = condition.ensemble
    if folds > 1 and ensemble is not None and ensemble.patient_interval:
        low, high = ensemble.patient_interval
        return (
            f"{percent(ensemble.balanced_accuracy)} balanced accuracy [{percent(low)}, "
            f"{percent(high)}, whole patients resampled] for the seeds' models averaged"
        )
    chosen = condition.pooled_balanced_accuracy or condition.summary.get("balanced_accuracy")
    if chosen is None:
        return "no balanced accuracy"
    spread = "" if chosen.low is None else f" [{percent(chosen.low)}, {percent(chosen.high)}]"
    return f"{percent(chosen.mean)} balanced accuracy{spread} over {chosen.n} runs"


def _answer(results: Results) -> list[str]:
    e = results.experiment
    reference = results.conditions.get(REFERENCE)
    if reference is None:
        return ["The honest protocol's real-only classifier was not run, so there is no answer."]
    where = f"patient-level {e.folds}-fold cross-validation" if e.folds > 1 else "held-out patients"
    lines = [f"Real images only: {_estimate(reference, e.folds)} on {where}."]
    lines.append(_best_change(results.comparisons))
    paper = results.conditions.get("paper/original")
    if paper is None:
        lines.append(
            "The reference study's protocol (images split after expansion) was not run here; "
            "--protocols honest,paper shows how much it inflates the figure."
        )
    elif (mean := paper.summary.get("balanced_accuracy")) is not None:
        lines.append(
            f"The reference study's protocol (images split after expansion) scores the same "
            f"classifier {percent(mean.mean)}: that much of its figure comes from near-copies "
            "of test images in training, not from new patients."
        )
    return lines


def _best_change(comparisons: list[Comparison]) -> str:
    """The condition that moved balanced accuracy most against ``original``, in plain words."""
    against = [
        c
        for c in comparisons
        if c.protocol == "honest" and c.a == "original" and c.metric == "balanced_accuracy"
    ]
    if not against:
        return "No other condition was compared with real images only."
    best = max(against, key=lambda c: abs(c.difference))
    low, high = best.difference_interval
    shown = f"{points(best.difference)} [{points(low)}, {points(high)}] (paired, n = {best.n})"
    if low is None or high is None or low <= 0 <= high:
        return (
            f"No condition differs from real images only beyond noise: the largest change, "
            f"{best.b}, is {shown}."
        )
    direction = "better" if best.difference > 0 else "worse"
    return f"{best.b} is {direction} than real images only by {shown}."


def _next_steps(
    results: Results, verdicts: list[GeneratorVerdict], flagged: list[dict[str, Any]]
) -> list[str]:
    e = results.experiment
    steps = []
    if any(a.get("image_level") for a in flagged):
        steps.append(
            "Give the images' patient keys (a patient or group column) and split again: the "
            "figures above are likely optimistic."
        )
    elif flagged:
        steps.append(
            "Check that each patient's images share one key (a key finer than the patient "
            "reads high); the figures above may be optimistic."
        )
    if any(not v.usable for v in verdicts):
        steps.append(
            "Train the generator longer (the gpu preset on a GPU) before its images can answer "
            "the question."
        )
    if e.folds == 1:
        steps.append(
            "For an estimate every patient contributes to, rerun with --folds 5 (the "
            "cross-validation's bundles are what predict should use)."
        )
    if e.seeds < 5:
        steps.append(f"More seeds than {e.seeds} (--seeds 5) narrow the intervals.")
    return steps
