"""Read-only views of the catalog: counts for ``pathsynth stats`` and the images of a fold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Row, Select, func, or_, select

from pathsynth.catalog.db import Catalog
from pathsynth.catalog.models import (
    FOLDS,
    UNLABELLED_ORIGIN,
    Image,
    ImageRun,
    Patient,
    Run,
    Split,
    SplitMember,
    Study,
)
from pathsynth.errors import SplitError


@dataclass(frozen=True)
class CatalogStats:
    """Image counts by (modality, class, origin), patients by key kind, and split fold counts.

    Attributes:
        images: ``(modality, label, origin) -> count``.
        patients: ``key kind -> count`` (patient, group or per-image pseudo-patient).
        studies: number of studies.
        splits: ``split name -> {(fold, label) -> count}``.
        split_units: ``split name -> unit`` it keeps whole.
    """

    images: dict[tuple[str, str, str], int]
    patients: dict[str, int]
    studies: int
    splits: dict[str, dict[tuple[str, str], int]]
    split_units: dict[str, str]

    @property
    def total_images(self) -> int:
        return sum(self.images.values())


def catalog_stats(catalog: Catalog) -> CatalogStats:
    """Count what the catalog holds."""
    with catalog.session() as session:
        images = {
            (modality, label, origin): count
            for modality, label, origin, count in session.execute(
                select(Study.modality, Image.label, Image.origin, func.count(Image.id))
                .join(Study, Image.study_id == Study.id)
                .group_by(Study.modality, Image.label, Image.origin)
            )
        }
        patients = {
            kind: count
            for kind, count in session.execute(
                select(Patient.key_kind, func.count(Patient.id)).group_by(Patient.key_kind)
            )
        }
        studies = session.scalar(select(func.count(Study.id))) or 0
        splits: dict[str, dict[tuple[str, str], int]] = {}
        units: dict[str, str] = {}
        for name, unit, fold, label, count in session.execute(
            select(Split.name, Split.unit, SplitMember.fold, Image.label, func.count())
            .join(SplitMember, SplitMember.split_id == Split.id)
            .join(Image, Image.id == SplitMember.image_id)
            .group_by(Split.name, Split.unit, SplitMember.fold, Image.label)
        ):
            splits.setdefault(name, {})[(fold, label)] = count
            units[name] = unit
    return CatalogStats(images, patients, studies, splits, units)


@dataclass(frozen=True)
class FoldImage:
    """One image of a split fold: its id, file in the store, label, origin, patient, hash and
    the pixel size of its study (micrometres per pixel; ``None`` when not recorded)."""

    image_id: int
    path: Path
    label: str
    origin: str
    patient_id: int
    sha256: str
    pixel_size_um: float | None = None


def fold_images(catalog: Catalog, store: Path, split: str, fold: str) -> list[FoldImage]:
    """The real images of one fold of a split, ordered by id.

    Raises:
        SplitError: the split does not exist or the fold name is unknown.
    """
    if fold not in FOLDS:
        raise SplitError(f"unknown fold {fold!r}; choose one of {', '.join(FOLDS)}")
    with catalog.session() as session:
        split_id = session.scalar(select(Split.id).where(Split.name == split))
        if split_id is None:
            names = session.scalars(select(Split.name).order_by(Split.name)).all()
            known = ", ".join(names) if names else "none yet; make one with `pathsynth split`"
            raise SplitError(f"no split named {split!r} (known: {known})")
        rows = session.execute(
            _image_rows()
            .join(SplitMember, SplitMember.image_id == Image.id)
            .where(SplitMember.split_id == split_id, SplitMember.fold == fold)
            .order_by(Image.id)
        ).all()
    return _fold_images(rows, store)


def source_images(catalog: Catalog, store: Path, modality: str, source: str) -> list[FoldImage]:
    """The real images of one ingested source (``source``: its folder's name), ordered by id."""
    with catalog.session() as session:
        rows = session.execute(
            _image_rows()
            .where(Image.origin == "real", Study.modality == modality, Study.source == source)
            .order_by(Image.id)
        ).all()
    return _fold_images(rows, store)


def every_image(catalog: Catalog, store: Path) -> list[FoldImage]:
    """Every image of the catalog (real, affine and synthetic), ordered by id."""
    with catalog.session() as session:
        rows = session.execute(_image_rows().order_by(Image.id)).all()
    return _fold_images(rows, store)


def unlabelled_rows(catalog: Catalog, store: Path) -> list[FoldImage]:
    """Every image ingested without a label (origin ``unlabelled``), ordered by id."""
    with catalog.session() as session:
        query = _image_rows().where(Image.origin == UNLABELLED_ORIGIN).order_by(Image.id)
        rows = session.execute(query).all()
    return _fold_images(rows, store)


def generated_by(catalog: Catalog, store: Path, run_id: str) -> list[FoldImage]:
    """The images a generator run made (``run_id``: its unique id from ``run.json``), ordered by
    id, those first stored by another run that drew the same pixels included; empty when the
    catalog holds none."""
    with catalog.session() as session:
        runs = [
            row_id
            for row_id, metrics in session.execute(select(Run.id, Run.metrics))
            if isinstance(metrics, dict) and metrics.get("run_id") == run_id
        ]
        linked = select(ImageRun.image_id).where(ImageRun.run_id.in_(runs))
        query = (
            _image_rows()
            .where(Image.origin == "synthetic", or_(Image.run_id.in_(runs), Image.id.in_(linked)))
            .order_by(Image.id)
        )
        rows = session.execute(query).all()
    return _fold_images(rows, store)


_Row = Row[int, str, str, str, int, str, float | None]


def _fold_images(rows: Sequence[_Row], store: Path) -> list[FoldImage]:
    return [
        FoldImage(image_id, store / path, label, origin, patient_id, digest, pixel_size)
        for image_id, path, label, origin, patient_id, digest, pixel_size in rows
    ]


def _image_rows() -> Select[int, str, str, str, int, str, float | None]:
    """The columns of a :class:`FoldImage`, images joined to their studies."""
    return select(
        Image.id,
        Image.store_path,
        Image.label,
        Image.origin,
        Study.patient_id,
        Image.sha256,
        Study.pixel_size_um,
    ).join(Study, Study.id == Image.study_id)
