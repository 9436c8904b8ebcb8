"""The real-data stages: ``ingest`` the source, ``split`` its real images, make the ``inputs``."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch

from pathsynth.catalog.api import (
    FoldImage,
    create_cv_splits,
    create_split,
    find_split,
    patient_key_kinds,
    source_fold,
    source_labels,
    split_fold,
)
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.splits import SplitRequest
from pathsynth.errors import DataError
from pathsynth.experiment.context import StageContext, real_split_name, save_tensors
from pathsynth.experiment.protocols import LabelledPart
from pathsynth.imaging.cache import load_preprocessed
from pathsynth.imaging.patches import PreprocessConfig
from pathsynth.imaging.stain import (
    StainReference,
    fit_stain_reference,
    normalise_stain,
    stain_reference_from_plain,
)


def ingest(context: StageContext) -> dict[str, Any]:
    """The source, and the external test set if there is one, into the catalog (idempotent);
    refusals are logged and recorded.

    Raises:
        DataError: an external test folder that is the source.
    """
    outputs = {"source": _ingest(context, context.source, context.config.source_pixel_size_um)}
    external = external_folder(context)
    if external is not None:
        if external.resolve() == context.source.resolve():
            raise DataError(f"the external test set {external} is the source itself")
        outputs["external"] = _ingest(
            context, external, context.config.external_pixel_size_um, external_source_name(context)
        )
    return outputs


def external_folder(context: StageContext) -> Path | None:
    """The external test set's folder, if the experiment has one."""
    return Path(context.config.external_test) if context.config.external_test else None


def external_source_name(context: StageContext) -> str:
    """The name the catalog knows the external test set by: its folder's name, or, when that is
    the source's (a lab's ``site2/bach`` beside ``site1/bach``), ``<parent>-<name>`` (with a
    digest of its path where the parents' names agree too).

    Raises:
        DataError: the experiment has no external test set.
    """
    external = external_folder(context)
    if external is None:
        raise DataError(f"experiment {context.name!r} has no external test set")
    folder, source = external.resolve(), context.source.resolve()
    if folder.name != source.name:
        return folder.name
    if folder.parent.name != source.parent.name:
        return f"{folder.parent.name}-{folder.name}"
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    return f"{folder.parent.name}-{folder.name}-{digest}"


def _ingest(
    context: StageContext, folder: Path, pixel_size_um: float | None, name: str | None = None
) -> dict[str, Any]:
    options = IngestOptions(
        modality=context.config.modality, pixel_size_um=pixel_size_um, source_name=name
    )
    report = ingest_source(context.workspace, folder, options)
    for refusal in report.refused:
        context.log(f"  refused {refusal.path}: {refusal.reason}")
    return {
        "added": report.added_total,
        "already_present": report.already_present,
        "refused": [dataclasses.asdict(r) for r in report.refused],
    }


def split(context: StageContext) -> dict[str, Any]:
    """The real images stratified 7:3 (or dealt to K folds), keeping patients or slide groups
    whole where known.

    Raises:
        DataError: unknown classes, or a split of this name in the catalog that was made with
            other settings (an earlier experiment of this name).
    """
    source = context.source.resolve().name
    existing = find_split(context.workspace, context.split_name)
    if existing is not None:  # made by an earlier, killed run of this stage (or by fold 0)
        _check_same_split(context, existing.params, source)
        return {
            "unit": existing.unit,
            "image_level": existing.image_level,
            "counts": existing.counts,
        }
    if context.state.classes:
        known = source_labels(context.workspace, context.config.modality, source)
        unknown = sorted(set(context.state.classes) - known)
        if unknown:
            raise DataError(
                f"class(es) {', '.join(unknown)} are not in {source}; its classes: "
                f"{', '.join(sorted(known))}"
            )
    kinds = patient_key_kinds(context.workspace, context.config.modality, source)
    unit = "patient" if kinds & {"patient", "group"} else "image"
    request = SplitRequest(
        name=real_split_name(context.state.parent or context.name),
        unit=unit,
        test=context.config.test_fraction,
        seed=context.config.split_seed,
        modality=context.config.modality,
        classes=tuple(context.state.classes) if context.state.classes else None,
        source=source,  # never another source of the workspace (an external test set included)
    )
    if context.state.parent is not None:  # the first fold makes every fold's split
        create_cv_splits(context.workspace, request, context.config.folds)
        made = find_split(context.workspace, context.split_name)
        assert made is not None
    else:
        made = create_split(context.workspace, request)
    context.log(
        f"  split by {unit}: {sum(made.counts['train'].values())} train, "
        f"{sum(made.counts['test'].values())} test real images"
    )
    return {"unit": unit, "image_level": made.image_level, "counts": made.counts}


def _check_same_split(context: StageContext, params: dict[str, Any], source: str) -> None:
    classes = list(context.state.classes) if context.state.classes else None
    folds = context.config.folds if context.state.parent is not None else None
    wanted: dict[str, Any] = {
        "seed": context.config.split_seed,
        "classes": classes,
        "source": source,
        "modality": context.config.modality,
        "cross_validation": {"folds": folds, "fold": context.config.fold} if folds else None,
    }
    if folds is None:
        wanted["test"] = context.config.test_fraction
    found = {key: params.get(key) for key in wanted}
    if found != wanted:
        differ = sorted(key for key in wanted if found[key] != wanted[key])
        raise DataError(
            f"the catalog already holds a split {context.split_name!r} made with other settings "
            f"({', '.join(differ)}); use another --name for this experiment"
        )


def inputs(context: StageContext) -> dict[str, Any]:
    """Both folds preprocessed to network inputs (cached), each row tied to its image."""
    folds = {
        fold: split_fold(context.workspace, context.split_name, fold) for fold in ("train", "test")
    }
    class_names = sorted({image.label for image in folds["train"]})
    cache = context.workspace.root / "cache"
    parts = {
        fold: network_inputs(images, class_names, context.config.preprocess, cache)
        for fold, images in folds.items()
    }
    outputs: dict[str, Any] = {}
    external = external_folder(context)
    if external is not None:
        images = external_images(context, external, class_names, outputs)
        parts["external"] = network_inputs(images, class_names, context.config.preprocess, cache)
        folds["external"] = images
        _check_patients_apart(parts)
    if context.config.stain_normalisation != "none":
        outputs["stain_reference"] = _normalise(context, parts)
    save_tensors(context.paths.inputs, {fold: part.to_state() for fold, part in parts.items()})
    return {
        "class_names": class_names,
        "rows": {fold: len(part.images) for fold, part in parts.items()},
        "images": {fold: len(images) for fold, images in folds.items()},
        **outputs,
    }


def _normalise(context: StageContext, parts: dict[str, LabelledPart]) -> dict[str, Any]:
    """Every part's inputs mapped to a stain reference fitted on the training fold alone; returns
    the reference as plain data (recorded, and kept in every classifier bundle)."""
    train = parts["train"].images.images
    reference = fit_stain_reference(
        train, context.config.stain_normalisation, seed=context.config.split_seed
    )
    for part in parts.values():
        images = part.images.images
        part.images.images = torch.cat(
            [normalise_stain(images[i : i + 256], reference) for i in range(0, len(images), 256)]
        )
    context.log(f"  {reference.method} stain reference fitted on {len(train)} training inputs")
    return reference.to_plain()


def stain_reference(context: StageContext) -> StainReference | None:
    """The experiment's stain reference, if its inputs were normalised."""
    plain = context.state.outputs("inputs").get("stain_reference")
    return stain_reference_from_plain(plain) if plain else None


def _check_patients_apart(parts: dict[str, LabelledPart]) -> None:
    """Refuse an external test set that shares patients with the source, before anything trains.

    Raises:
        DataError: patients (or slide groups) on both sides, with what to do.
    """
    external = set(parts["external"].groups.tolist())
    shared = external & set(torch.cat([parts["train"].groups, parts["test"].groups]).tolist())
    if shared:
        raise DataError(
            f"the external test set shares {len(shared)} patient(s)/group(s) with the source "
            "(the same patient or group keys): a patient's images must not be on both sides; if "
            "they are other people, give them other ids in the external set"
        )


def external_images(
    context: StageContext, folder: Path, class_names: list[str], outputs: dict[str, Any]
) -> list[FoldImage]:
    """The external test set's images of the experiment's classes; the others are counted in
    ``outputs["external_other_classes"]`` and logged.

    Raises:
        DataError: no external image of the experiment's classes.
    """
    images = source_fold(context.workspace, context.config.modality, external_source_name(context))
    other: dict[str, int] = {}
    for image in images:
        if image.label not in class_names:
            other[image.label] = other.get(image.label, 0) + 1
    if other:
        context.log(f"  external test set: left out classes the classifiers do not know: {other}")
    kept = [image for image in images if image.label in class_names]
    if not kept:
        raise DataError(
            f"the external test set {folder} has no image of the classes {', '.join(class_names)}"
        )
    outputs["external_other_classes"] = other
    return kept


def network_inputs(
    images: list[FoldImage], class_names: list[str], preprocess: PreprocessConfig, cache: Path
) -> LabelledPart:
    """Catalog images as preprocessed network inputs, each row tied to its image and patient.

    Raises:
        DataError: images without a recorded pixel size when the inputs need one, or what
            :func:`~pathsynth.imaging.cache.load_preprocessed` refuses.
    """
    files = [(image.path, image.label) for image in images]
    sizes = [image.pixel_size_um for image in images]
    unknown = sum(size is None for size in sizes)
    if preprocess.needs_pixel_size and unknown:
        raise DataError(
            f"{unknown} of {len(images)} images have no recorded pixel size, which the inputs at "
            f"{preprocess.pixel_size_um} um/px need: pass --pixel-size UM to reproduce (it is "
            "recorded for the source), add a pixel_size_um column to its labels CSV, or set "
            "preprocess.pixel_size_um=0 to shrink by preprocess.scale"
        )
    tensors, index = load_preprocessed(files, class_names, preprocess, cache, pixel_sizes=sizes)
    ids = torch.tensor([image.image_id for image in images], dtype=torch.int64)[index]
    groups = torch.tensor([image.patient_id for image in images], dtype=torch.int64)[index]
    return LabelledPart(tensors, ids, ids.clone(), groups)
