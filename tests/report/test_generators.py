"""The report's generator comparison: real vs each generator per class in one grid, each
generator's quality, near-copies and costs, and the published figures labelled as such."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from pathsynth.records.schema import (
    PUBLISHED_GENERATORS,
    Comparison,
    GeneratorCost,
    Memorisation,
    Neighbours,
    QualityRecord,
    SynthesisQuality,
    read_results,
)
from pathsynth.report import write_report
from pathsynth.report.build import _example_sources
from pathsynth.report.figures import SOURCE_BLOCK, real_vs_generated_grid
from pathsynth.report.numbers import duration
from report.test_report import CLASSES, condition_result, example_results, visible_text

SOURCES = ("real", "gan", "diffusion")


def _record(kid: float, flagged: int) -> QualityRecord:
    quality = SynthesisQuality("classifier:resnet18", kid, 0.001, 20, 40.0, 0.5, 0.25, 0.8, 0.4)
    neighbours = Neighbours(1000.0, 500.0, 1500.0, 0.02)
    return QualityRecord(quality, Memorisation(0.25, flagged, 24, neighbours, None))


def _cost(train_seconds: float, sample_seconds: float, device: str) -> GeneratorCost:
    return GeneratorCost(
        train_seconds=train_seconds, train_steps=300, train_images_per_s=300 * 8 / train_seconds,
        train_device=device, sample_seconds=sample_seconds, sampled_images=24,
        sample_images_per_s=24 / sample_seconds, sample_device=device,
    )  # fmt: skip


def _both_generators(folder: Path) -> Path:
    """A results file of a ``--generator both`` run, its examples with a ``sources`` array."""
    path = example_results(
        folder,
        generators={"gan": _record(0.0411, 2), "diffusion": _record(0.0123, 0)},
        generator_costs={
            "gan": _cost(61.5, 0.25, "cpu, x86_64, 2 threads"),
            "diffusion": _cost(75.0, 12.0, "cpu, x86_64, 2 threads"),
        },
    )
    rng = np.random.default_rng(1)
    arrays = {
        f"{source}_{name}": rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
        for name in CLASSES
        for source in SOURCES
    }
    np.savez(folder / "examples" / "real_vs_synthetic.npz", sources=np.array(SOURCES), **arrays)
    return path


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("both")
    page = write_report(_both_generators(folder), folder / "report")
    return page, visible_text(page)


def _table_rows(html: str) -> list[str]:
    table = html[html.index('<table id="generators">') :].split("</table>")[0]
    return table.split("<tr")[2:]  # the header row first


def test_the_grid_has_a_row_block_per_class_and_a_column_block_per_source():
    rng = np.random.default_rng(0)
    images = {
        name: {source: rng.integers(0, 256, (8, 12, 12, 3), dtype=np.uint8) for source in SOURCES}
        for name in CLASSES
    }
    images["normal"]["gan"] = images["normal"]["gan"][:3]  # a source short of images
    figure = real_vs_generated_grid(CLASSES, SOURCES, images)
    assert figure is not None
    per_block = SOURCE_BLOCK[0] * SOURCE_BLOCK[1]
    assert len(figure.axes) == len(CLASSES) * len(SOURCES) * per_block
    shown = sum(1 for ax in figure.axes if ax.images)
    assert shown == len(CLASSES) * len(SOURCES) * per_block - (per_block - 3)
    labels = {text.get_text() for text in figure.texts} - {figure.get_suptitle()}
    assert labels == {"real (training fold)", "gan", "diffusion", *CLASSES}
    # blocks run left to right in source order: every gan cell right of every real cell
    xs = {source: [] for source in SOURCES}
    for k, ax in enumerate(figure.axes):
        xs[SOURCES[(k // per_block) % len(SOURCES)]].append(ax.get_position().x0)
    assert max(xs["real"]) < min(xs["gan"]) and max(xs["gan"]) < min(xs["diffusion"])


def test_the_grid_refuses_to_draw_nothing():
    assert real_vs_generated_grid(CLASSES, SOURCES, {}) is None
    assert real_vs_generated_grid([], SOURCES, {"a": {"real": np.zeros((1, 4, 4, 3))}}) is None


def test_both_generators_share_one_real_vs_generated_figure(both):
    page, html = both
    summary = json.loads((page.parent / "report.json").read_text())
    assert "real_vs_generated" in summary["figures"]
    assert not [name for name in summary["figures"] if name.startswith("real_vs_synthetic")]
    assert (page.parent / "figures" / "real_vs_generated.png").stat().st_size > 5000
    assert "Real and generated images per class" in html


def test_each_generator_row_holds_its_quality_near_copies_and_costs(both):
    _, html = both
    rows = _table_rows(html)
    measured = [row for row in rows if 'class="measured"' in row]
    assert [re.search(r"<th>(.*?)</th>", row).group(1) for row in measured] == ["gan", "diffusion"]
    gan, diffusion = measured
    assert "0.04110" in gan and "2 of 24" in gan
    assert "0.01230" in diffusion and "0 of 24" in diffusion
    assert "61.5 s" in gan and "75.0 s" in diffusion  # training wall time
    assert "12.0 s" in diffusion and "2.00" in diffusion  # sampling time, 24 images in 12 s
    assert "cpu, x86_64, 2 threads" in gan and "n/a" not in gan


def test_published_figures_are_labelled_as_not_measured_here(both):
    _, html = both
    published = [row for row in _table_rows(html) if 'class="published"' in row]
    assert len(published) == len(PUBLISHED_GENERATORS)
    assert all("not measured here" in row for row in published)
    # each row names its source by number; the numbered list under the table cites it in full
    notes = html[html.index('<ol class="citations">') :].split("</ol>")[0]
    citations = re.findall(r"<li>(.*?)</li>", notes)
    assert len(citations) == 2
    reference, later = (f"published [{citations.index(c) + 1}]" for c in citations)
    assert "Ukrainian Journal of Information Technology" in citations[0]
    assert "CEUR-WS vol. 3892, paper 23" in citations[1]
    later_rows = [row for row in published if later in row]
    assert len(later_rows) == 2
    assert any("diffusion" in row and "FID 0.63" in row for row in later_rows)
    assert any("FID 3.39" in row for row in later_rows)
    reference_rows = [row for row in published if reference in row]
    assert any("9.0 h" in r and "Tesla K80" in r and "27.0 min" in r for r in reference_rows)
    assert not any("measured here (this run)" in row for row in published)


def _balanced(a: str, b: str, difference: float, protocol: str = "honest") -> Comparison:
    low, high = difference - 0.03, difference + 0.03
    return Comparison(protocol, a, b, "balanced_accuracy", difference, [low, high], 0.2, 0.3, 3)


def test_each_generator_row_shows_the_honest_downstream_result_of_its_conditions(tmp_path):
    conditions = {
        f"honest/{name}": condition_result(name, accuracies, None)
        for name, accuracies in [
            ("original", [0.70, 0.72, 0.71]),
            ("affine", [0.74, 0.75, 0.76]),
            ("affine+gan", [0.77, 0.78, 0.79]),
            ("affine+gan:selected", [0.81, 0.82, 0.83]),
            ("affine+diffusion", [0.61, 0.62, 0.63]),
        ]
    }
    leaky = condition_result("affine+gan", [0.97, 0.98, 0.99], None)
    conditions["paper/affine+gan"] = dataclasses.replace(leaky, protocol="paper")
    comparisons = [
        _balanced("affine", "affine+gan", 0.03),
        _balanced("affine+gan", "affine+gan:selected", 0.04),
        _balanced("affine", "affine+diffusion", -0.13),
        _balanced("affine", "affine+gan", 0.23, protocol="paper"),
        dataclasses.replace(_balanced("affine", "affine+gan", 0.5), metric="accuracy"),
    ]
    results = example_results(
        tmp_path,
        conditions=conditions,
        comparisons=comparisons,
        generators={"gan": _record(0.0411, 2), "diffusion": _record(0.0123, 0)},
    )
    html = visible_text(write_report(results, tmp_path / "out"))
    rows = _downstream_rows(html)
    # one row per honest condition adding a generator's images and per comparison it is in
    assert rows == [
        ["gan", "affine+gan", "77.0% [72.0%, 82.0%]", "affine", "+3.0 pp [+0.0 pp, +6.0 pp]"],
        ["gan", "affine+gan:selected", "81.0% [76.0%, 86.0%]", "affine+gan",
         "+4.0 pp [+1.0 pp, +7.0 pp]"],
        ["diffusion", "affine+diffusion", "61.0% [56.0%, 66.0%]", "affine",
         "-13.0 pp [-16.0 pp, -10.0 pp]"],
    ]  # fmt: skip
    # neither the leaky protocol (97%, +23 pp) nor another metric (+50 pp) is among them


def _downstream_rows(html: str) -> list[list[str]]:
    """The cells' text of each row of the per-generator downstream table."""
    table = html[html.index('<table id="generator-downstream">') :].split("</table>")[0]
    rows = table.split("<tr")[2:]  # the header row first
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in rows
    ]


def test_a_single_generator_is_compared_with_the_published_figures(tmp_path):
    cost = _cost(30.0, 1.5, "cpu, x86_64, 2 threads")
    results = example_results(tmp_path, generator_costs={"gan": cost})
    html = visible_text(write_report(results, tmp_path / "out"))
    measured = [row for row in _table_rows(html) if 'class="measured"' in row]
    assert len(measured) == 1
    assert "<th>gan</th>" in measured[0]
    assert "0.01234" in measured[0] and "3 of 40" in measured[0]  # the run's own quality record
    assert "30.0 s" in measured[0] and "16.00" in measured[0]  # 24 images in 1.5 s
    # its images' condition downstream (the fixture compares it on accuracy only)
    assert _downstream_rows(html) == [
        ["gan", "synthetic", "85.0% [80.0%, 90.0%]", "no paired comparison in this run"]
    ]


def test_a_results_file_from_before_generator_costs_still_reads(tmp_path):
    path = _both_generators(tmp_path)
    older = json.loads(path.read_text())
    del older["generator_costs"], older["published_generators"]
    path.write_text(json.dumps(older))
    results = read_results(path)
    assert results.generator_costs == {}
    assert results.published_generators == list(PUBLISHED_GENERATORS)
    html = visible_text(write_report(path, tmp_path / "out"))
    measured = [row for row in _table_rows(html) if 'class="measured"' in row]
    assert len(measured) == 2 and all("not recorded in this run" in row for row in measured)
    assert "FID 0.63" in html


def test_an_examples_file_from_before_sources_shows_real_and_synthetic(tmp_path):
    results = example_results(tmp_path)  # real_<class> and synthetic_<class>, no sources
    with np.load(tmp_path / "examples" / "real_vs_synthetic.npz") as archive:
        examples = {key: archive[key] for key in archive.files}
    assert _example_sources(examples, ["normal", "benign"]) == (
        ["real", "synthetic"], ["normal", "benign", "malignant"],
    )  # fmt: skip
    page = write_report(results, tmp_path / "out")
    assert (page.parent / "figures" / "real_vs_generated.png").stat().st_size > 5000


def test_durations_are_shown_in_a_unit_a_reader_takes_in():
    assert [duration(v) for v in (0.25, 93.24, 750.0, 30600.0)] == [
        "0.2 s", "93.2 s", "12.5 min", "8.5 h",
    ]  # fmt: skip
    assert [duration(v) for v in (None, float("nan"), "x")] == ["n/a"] * 3
