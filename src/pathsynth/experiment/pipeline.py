"""``pathsynth reproduce``: the whole experiment, stage by stage, resumable.

Stages, each recorded in ``<workspace>/experiments/<name>/state.json`` when it finishes, so a rerun
skips finished stages and a killed stage restarts cleanly (the GAN from its last checkpoint, the
classifiers from the last finished run):

1. ``ingest``: the source into the catalog (idempotent);
2. ``split``: the REAL images, stratified 7:3, by patient/group where the catalog knows them;
3. ``inputs``: both folds preprocessed to network inputs (cached uint8 tensors);
4. ``affine``: class-balanced affine expansion of the training fold (honest protocol) and of all
   real images (paper protocol), stored in the catalog with parents and parameters;
5. ``gan``: the conditional GAN trained on the expanded training fold only;
6. ``generate``: GAN images per class, stored in the catalog with run, step and seed;
7. ``classify``: every protocol x condition x seed;
8. ``quality``: KID, Frechet distance, precision/recall/density/coverage on features of a
   classifier trained on the real training fold, and the memorisation check;
9. ``results``: one JSON of every number plus example arrays for the report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sqlalchemy import select

from pathsynth import __version__
from pathsynth.catalog.api import AffineChild, store_affine, store_generated_ids
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.models import Patient, Split, Study
from pathsynth.catalog.queries import FoldImage, fold_images
from pathsynth.catalog.splits import SplitRequest, make_split
from pathsynth.catalog.workspace import Workspace
from pathsynth.classify.config import classifier_config
from pathsynth.classify.evaluate import evaluate_images
from pathsynth.classify.trainer import train_classifier, validation_split
from pathsynth.errors import DataError
from pathsynth.experiment.config import ExperimentConfig
from pathsynth.experiment.protocols import (
    ExperimentSets,
    LabelledPart,
    concatenate,
    honest_sets,
    paper_pool,
    paper_sets,
)
from pathsynth.files import atomic_path, write_text_atomic
from pathsynth.gan.sampling import encode_png, generate_images, load_generator, run_provenance
from pathsynth.imaging.affine import AffineConfig, class_balanced_plan, random_affine
from pathsynth.imaging.cache import load_preprocessed
from pathsynth.imaging.patches import PreprocessConfig
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.metrics.aggregate import mean_confidence_interval, paired_comparison
from pathsynth.metrics.classification import classification_report
from pathsynth.metrics.features import ClassifierFeatures, InceptionFeatures
from pathsynth.metrics.memorisation import memorisation_check
from pathsynth.metrics.registry import synthesis_quality

STAGES = (
    "ingest",
    "split",
    "inputs",
    "affine",
    "gan",
    "generate",
    "classify",
    "quality",
    "results",
)
PAPER_REFERENCE = {
    "histology": {"original": 0.84, "synthetic": 0.965},
    "cytology": {"original": 0.75, "synthetic": 0.955},
}
SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
LICENCES = {
    "bach": (
        "CC BY-NC-ND 4.0 (non-commercial)",
        "BACH, ICIAR 2018 Grand Challenge on BreAst Cancer Histology images; Aresta et al., "
        "Medical Image Analysis 56:122-139, 2019",
    ),
    "herlev": (
        "distributed freely for research",
        "Herlev Pap-smear data (smear2005); Jantzen, Norup, Dounias, Bjerregaard 2005",
    ),
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _save_tensors(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(data, tmp)


def _part_state(part: LabelledPart) -> dict[str, Any]:
    return {
        "images": part.images.images,
        "labels": part.images.labels,
        "class_names": part.images.class_names,
        "ids": part.ids,
        "parents": part.parents,
        "groups": part.groups,
    }


def _part_from(state: dict[str, Any]) -> LabelledPart:
    return LabelledPart(
        TensorImageSet(state["images"], state["labels"], list(state["class_names"])),
        state["ids"],
        state["parents"],
        state["groups"],
    )


def _decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


class Experiment:
    """One experiment in a workspace: its folder, state, config and stages.

    Args:
        workspace: the workspace.
        source: the folder of real images.
        modality: ``histology`` or ``cytology``.
        config: the resolved experiment config.
        classes: the class subset (None: all classes of the source).
        name: the experiment's name (its folder under ``experiments/``).
        log: called with one line of progress text.
    """

    def __init__(
        self,
        workspace: Workspace,
        source: Path,
        modality: str,
        config: ExperimentConfig,
        classes: tuple[str, ...] | None,
        name: str,
        log: Callable[[str], None] = print,
    ) -> None:
        self.workspace = workspace
        self.source = source
        self.modality = modality
        self.config = config
        self.classes = classes
        self.name = name
        self.log = log
        self.folder = workspace.root / "experiments" / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_path = self.folder / "state.json"
        self.state: dict[str, Any] = (
            json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        )
        recorded = self.state.get("experiment")
        identity = {"modality": modality, "source": str(source.resolve()), "classes": classes}
        if recorded is not None and (
            recorded["modality"] != modality
            or recorded["classes"] != (list(classes) if classes else None)
        ):
            raise DataError(
                f"experiment {name!r} was made for {recorded['modality']} "
                f"(classes {recorded['classes']}); use another --name"
            )
        self.state["experiment"] = {**identity, "classes": list(classes) if classes else None}
        self.state.setdefault("stages", {})
        self.state["config"] = config.to_dict()
        self.device = _device(config.device)

    # ------------------------------------------------------------------ driving the stages

    def run(self, until: str = "results") -> Path:
        """Run every unfinished stage up to ``until``; returns the results JSON path."""
        for stage in STAGES:
            record = self.state["stages"].get(stage, {})
            if record.get("status") != "finished":
                self.log(f"stage {stage}: starting")
                start = time.perf_counter()
                outputs = getattr(self, f"_stage_{stage.replace('-', '_')}")()
                seconds = time.perf_counter() - start
                self.state["stages"][stage] = {
                    "status": "finished",
                    "seconds": round(seconds, 2),
                    "finished": _now(),
                    "outputs": outputs or {},
                }
                self._save_state()
                self.log(f"stage {stage}: finished in {seconds:.1f} s")
            else:
                self.log(f"stage {stage}: already finished, skipped")
            if stage == until:
                break
        return self.folder / "results.json"

    def _save_state(self) -> None:
        _write_json(self.state_path, self.state)

    def _outputs(self, stage: str) -> dict[str, Any]:
        return self.state["stages"][stage]["outputs"]

    # ------------------------------------------------------------------ 1-3 real data

    def _stage_ingest(self) -> dict[str, Any]:
        report = ingest_source(self.workspace, self.source, IngestOptions(modality=self.modality))
        for refusal in report.refused:
            self.log(f"  refused {refusal.path}: {refusal.reason}")
        return {
            "added": report.added_total,
            "already_present": report.already_present,
            "refused": [dataclasses.asdict(r) for r in report.refused],
        }

    def _split_name(self) -> str:
        return f"{self.name}-real"

    def _stage_split(self) -> dict[str, Any]:
        with self.workspace.open_catalog() as catalog:
            with catalog.session() as session:
                kinds = set(
                    session.scalars(
                        select(Patient.key_kind)
                        .join(Study, Study.patient_id == Patient.id)
                        .where(
                            Study.modality == self.modality,
                            Study.source == self.source.resolve().name,
                        )
                    )
                )
                existing = session.scalar(select(Split).where(Split.name == self._split_name()))
                if existing is not None:
                    return {"unit": existing.unit, **existing.params}
            unit = "patient" if kinds & {"patient", "group"} else "image"
            request = SplitRequest(
                name=self._split_name(),
                unit=unit,
                test=self.config.test_fraction,
                seed=self.config.split_seed,
                modality=self.modality,
                classes=self.classes,
            )
            result = make_split(catalog, request)
        counts = {fold: dict(c) for fold, c in result.counts.items()}
        self.log(
            f"  split by {unit}: {sum(counts['train'].values())} train, "
            f"{sum(counts['test'].values())} test real images"
        )
        return {"unit": unit, "image_level": result.image_level, "counts": counts}

    def _stage_inputs(self) -> dict[str, Any]:
        parts = {}
        with self.workspace.open_catalog() as catalog:
            folds = {
                fold: fold_images(catalog, self.workspace.store, self._split_name(), fold)
                for fold in ("train", "test")
            }
        class_names = sorted({image.label for image in folds["train"]})
        for fold, images in folds.items():
            parts[fold] = network_inputs(
                images, class_names, self.config.preprocess, self.workspace.root / "cache"
            )
        _save_tensors(
            self.folder / "inputs.pt",
            {fold: _part_state(part) for fold, part in parts.items()},
        )
        return {
            "class_names": class_names,
            "rows": {fold: len(part.images) for fold, part in parts.items()},
            "images": {fold: len(images) for fold, images in folds.items()},
        }

    def _sets(self) -> ExperimentSets:
        inputs = torch.load(self.folder / "inputs.pt", weights_only=False)
        sets = ExperimentSets(_part_from(inputs["train"]), _part_from(inputs["test"]))
        if (self.folder / "affine.pt").exists():
            affine = torch.load(self.folder / "affine.pt", weights_only=False)
            sets.affine_train = _part_from(affine["train"])
            sets.affine_all = _part_from(affine["all"])
        if (self.folder / "synthetic.pt").exists():
            sets.synthetic = _part_from(
                torch.load(self.folder / "synthetic.pt", weights_only=False)
            )
        return sets

    # ------------------------------------------------------------------ 4 affine expansion

    def _stage_affine(self) -> dict[str, Any]:
        sets = self._sets()
        train = self._expand(sets.real_train, "train", self.config.affine_per_class, seed=1)
        pool = concatenate([sets.real_train, sets.real_test])
        # the paper expanded every image before its split: the same target for the whole pool
        pool_target = round(self.config.affine_per_class / (1 - self.config.test_fraction))
        everything = self._expand(pool, "all", pool_target, seed=2)
        _save_tensors(
            self.folder / "affine.pt", {"train": _part_state(train), "all": _part_state(everything)}
        )
        return {"train_children": len(train.images), "all_children": len(everything.images)}

    def _expand(
        self, originals: LabelledPart, which: str, per_class: int, seed: int
    ) -> LabelledPart:
        return affine_expansion(
            self.workspace.root,
            originals,
            self.config.affine,
            self.config.preprocess,
            per_class=per_class,
            seed=self.config.split_seed * 1000 + seed,
            run_name=f"{self.name}-affine-{which}",
        )

    # ------------------------------------------------------------------ 5-6 the GAN

    def _gan_config(self) -> Any:
        from pathsynth.gan.presets import resolve_config

        overrides = {
            **self.config.gan_overrides,
            "data.resolution": self.config.preprocess.size,
            "run.device": self.device,
        }
        return resolve_config(self.config.gan_preset, overrides)

    def _stage_gan(self) -> dict[str, Any]:
        from pathsynth.gan.checkpoint import find_checkpoint, list_checkpoints, load_checkpoint
        from pathsynth.gan.trainer import GanTrainer, new_run_dir

        sets = self._sets()
        assert sets.affine_train is not None
        training = concatenate([sets.real_train, sets.affine_train]).images
        config = self._gan_config()
        started = self.state["stages"].setdefault("gan", {"status": "running"})
        resume = None
        if started.get("run_dir") and list_checkpoints(Path(started["run_dir"]), "last"):
            run_dir = Path(started["run_dir"])
            resume = load_checkpoint(find_checkpoint(run_dir, "last"))
            self.log(f"  resuming the GAN from {run_dir} at step {resume['step']}")
        else:
            run_dir = new_run_dir(self.workspace.runs, f"{self.name}-gan")
            (run_dir / "config.json").write_text(config.to_json() + "\n", encoding="utf-8")
            started["run_dir"] = str(run_dir)
            self._save_state()
        trainer = GanTrainer(
            config, training, run_dir, resume=resume, log=lambda line: self.log(f"  {line}")
        )
        result = trainer.train()
        if result.status != "finished":
            raise DataError(f"GAN training was interrupted at step {result.step}; rerun to resume")
        return {
            "run_dir": str(run_dir),
            "steps": result.step,
            "training_images": len(training),
            "best_score": result.best_score,
            "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
        }

    def _stage_generate(self) -> dict[str, Any]:
        run_dir = Path(self._outputs("gan")["run_dir"])
        loaded = load_generator(run_dir, "best", self.device)
        images = list(
            generate_images(
                loaded.network,
                loaded.class_names,
                self.config.synthetic_per_class,
                self.config.generate_seed,
                loaded.step,
            )
        )
        provenance = {**run_provenance(loaded, run_dir), "modality": self.modality}
        ids, _ = store_generated_ids(self.workspace.root, images, provenance)
        pixels = np.stack([_decode_png(image.png) for image in images])
        labels = torch.tensor([loaded.class_names.index(i.class_name) for i in images])
        part = LabelledPart(
            TensorImageSet(
                torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
                labels,
                list(loaded.class_names),
            ),
            torch.tensor(ids, dtype=torch.int64),
            torch.full((len(ids),), -1),
            torch.full((len(ids),), -1),
        )
        _save_tensors(self.folder / "synthetic.pt", _part_state(part))
        return {
            "images": len(images),
            "checkpoint_step": loaded.step,
            "checkpoint": str(loaded.checkpoint),
        }

    # ------------------------------------------------------------------ 7 classifiers

    def _stage_classify(self) -> dict[str, Any]:
        sets = self._sets()
        done = 0
        for protocol in self.config.protocols:
            for condition in self.config.conditions:
                for seed in range(self.config.seeds):
                    target = self._run_path(protocol, condition, seed)
                    if target.exists():
                        continue
                    _write_json(target, self._classify_once(sets, protocol, condition, seed))
                    done += 1
        return {"runs": done}

    def _run_path(self, protocol: str, condition: str, seed: int) -> Path:
        folder = self.folder / "classify" / protocol / condition.replace("+", "-")
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"seed{seed}.json"

    def _classify_once(
        self, sets: ExperimentSets, protocol: str, condition: str, seed: int
    ) -> dict[str, Any]:
        config = classifier_config(
            self.config.classifier_preset,
            **{**self.config.classifier_overrides, "seed": seed, "device": self.device},
        )
        if protocol == "honest":
            generator = torch.Generator().manual_seed(10_000 + seed)
            _, held = validation_split(
                sets.real_train.images.labels,
                self.config.validation_fraction,
                generator,
                groups=sets.real_train.groups,
            )
            chosen = honest_sets(sets, condition, torch.unique(sets.real_train.groups[held]))
            test_ids: torch.Tensor | None = chosen.test.ids  # aggregate patches per real image
        else:
            chosen = paper_sets(paper_pool(sets, condition), seed, self.config.test_fraction)
            test_ids = None  # the paper's unit: every pooled image on its own
        start = time.perf_counter()
        result = train_classifier(
            chosen.train.images, config, validation_set=chosen.validation.images
        )
        predictions = evaluate_images(result.model, chosen.test.images, image_ids=test_ids)
        report = classification_report(
            predictions.labels.numpy(), predictions.probabilities.numpy(), predictions.class_names
        )
        if protocol == "honest" and condition == "original" and seed == 0:
            torch.save(result.model.state_dict(), self.folder / "reference-classifier.pt")
        summary = report.summary()
        self.log(
            f"  {protocol}/{condition} seed {seed}: accuracy {report.accuracy:.3f}, "
            f"balanced {report.balanced_accuracy:.3f} on {report.n_images} test images "
            f"({len(chosen.train.images)} training inputs, {time.perf_counter() - start:.0f} s)"
        )
        return {
            "protocol": protocol,
            "condition": condition,
            "seed": seed,
            "train_inputs": len(chosen.train.images),
            "test_images": report.n_images,
            "summary": summary,
            "confusion_matrix": report.confusion_matrix,
            "roc": _roc_json(report),
            "curves": _curves_json(result),
            "best_epoch": result.best_epoch,
            "seconds": round(time.perf_counter() - start, 2),
            "config": dataclasses.asdict(config),
        }

    # ------------------------------------------------------------------ 8 synthesis quality

    def _stage_quality(self) -> dict[str, Any]:
        sets = self._sets()
        if sets.synthetic is None:
            return {"skipped": "no GAN images"}
        from pathsynth.classify.networks import build_classifier

        config = classifier_config(
            self.config.classifier_preset, **{**self.config.classifier_overrides, "device": "cpu"}
        )
        model = build_classifier(config, len(sets.real_train.images.class_names))
        reference = self.folder / "reference-classifier.pt"
        if not reference.exists():
            return {"skipped": "no honest/original classifier to take features from"}
        model.load_state_dict(torch.load(reference, weights_only=True))
        extractor = ClassifierFeatures(model)
        real = sets.real_train.images.images
        synthetic = sets.synthetic.images.images
        real_features = extractor(real)
        synthetic_features = extractor(synthetic)
        numbers = synthesis_quality(
            real_features, synthetic_features, generator=torch.Generator().manual_seed(0)
        )
        memorised = memorisation_check(
            synthetic, real, synthetic_features=synthetic_features, real_features=real_features
        )
        quality: dict[str, Any] = {
            "feature_extractor": "penultimate layer of the honest/original seed-0 classifier "
            "(trained on the real training fold)",
            **numbers,
        }
        if self.config.inception_weights:
            inception = InceptionFeatures(self.config.inception_weights, device=self.device)
            standard = synthesis_quality(
                inception(real), inception(synthetic), names=("kid", "fd"),
                generator=torch.Generator().manual_seed(0),
            )  # fmt: skip
            quality.update({f"inception_{name}": value for name, value in standard.items()})
        memorisation = {
            "threshold_ratio": memorised.near_copy_ratio,
            "flagged": memorised.n_near_copies,
            "total": len(synthetic),
            "pixel": _neighbours_json(memorised.pixel),
            "feature": _neighbours_json(memorised.feature) if memorised.feature else None,
        }
        _write_json(
            self.folder / "quality.json", {"quality": quality, "memorisation": memorisation}
        )
        return {"flagged": memorised.n_near_copies}

    # ------------------------------------------------------------------ 9 results

    def _stage_results(self) -> dict[str, Any]:
        results = self.results()
        _write_json(self.folder / "results.json", results)
        self._write_examples()
        return {"conditions": len(results["conditions"])}

    def results(self) -> dict[str, Any]:
        """Every number of the experiment, in the report's schema."""
        conditions: dict[str, Any] = {}
        for protocol in self.config.protocols:
            for condition in self.config.conditions:
                runs = [
                    json.loads(self._run_path(protocol, condition, seed).read_text())
                    for seed in range(self.config.seeds)
                    if self._run_path(protocol, condition, seed).exists()
                ]
                if not runs:
                    continue
                conditions[f"{protocol}/{condition}"] = {
                    "protocol": protocol,
                    "train_on": condition,
                    "train_images": runs[0]["train_inputs"],
                    "per_seed": [
                        {
                            "seed": r["seed"],
                            **{m: r["summary"].get(m) for m in SUMMARY_METRICS},
                            "confusion_matrix": r["confusion_matrix"],
                            "roc": r["roc"],
                            "curves": r["curves"],
                        }
                        for r in runs
                    ],
                    "summary": {
                        m: _interval([r["summary"].get(m) for r in runs]) for m in SUMMARY_METRICS
                    },
                }
        quality_path = self.folder / "quality.json"
        quality = json.loads(quality_path.read_text()) if quality_path.exists() else {}
        split = self._outputs("split")
        licence, citation = LICENCES.get(
            self.source.resolve().name, ("see the source's README", "")
        )
        gan = self.state["stages"].get("gan", {}).get("outputs")
        return {
            "experiment": {
                "modality": self.modality,
                "source": str(self.source),
                "preset": self.config.preset,
                "protocols": list(self.config.protocols),
                "seeds": self.config.seeds,
                "classes": self._outputs("inputs")["class_names"],
                "created": _now(),
                "pathsynth_version": __version__,
                "name": self.name,
            },
            "data": {
                "source": str(self.source),
                "licence": licence,
                "citation": citation,
                "split": {
                    "name": self._split_name(),
                    "unit": split.get("unit"),
                    "test": self.config.test_fraction,
                    "val": 0.0,
                    "seed": self.config.split_seed,
                    "image_level": split.get("image_level"),
                },
                "counts": split.get("counts", {}),
            },
            "stages": [
                {"name": name, "seconds": record.get("seconds"), "status": record.get("status")}
                for name, record in self.state["stages"].items()
            ],
            "conditions": conditions,
            "comparisons": self._comparisons(conditions),
            "paper_reference": PAPER_REFERENCE,
            "synthesis_quality": quality.get("quality"),
            "memorisation": quality.get("memorisation"),
            "gan": {
                "run_dir": gan["run_dir"],
                "stats_jsonl": str(Path(gan["run_dir"]) / "stats.jsonl"),
                "seconds": self.state["stages"]["gan"].get("seconds"),
            }
            if gan
            else None,
            "configs": {
                "gan": self._gan_config().to_dict(),
                "classifier": dataclasses.asdict(
                    classifier_config(
                        self.config.classifier_preset, **self.config.classifier_overrides
                    )
                ),
                "affine": self.config.affine.as_dict(),
                "preprocess": self.config.preprocess.as_dict(),
                "experiment": self.config.to_dict(),
            },
            "examples": {
                "affine": "examples/affine.npz",
                "real_vs_synthetic": "examples/real_vs_synthetic.npz",
            },
        }

    def _comparisons(self, conditions: dict[str, Any]) -> list[dict[str, Any]]:
        comparisons = []
        for protocol in self.config.protocols:
            base = conditions.get(f"{protocol}/original")
            if base is None:
                continue
            for condition in self.config.conditions[1:]:
                other = conditions.get(f"{protocol}/{condition}")
                if other is None:
                    continue
                for metric in ("accuracy", "balanced_accuracy"):
                    a = [seed[metric] for seed in base["per_seed"]]
                    b = [seed[metric] for seed in other["per_seed"]]
                    if len(a) != len(b) or len(a) < 2 or None in a or None in b:
                        continue
                    paired = paired_comparison(a, b)
                    comparisons.append(
                        {
                            "protocol": protocol,
                            "a": "original",
                            "b": condition,
                            "metric": metric,
                            "difference": paired.difference.mean,
                            "difference_interval": [paired.difference.low, paired.difference.high],
                            "t_p_value": paired.t_p_value,
                            "wilcoxon_p_value": paired.wilcoxon_p_value,
                            "n": paired.n,
                        }
                    )
        return comparisons

    def _write_examples(self) -> None:
        sets = self._sets()
        folder = self.folder / "examples"
        folder.mkdir(exist_ok=True)
        if sets.affine_train is not None and len(sets.affine_train.images):
            # the four originals with the most children, each shown with up to five of them
            real_ids = sets.real_train.ids
            counts = torch.stack([(sets.affine_train.parents == i).sum() for i in real_ids])
            rows = torch.argsort(counts, descending=True, stable=True)[:4]
            per_row = int(min(5, int(counts[rows].min())))
            if per_row > 0:
                children = [
                    sets.affine_train.images.images[
                        torch.nonzero(sets.affine_train.parents == real_ids[row]).flatten()[
                            :per_row
                        ]
                    ]
                    for row in rows
                ]
                np.savez_compressed(
                    folder / "affine.npz",
                    originals=sets.real_train.images.images[rows].permute(0, 2, 3, 1).numpy(),
                    children=torch.stack(children).permute(0, 1, 3, 4, 2).numpy(),
                )
        if sets.synthetic is not None:
            arrays: dict[str, Any] = {}
            for i, name in enumerate(sets.real_train.images.class_names):
                real = sets.real_train.images.images[sets.real_train.images.labels == i][:8]
                fake = sets.synthetic.images.images[sets.synthetic.images.labels == i][:8]
                arrays[f"real_{name}"] = real.permute(0, 2, 3, 1).numpy()
                arrays[f"synthetic_{name}"] = fake.permute(0, 2, 3, 1).numpy()
            np.savez_compressed(folder / "real_vs_synthetic.npz", **arrays)


def _interval(values: list[float | None]) -> dict[str, Any] | None:
    """Mean and t-interval over seeds, the interval clipped to [0, 1] (every summary metric is a
    fraction; with few seeds the t-interval can reach past the possible range)."""
    if not values or any(v is None or not np.isfinite(v) for v in values):
        return None
    interval = dataclasses.asdict(
        mean_confidence_interval([float(v) for v in values if v is not None])
    )
    for end in ("low", "high"):
        if interval[end] is not None:
            interval[end] = min(1.0, max(0.0, interval[end]))
    return interval


def _roc_json(report: Any) -> dict[str, Any]:
    def curve(c: Any) -> dict[str, Any] | None:
        if c is None:
            return None
        return {"fpr": c.false_positive_rate, "tpr": c.true_positive_rate, "auc": c.auc}

    roc = {name: curve(c) for name, c in report.roc_per_class.items()}
    roc["micro"] = curve(report.roc_micro)
    roc["macro"] = curve(report.roc_macro)
    return roc


def _curves_json(result: Any) -> dict[str, list[float]]:
    history = result.history
    return {
        "epoch": [r.epoch for r in history],
        "train_loss": [r.train_loss for r in history],
        "val_loss": [r.validation_loss for r in history],
        "val_balanced_accuracy": [r.validation_balanced_accuracy for r in history],
    }


def _neighbours_json(neighbours: Any) -> dict[str, Any]:
    distances = neighbours.distance.double()
    return {
        "median_distance": float(distances.median()),
        "min_distance": float(distances.min()),
        "real_median_nn_distance": float(neighbours.real_median_distance),
    }


def affine_expansion(
    workspace: Path,
    originals: LabelledPart,
    affine: AffineConfig,
    preprocess: PreprocessConfig,
    per_class: int | None = None,
    total: int | None = None,
    seed: int = 0,
    run_name: str = "affine",
) -> LabelledPart:
    """Class-balanced affine children of ``originals``, stored in the catalog with their parents.

    Args:
        workspace: the workspace folder.
        originals: the real network inputs to expand (one fold only: children inherit it).
        affine: the parameter ranges.
        preprocess: how the inputs were made (recorded with each child).
        per_class: images per class after expansion, originals included.
        total: images over all classes after expansion (instead of ``per_class``).
        seed: seeds the plan and the parameters.
        run_name: the augmentation run's name in the catalog.

    Returns:
        The children, with their catalog ids, parents and patient groups.

    Raises:
        ConfigError: neither or both of ``per_class``/``total``, or a target below the originals.
    """
    names = originals.images.class_names
    labels = originals.images.labels
    counts = {name: int((labels == i).sum()) for i, name in enumerate(names)}
    plan = class_balanced_plan(counts, per_class=per_class, total=total, seed=seed)
    rows: list[int] = []
    for i, name in enumerate(names):
        members = torch.nonzero(labels == i).flatten().tolist()
        for member, count in zip(members, plan[name], strict=True):
            rows.extend([member] * count)
    source_rows = torch.tensor(rows, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    images, params = random_affine(originals.images.images[source_rows], affine, generator)
    child_number: dict[int, int] = {}
    children = []
    pixels = images.permute(0, 2, 3, 1).contiguous().numpy()
    for k, row in enumerate(rows):
        parent = int(originals.ids[row])
        number = child_number.get(parent, 0)
        child_number[parent] = number + 1
        children.append(
            AffineChild(
                parent_id=parent,
                index=number,
                png=encode_png(pixels[k]),
                params={**params[k], "input_row": row, "preprocess": preprocess.as_dict()},
            )
        )
    ids = store_affine(workspace, children, {"name": run_name, "config": affine.as_dict()})
    return LabelledPart(
        TensorImageSet(images, labels[source_rows], list(names)),
        torch.tensor(ids, dtype=torch.int64),
        originals.ids[source_rows],
        originals.groups[source_rows],
    )


def network_inputs(
    images: list[FoldImage], class_names: list[str], preprocess: PreprocessConfig, cache: Path
) -> LabelledPart:
    """Catalog images as preprocessed network inputs, each row tied to its image and patient.

    Raises:
        DataError: what :func:`~pathsynth.imaging.cache.load_preprocessed` refuses.
    """
    files = [(image.path, image.label) for image in images]
    tensors, index = load_preprocessed(files, class_names, preprocess, cache)
    ids = torch.tensor([image.image_id for image in images], dtype=torch.int64)[index]
    groups = torch.tensor([image.patient_id for image in images], dtype=torch.int64)[index]
    return LabelledPart(tensors, ids, ids.clone(), groups)
