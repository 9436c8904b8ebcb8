"""The report page: its tables hold the run's numbers, missing sections are named, nothing is NaN."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jinja2 import UndefinedError

from pathsynth.errors import DataError
from pathsynth.metrics.aggregate import MeanInterval
from pathsynth.records.schema import (
    Comparison,
    ConditionResult,
    Curves,
    DataInfo,
    Examples,
    ExperimentInfo,
    GeneratorInfo,
    Memorisation,
    Neighbours,
    Results,
    Roc,
    SeedResult,
    SplitInfo,
    StageTiming,
    SynthesisQuality,
    read_results,
    write_results,
)
from pathsynth.report import write_report
from pathsynth.report.build import _environment
from pathsynth.report.numbers import fmt, interval, percent, sanitise

CLASSES = ["benign", "malignant", "normal"]


def _roc(seed: int, auc: float | None) -> dict[str, Roc | None]:
    rng = np.random.default_rng(seed)
    curve = lambda: sorted(rng.uniform(0, 1, 5).tolist())  # noqa: E731
    roc: dict[str, Roc | None] = {
        name: Roc([0.0, *curve(), 1.0], [0.0, *curve(), 1.0], auc) for name in CLASSES
    }
    roc["micro"] = Roc([0.0, 0.2, 1.0], [0.0, 0.8, 1.0], 0.8)
    roc["macro"] = None  # undefined when a class is absent from the test fold
    return roc


def _summary(mean: float, half_width: float, n: int = 2) -> MeanInterval:
    return MeanInterval(mean, half_width / 2, mean - half_width, mean + half_width, n, 0.95)


def condition_result(train_on: str, accuracies: list[float], auc: float | None) -> ConditionResult:
    per_seed = [
        SeedResult(
            seed=seed,
            accuracy=accuracy,
            balanced_accuracy=accuracy - 0.01,
            macro_f1=accuracy - 0.02,
            macro_auc=auc,
            confusion_matrix=[[3, 1, 0], [0, 4, 0], [1, 0, 2]],
            roc=_roc(seed, auc),
            curves=Curves([1, 2, 3], [1.0, 0.7, 0.5], [1.1, None, 0.8], [0.4, 0.5, 0.6]),
        )
        for seed, accuracy in enumerate(accuracies)
    ]
    summary = {
        "accuracy": _summary(float(np.mean(accuracies)), 0.0456),
        "balanced_accuracy": _summary(float(np.mean(accuracies)) - 0.01, 0.05),
        "macro_f1": None,
        "macro_auc": None if auc is None else _summary(auc, 0.01),
    }
    return ConditionResult("honest", train_on, 63, per_seed, summary)


def example_results(folder: Path, **changes: Any) -> Path:
    """A complete results file as the experiment writes it, with its example arrays beside it."""
    rng = np.random.default_rng(0)
    examples = folder / "examples"
    examples.mkdir(parents=True)
    pixels = lambda *shape: rng.integers(0, 256, (*shape, 16, 16, 3), dtype=np.uint8)  # noqa: E731
    np.savez(examples / "affine.npz", originals=pixels(2), children=pixels(2, 3))
    np.savez(
        examples / "real_vs_synthetic.npz",
        **{f"{kind}_{name}": pixels(4) for name in CLASSES for kind in ("real", "synthetic")},
    )
    with (folder / "gan_stats.jsonl").open("w") as stream:
        for step in range(0, 500, 50):
            record = {"step": step, "loss_d": 1.0 / (step + 1), "loss_g": 2.0, "ada_p": step / 1000}
            stream.write(json.dumps(record) + "\n")
        stream.write('{"step": 500, "loss_d"')  # a line cut short by a killed run
    neighbours = Neighbours(1234.5, 800.25, 2000.0, 0.025)
    results = Results(
        experiment=ExperimentInfo(
            "bach-smoke",
            "histology",
            "bach",
            "smoke",
            ["honest"],
            2,
            CLASSES,
            "2026-11-26T04:00:00Z",
            "0.1.0",
        ),
        data=DataInfo(
            "BACH 2018 (ICIAR grand challenge)",
            "CC BY-NC-ND 4.0",
            "Aresta et al., Medical Image Analysis 2019",
            SplitInfo("honest-0", "image", 0.3, 0.15, 0, True),
            {"train": {"benign": 21, "malignant": 21}, "test": {"benign": 9, "normal": 9}},
        ),
        stages=[StageTiming("ingest", 3.25, "finished"), StageTiming("generator", None, "running")],
        conditions={
            "honest/original": condition_result("original", [0.8123, 0.8321], 0.9),
            "honest/synthetic": condition_result("synthetic", [0.85, 0.87], None),
        },
        comparisons=[
            Comparison(
                "honest",
                "original",
                "synthetic",
                "accuracy",
                0.0378,
                [0.01, 0.06],
                0.0213,
                float("nan"),
                2,
            )
        ],
        synthesis_quality=SynthesisQuality(
            "classifier:resnet18",
            kid_mean=0.01234,
            kid_std=0.002,
            kid_subset_size=20,
            frechet_distance=43.95,
            precision=0.61,
            recall=None,
            density=0.9,
            coverage=0.5,
            inception_kid_mean=0.3456,
            inception_kid_std=0.01,
            inception_kid_subset_size=20,
            inception_frechet_distance=77.25,
        ),
        memorisation=Memorisation(0.25, 3, 40, neighbours, Neighbours(0.4, 0.1, 0.9, 0.05)),
        generator=GeneratorInfo("gan", "ab" * 16, "runs/00001-gan", "gan_stats.jsonl", 93.0, 500),
        configs={
            "gan": {"resolution": 64, "lr": 0.002, "ema_half_life": float("nan")},
            "classifier": {"network": "small_cnn"},
        },
        examples=Examples("examples/affine.npz", "examples/real_vs_synthetic.npz"),
    )
    path = folder / "results.json"
    write_results(dataclasses.replace(results, **changes), path)
    return path


def visible_text(page: Path) -> str:
    """The page without its embedded images (base64 can spell anything)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page.read_text())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("run")
    page = write_report(example_results(folder), folder / "report")
    return page, visible_text(page)


def test_page_shows_the_accuracy_table_with_ci_and_the_paper_figures(report):
    _, html = report
    assert "82.2% [77.7%, 86.8%]" in html  # honest/original accuracy mean [low, high]
    assert "86.0% [81.4%, 90.6%]" in html
    assert "0.900 [0.890, 0.910]" in html  # macro AUC stays a proportion
    for figure in ("84.0%", "96.5%", "75.0%", "95.5%"):
        assert figure in html
    assert "0.0378" in html and "0.021" in html  # the paired comparison


def test_a_wilcoxon_p_that_cannot_reach_005_at_this_n_is_not_shown_as_a_p_value(report):
    from pathsynth.report.numbers import wilcoxon_p

    _, html = report
    row = html[html.index("<h2>Paired comparisons</h2>") :].split("</table>")[0]
    assert (
        "n/a (n &lt; 6)" in row
    )  # two seeds (escaped in the page): the smallest two-sided p is 2 / 2**2
    assert wilcoxon_p(0.25, 3) == "n/a (n < 6)"
    assert wilcoxon_p(0.03125, 6) == "0.031"  # from 6 pairs the test can say something
    assert wilcoxon_p(None, 8) == "n/a"


def test_confusion_matrices_name_their_classes_on_both_axes(report):
    _, html = report
    table = html[html.index('<table class="confusion">') :].split("</table>")[0]
    header = re.findall(r"<th>([^<]*)</th>", table.split("</tr>")[0])
    assert header == ["true \\ predicted", *CLASSES]
    rows = [re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row) for row in table.split("</tr>")[1:-1]]
    # the example's first matrix, [[3, 1, 0], [0, 4, 0], [1, 0, 2]], with each row's true class
    assert rows == [
        [CLASSES[0], "3", "1", "0"],
        [CLASSES[1], "0", "4", "0"],
        [CLASSES[2], "1", "0", "2"],
    ]


def test_null_and_nan_numbers_render_as_na_and_never_as_nan(report):
    _, html = report
    assert re.search(r"\bnan\b", html, re.IGNORECASE) is None
    assert "None" not in html
    row = html[html.index("<td>honest/synthetic</td>") :].split("</tr>")[0]
    assert row.count("n/a") == 2  # macro F1 and macro AUC summaries are null


def test_figures_exist_as_png_and_svg_and_are_embedded(report):
    page, _ = report
    folder = page.parent / "figures"
    names = {
        "affine",
        "real_vs_generated",
        "generator_training",
        "classifier_honest-original",
        "classifier_honest-synthetic",
        "roc_honest-original",
        "roc_honest-synthetic",
    }
    for name in names:
        assert (folder / f"{name}.png").stat().st_size > 1000, name
        assert (folder / f"{name}.svg").read_text().lstrip().startswith("<?xml"), name
    assert page.read_text().count("data:image/png;base64,") == len(names)


def test_report_json_holds_every_number_as_strict_json(report):
    page, _ = report
    summary = json.loads((page.parent / "report.json").read_text())  # would fail on NaN tokens
    results = summary["results"]
    assert results["conditions"]["honest/original"]["per_seed"][0]["accuracy"] == 0.8123
    assert results["comparisons"][0]["wilcoxon_p_value"] is None
    assert summary["figures"]["affine"] == {
        "png": "figures/affine.png",
        "svg": "figures/affine.svg",
    }


def test_provenance_timings_and_configs_are_on_the_page(report):
    _, html = report
    assert "CC BY-NC-ND 4.0" in html and "Aresta et al." in html
    assert "3.2" in html and "running" in html
    assert "&#34;network&#34;: &#34;small_cnn&#34;" in html or '"network": "small_cnn"' in html


def test_a_run_without_optional_sections_says_what_is_missing(tmp_path):
    results = example_results(
        tmp_path, conditions={}, comparisons=[], synthesis_quality=None, memorisation=None,
        generator=None, examples=Examples(),
    )  # fmt: skip
    html = visible_text(write_report(results, tmp_path / "out"))
    assert "No classifier results in this run." in html
    assert "Synthesis quality was not measured in this run." in html
    assert "No generator was trained in this run." in html
    assert "No affine examples in this run." in html
    assert "75.0%" in html and "95.5%" in html  # the paper's figures are always shown


def test_the_quality_and_memorisation_numbers_reach_the_page(report):
    _, html = report
    assert "0.01234 ± 0.00200" in html and "43.95" in html  # KID and FD, never n/a
    assert "0.34560 ± 0.01000" in html and "77.25" in html  # Inception numbers when supplied
    assert "pixel: flag rate among real images (baseline)" in html and "0.025" in html
    assert "3 of 40" in html


def test_a_template_field_the_schema_lacks_fails_the_render(report):
    page, _ = report
    results = read_results(page.parent.parent / "results.json")
    environment = _environment()
    ok = environment.from_string("{{ results.synthesis_quality.kid_mean }}")
    assert ok.render(results=results) == "0.01234"
    wrong = environment.from_string("{{ results.synthesis_quality.kid.mean }}")  # the old bug
    with pytest.raises(UndefinedError):
        wrong.render(results=results)


def test_a_results_file_that_does_not_match_the_schema_is_refused(tmp_path):
    good = json.loads(example_results(tmp_path).read_text())
    del good["synthesis_quality"]["kid_mean"]
    (tmp_path / "bad.json").write_text(json.dumps(good))
    with pytest.raises(DataError, match=r"does not match its schema.*kid_mean"):
        write_report(tmp_path / "bad.json", tmp_path / "out")
    good["schema"] = 0
    (tmp_path / "old.json").write_text(json.dumps(good))
    with pytest.raises(DataError, match=r"another pathsynth version.*rerun `pathsynth reproduce`"):
        write_report(tmp_path / "old.json", tmp_path / "out")


def test_refuses_a_results_file_that_is_not_a_json_object(tmp_path):
    with pytest.raises(DataError, match="not JSON"):
        (tmp_path / "bad.json").write_text("{")
        write_report(tmp_path / "bad.json", tmp_path / "out")
    with pytest.raises(DataError, match="not an object"):
        (tmp_path / "list.json").write_text("[1, 2]")
        write_report(tmp_path / "list.json", tmp_path / "out")
    with pytest.raises(DataError, match="cannot read"):
        write_report(tmp_path / "absent.json", tmp_path / "out")


def test_number_formatting_refuses_to_show_non_numbers():
    assert [fmt(v) for v in (None, float("nan"), float("inf"), "x", True)] == ["n/a"] * 5
    assert fmt(0.12345) == "0.123" and fmt(7) == "7"
    assert percent(0.965) == "96.5%" and percent(None) == "n/a"
    assert interval(MeanInterval(float("nan"), None, None, None, 1, 0.95)) == "n/a"
    assert interval(None) == "n/a"
    assert sanitise({"a": [1.0, float("-inf")]}) == {"a": [1.0, None]}


def test_the_appendix_shows_the_configuration_blocks_the_run_used() -> None:
    from pathsynth.experiment.config import experiment_presets
    from pathsynth.experiment.results import configs_of
    from pathsynth.report.build import _configs

    quick = configs_of(experiment_presets("histology").resolve("quick"))
    shown = _configs(quick)
    # a GAN run without selection: no diffusion block, no selection block
    assert set(shown["configs"]) == {
        "experiment",
        "preprocess",
        "affine",
        "gan",
        "classifier",
        "quality",
    }
    assert shown["unused_configs"] == ["diffusion", "selection"]
    assert json.loads(shown["configs"]["gan"]) == sanitise(quick["gan"])  # whole, not trimmed
    real_only = configs_of(
        experiment_presets("histology").resolve("quick", {"conditions": "original"})
    )
    assert _configs(real_only)["unused_configs"] == ["affine", "gan", "diffusion", "selection"]
