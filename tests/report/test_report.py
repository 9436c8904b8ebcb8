"""The report page: its tables hold the run's numbers, missing sections are named, nothing is NaN."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pathsynth.errors import DataError
from pathsynth.report import write_report
from pathsynth.report.numbers import fmt, interval, percent, sanitise

CLASSES = ["benign", "malignant", "normal"]


def _roc(seed: int, auc: float | None) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    curve = lambda: sorted(rng.uniform(0, 1, 5).tolist())  # noqa: E731
    roc: dict[str, Any] = {
        name: {"fpr": [0.0, *curve(), 1.0], "tpr": [0.0, *curve(), 1.0], "auc": auc}
        for name in CLASSES
    }
    roc["micro"] = {"fpr": [0.0, 0.2, 1.0], "tpr": [0.0, 0.8, 1.0], "auc": 0.8}
    roc["macro"] = None  # undefined when a class is absent from the test fold
    return roc


def _summary(mean: float, half_width: float, n: int = 2) -> dict[str, Any]:
    return {
        "mean": mean,
        "std": half_width / 2,
        "low": mean - half_width,
        "high": mean + half_width,
        "n": n,
        "confidence": 0.95,
    }


def example_results(folder: Path) -> Path:
    """A complete results JSON as the experiment writes it, with its example arrays beside it.

    The schema, section by section (any optional section may be missing or null):

    - ``experiment``: modality, source, preset, protocols, seeds (K), classes, created,
      pathsynth_version;
    - ``data``: source, licence, citation, split {name, unit, test, val, seed}, counts per fold
      and class;
    - ``stages``: [{name, seconds, status}];
    - ``conditions``: ``"<protocol>/<train_on>"`` -> {protocol, train_on, train_images,
      per_seed: [{seed, accuracy, balanced_accuracy, macro_f1, macro_auc (float|null),
      confusion_matrix, roc {class|micro|macro: {fpr, tpr, auc}|null}, curves {epoch, train_loss,
      val_loss, val_balanced_accuracy}}], summary {metric: {mean, std, low, high, n,
      confidence}|null}};
    - ``comparisons``: [{protocol, a, b, metric, difference, t_p_value, wilcoxon_p_value, n}];
    - ``paper_reference``: {modality: {original, synthetic}};
    - ``synthesis_quality``: {feature_extractor, kid {mean, std}, fd, precision, recall, density,
      coverage} | null;
    - ``memorisation``: {threshold_ratio, flagged, total, real_flag_rate, pixel, feature} | null;
    - ``gan``: {run_dir, stats_jsonl (relative to the results file or absolute), seconds} | null;
    - ``configs``: {gan, classifier, affine, preprocess};
    - ``examples``: {affine: npz with ``originals`` (N,H,W,3) and ``children`` (N,K,H,W,3),
      real_vs_synthetic: npz with ``real_<class>`` and ``synthetic_<class>`` (M,H,W,3)}, all uint8.
    """
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

    def condition(train_on: str, accuracies: list[float], auc: float | None) -> dict[str, Any]:
        per_seed = [
            {
                "seed": seed,
                "accuracy": accuracy,
                "balanced_accuracy": accuracy - 0.01,
                "macro_f1": accuracy - 0.02,
                "macro_auc": auc,
                "confusion_matrix": [[3, 1, 0], [0, 4, 0], [1, 0, 2]],
                "roc": _roc(seed, auc),
                "curves": {
                    "epoch": [1, 2, 3],
                    "train_loss": [1.0, 0.7, 0.5],
                    "val_loss": [1.1, float("nan"), 0.8],
                    "val_balanced_accuracy": [0.4, 0.5, 0.6],
                },
            }
            for seed, accuracy in enumerate(accuracies)
        ]
        return {
            "protocol": "honest",
            "train_on": train_on,
            "train_images": 63,
            "per_seed": per_seed,
            "summary": {
                "accuracy": _summary(float(np.mean(accuracies)), 0.0456),
                "balanced_accuracy": _summary(float(np.mean(accuracies)) - 0.01, 0.05),
                "macro_f1": None,
                "macro_auc": None if auc is None else _summary(auc, 0.01),
            },
        }

    results = {
        "experiment": {
            "modality": "histology",
            "source": "bach",
            "preset": "smoke",
            "protocols": ["honest"],
            "seeds": 2,
            "classes": CLASSES,
            "created": "2026-11-26T04:00:00Z",
            "pathsynth_version": "0.1.0",
        },
        "data": {
            "source": "BACH 2018 (ICIAR grand challenge)",
            "licence": "CC BY-NC-ND 4.0",
            "citation": "Aresta et al., Medical Image Analysis 2019",
            "split": {"name": "honest-0", "unit": "image", "test": 0.3, "val": 0.15, "seed": 0},
            "counts": {
                "train": {"benign": 21, "malignant": 21},
                "test": {"benign": 9, "normal": 9},
            },
        },
        "stages": [
            {"name": "ingest", "seconds": 3.25, "status": "done"},
            {"name": "gan", "seconds": None, "status": "skipped"},
        ],
        "conditions": {
            "honest/original": condition("original", [0.8123, 0.8321], 0.9),
            "honest/synthetic": condition("synthetic", [0.85, 0.87], None),
        },
        "comparisons": [
            {
                "protocol": "honest",
                "a": "synthetic",
                "b": "original",
                "metric": "accuracy",
                "difference": 0.0378,
                "t_p_value": 0.0213,
                "wilcoxon_p_value": float("nan"),
                "n": 2,
            }
        ],
        "paper_reference": {
            "histology": {"original": 0.84, "synthetic": 0.965},
            "cytology": {"original": 0.75, "synthetic": 0.955},
        },
        "synthesis_quality": {
            "feature_extractor": "classifier:resnet18",
            "kid": {"mean": 0.01234, "std": 0.002},
            "fd": 12.5,
            "precision": 0.61,
            "recall": None,
            "density": 0.9,
            "coverage": 0.5,
        },
        "memorisation": {
            "threshold_ratio": 0.5,
            "flagged": 3,
            "total": 40,
            "real_flag_rate": 0.025,
            "pixel": {"median_nearest": 1234.5},
            "feature": {"median_nearest": 0.4},
        },
        "gan": {"run_dir": "runs/gan/00001", "stats_jsonl": "gan_stats.jsonl", "seconds": 93.0},
        "configs": {
            "gan": {"resolution": 64, "lr": 0.002, "ema_half_life": float("nan")},
            "classifier": {"network": "small_cnn"},
            "affine": {"max_rotation": 180.0},
            "preprocess": {"mode": "patches-random"},
        },
        "examples": {
            "affine": "examples/affine.npz",
            "real_vs_synthetic": "examples/real_vs_synthetic.npz",
        },
    }
    path = folder / "results.json"
    path.write_text(json.dumps(results))  # NaN written as the JSON extension Python reads back
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
        "real_vs_synthetic_benign",
        "real_vs_synthetic_malignant",
        "real_vs_synthetic_normal",
        "gan_training",
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
    assert "3.2" in html and "skipped" in html
    assert "&#34;network&#34;: &#34;small_cnn&#34;" in html or '"network": "small_cnn"' in html


def test_a_run_without_optional_sections_says_what_is_missing(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"experiment": {"modality": "cytology"}, "gan": None}))
    html = visible_text(write_report(results, tmp_path / "out"))
    assert "No classifier results in this run." in html
    assert "Synthesis quality was not measured in this run." in html
    assert "No GAN was trained in this run." in html
    assert "No affine examples in this run." in html
    assert "75.0%" in html and "95.5%" in html  # the paper's figures are always shown


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
    assert interval({"mean": float("nan")}) == "n/a"
    assert sanitise({"a": [1.0, float("-inf")]}) == {"a": [1.0, None]}
