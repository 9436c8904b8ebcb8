"""Read-only views of the catalog for browsing: patients -> studies -> images, filtered and paged.

A :class:`CatalogReader` keeps one engine open for a long-lived reader (the web app) and makes
every connection it hands out read-only at the database (SQLite ``query_only``, a read-only
session on MariaDB/MySQL and PostgreSQL), so nothing browsing does can change the catalog.
Patients and studies are shown by their pseudonymous codes only; ``images.source_path`` holds
codes too, so nothing here can reveal a source's file or folder names.

Image lists are paged by keyset (``id > after``, ``id < before``), never by offset, so any page
of 100,000 images costs one index range scan.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, event, func, select
from sqlalchemy.orm import Session

from pathsynth.catalog.db import Catalog
from pathsynth.catalog.models import (
    FOLDS,
    ORIGINS,
    Image,
    Patient,
    Run,
    SelectionScore,
    Split,
    SplitMember,
    Study,
    image_features,
    image_parents,
)
from pathsynth.imaging.features import FEATURE_NAMES

PAGE_SIZE = 60  # images per list page
CHOICES_TTL_S = 10.0  # how long the filter choices (labels, sources, splits) are reused


def make_read_only(engine: Engine) -> None:
    """Make every later connection of ``engine`` refuse writes, whatever the backend.

    Connections already pooled are dropped, so the next one is opened under the guard.
    """

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if engine.dialect.name == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        elif engine.dialect.name in ("mysql", "mariadb"):
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
        elif engine.dialect.name == "postgresql":
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.close()
        if engine.dialect.name == "postgresql":
            dbapi_connection.commit()

    engine.dispose()


@dataclass(frozen=True)
class ImageFilter:
    """Which images a list shows; every field empty means all images.

    Attributes:
        label: the class.
        origin: ``real``, ``affine`` or ``synthetic``.
        split: a split's name; with ``fold`` only that fold.
        fold: ``train``, ``val`` or ``test`` (needs ``split``).
        source: the source folder's name as ingest recorded it (a GAN run's name for its images).
        study: a study code.
        patient: a patient code.
    """

    label: str = ""
    origin: str = ""
    split: str = ""
    fold: str = ""
    source: str = ""
    study: str = ""
    patient: str = ""

    def as_query(self) -> dict[str, str]:
        """The non-empty fields, for a URL's query string."""
        return {key: value for key, value in self.__dict__.items() if value}


@dataclass(frozen=True)
class ImageSummary:
    """One row of an image list."""

    image_id: int
    label: str
    origin: str
    width: int
    height: int
    study_code: str
    patient_code: str
    source: str


@dataclass(frozen=True)
class ImagePage:
    """One page of an image list and where the neighbouring pages start.

    Attributes:
        images: the page's images, by id.
        total: how many images match the filter.
        next_after: the ``after`` of the next page, or None on the last page.
        prev_before: the ``before`` of the previous page, or None on the first page.
    """

    images: list[ImageSummary]
    total: int
    next_after: int | None
    prev_before: int | None


@dataclass(frozen=True)
class PatientSummary:
    """A patient by code, what kind of key the code stands for, and what is catalogued."""

    code: str
    key_kind: str
    age: int | None
    sex: str | None
    studies: int
    images: int


@dataclass(frozen=True)
class StudySummary:
    """A study by code, with its patient's code and image count."""

    code: str
    patient_code: str
    modality: str
    stain: str | None
    magnification: float | None
    pixel_size_um: float | None
    study_date: str | None
    source: str | None
    images: int


@dataclass(frozen=True)
class RelatedImage:
    """Another image named on an image's page (a parent or a child)."""

    image_id: int
    label: str
    origin: str


@dataclass(frozen=True)
class SelectionRow:
    """One generated image's selection scores and decision (see
    :class:`pathsynth.catalog.models.SelectionScore`)."""

    image_id: int
    confidence: float
    min_confidence: float
    distance: float
    max_distance: float
    copy_ratio: float
    near_copy: bool
    kept: bool
    reason: str


def selection_row(row: SelectionScore) -> SelectionRow:
    """The plain form of a stored :class:`~pathsynth.catalog.models.SelectionScore`."""
    return SelectionRow(
        row.image_id,
        row.confidence,
        row.min_confidence,
        row.distance,
        row.max_distance,
        row.copy_ratio,
        bool(row.near_copy),
        bool(row.kept),
        row.reason,
    )


@dataclass(frozen=True)
class ImageDetail:
    """Everything the catalog knows about one image, by codes only.

    Attributes:
        summary: the list row.
        sha256, bit_depth, channels, original_mode, original_format, created_at: the file.
        features: the features computed at ingest or generation, by name.
        parents: affine parents.
        children: affine children (at most 24 shown) and ``children_total``.
        transform: affine parameters, or a generated image's index.
        run: the run that made it (``kind``, ``name``), or None for a real image.
        checkpoint_step, seed: a generated image's checkpoint step and noise seed.
        splits: ``(split name, fold)`` of every split holding it.
        selections: ``(selection name, scores)`` of every selection that scored it (generated
            images of an experiment with selective synthesis).
    """

    summary: ImageSummary
    sha256: str
    bit_depth: int
    channels: int
    original_mode: str
    original_format: str
    created_at: str
    features: dict[str, float]
    parents: list[RelatedImage]
    children: list[RelatedImage]
    children_total: int
    transform: dict[str, Any] | None
    run: dict[str, str] | None
    checkpoint_step: int | None
    seed: int | None
    splits: list[tuple[str, str]]
    selections: list[tuple[str, SelectionRow]] = field(default_factory=list)


@dataclass(frozen=True)
class FilterChoices:
    """The values each image filter offers."""

    labels: list[str]
    origins: list[str]
    sources: list[str]
    splits: list[str]
    folds: list[str] = field(default_factory=lambda: list(FOLDS))


@dataclass(frozen=True)
class CatalogCounts:
    """Images per (class, origin), for the overview charts."""

    by_class_origin: dict[tuple[str, str], int]
    patients: int
    studies: int

    def per(self, axis: int) -> dict[str, int]:
        """Images per class (``axis`` 0; unlabelled images as ``unlabelled``) or per origin
        (``axis`` 1)."""
        totals: dict[str, int] = {}
        for key, count in self.by_class_origin.items():
            name = key[axis] or "unlabelled"
            totals[name] = totals.get(name, 0) + count
        return dict(sorted(totals.items()))


class CatalogReader:
    """Read-only queries for the web app, on one long-lived, write-refusing engine.

    Args:
        catalog: an open catalog (already migrated); its engine is made read-only here, so give
            the reader a catalog of its own.
        store: the image store folder.
    """

    def __init__(self, catalog: Catalog, store: Path) -> None:
        self.catalog = catalog
        self.store = store
        make_read_only(catalog.engine)
        self._choices: tuple[float, FilterChoices] | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release the connections."""
        self.catalog.close()

    # -- the overview ------------------------------------------------------------------------

    def counts(self) -> CatalogCounts:
        """Images per class and origin, and the numbers of patients and studies."""
        with self.catalog.session() as session:
            rows = session.execute(
                select(Image.label, Image.origin, func.count()).group_by(Image.label, Image.origin)
            ).all()
            patients = session.scalar(
                select(func.count()).select_from(Patient).where(Patient.key_kind != "generator")
            )
            studies = session.scalar(select(func.count()).select_from(Study))
        return CatalogCounts(
            {(label, origin): int(n) for label, origin, n in rows},
            int(patients or 0),
            int(studies or 0),
        )

    def choices(self) -> FilterChoices:
        """The labels, origins, sources and splits present (reused for a few seconds); unlabelled
        images have no label to choose (origin ``unlabelled`` finds them)."""
        with self._lock:
            if self._choices is not None and time.monotonic() - self._choices[0] < CHOICES_TTL_S:
                return self._choices[1]
        with self.catalog.session() as session:
            labels = [
                label
                for label in session.scalars(select(Image.label).distinct().order_by(Image.label))
                if label
            ]
            sources = [
                s
                for s in session.scalars(select(Study.source).distinct().order_by(Study.source))
                if s
            ]
            splits = list(session.scalars(select(Split.name).order_by(Split.name)))
        made = FilterChoices(labels, list(ORIGINS), sources, splits)
        with self._lock:
            self._choices = (time.monotonic(), made)
        return made

    # -- images ------------------------------------------------------------------------------

    def images(
        self,
        wanted: ImageFilter,
        after: int | None = None,
        before: int | None = None,
        limit: int = PAGE_SIZE,
    ) -> ImagePage:
        """One page of the images matching ``wanted``, in id order.

        Args:
            wanted: the filter.
            after: show the images with ids above this one (the next page).
            before: show the images with ids below this one (the previous page); ignored when
                ``after`` is given.
            limit: images per page (1 to 500).

        Returns:
            The page; an unknown label, source, split or code simply matches nothing.
        """
        limit = max(1, min(limit, 500))
        columns = select(
            Image.id,
            Image.label,
            Image.origin,
            Image.width,
            Image.height,
            Study.code,
            Patient.code,
            Study.source,
        )
        base = self._filtered(columns, wanted)
        if after is not None:
            query = base.where(Image.id > after).order_by(Image.id).limit(limit + 1)
        elif before is not None:
            query = base.where(Image.id < before).order_by(Image.id.desc()).limit(limit + 1)
        else:
            query = base.order_by(Image.id).limit(limit + 1)
        with self.catalog.session() as session:
            rows = list(session.execute(query).all())
            total = session.scalar(self._filtered(select(func.count()), wanted, joined=False)) or 0
        more = len(rows) > limit
        rows = rows[:limit]
        if before is not None and after is None:
            rows.reverse()
        images = [ImageSummary(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] or "") for r in rows]
        if not images:
            return ImagePage([], int(total), None, None)
        going_back = before is not None and after is None
        has_next = more if not going_back else True
        has_prev = (after is not None) or (going_back and more)
        return ImagePage(
            images,
            int(total),
            images[-1].image_id if has_next else None,
            images[0].image_id if has_prev else None,
        )

    def _filtered(self, query: Any, wanted: ImageFilter, joined: bool = True) -> Any:
        """``query`` over images narrowed by ``wanted``; joined to their study and patient when
        ``joined`` (for their codes) or when the filter needs them (a count joins no more than
        it must: at 100,000 images the join is most of its cost)."""
        query = query.select_from(Image)
        if joined or wanted.source or wanted.study or wanted.patient:
            query = query.join(Study, Study.id == Image.study_id)
        if joined or wanted.patient:
            query = query.join(Patient, Patient.id == Study.patient_id)
        if wanted.label:
            query = query.where(Image.label == wanted.label)
        if wanted.origin:
            query = query.where(Image.origin == wanted.origin)
        if wanted.source:
            query = query.where(Study.source == wanted.source)
        if wanted.study:
            query = query.where(Study.code == wanted.study)
        if wanted.patient:
            query = query.where(Patient.code == wanted.patient)
        if wanted.split:
            member = and_(SplitMember.image_id == Image.id, SplitMember.split_id == Split.id)
            query = query.join(SplitMember, SplitMember.image_id == Image.id).join(Split, member)
            query = query.where(Split.name == wanted.split)
            if wanted.fold:
                query = query.where(SplitMember.fold == wanted.fold)
        return query

    def image(self, image_id: int) -> ImageDetail | None:
        """Everything about image ``image_id``, or None when there is no such image."""
        with self.catalog.session() as session:
            row = session.execute(
                select(Image, Study.code, Patient.code, Study.source)
                .join(Study, Study.id == Image.study_id)
                .join(Patient, Patient.id == Study.patient_id)
                .where(Image.id == image_id)
            ).first()
            if row is None:
                return None
            image, study_code, patient_code, source = row
            feature_row = session.execute(
                select(*(image_features.c[name] for name in FEATURE_NAMES)).where(
                    image_features.c.image_id == image_id
                )
            ).first()
            features = dict(zip(FEATURE_NAMES, feature_row, strict=True)) if feature_row else {}
            parents, children, children_total = _lineage(session, image_id)
            run = None
            if image.run_id is not None:
                run_row = session.execute(
                    select(Run.kind, Run.name).where(Run.id == image.run_id)
                ).first()
                if run_row is not None:
                    run = {"kind": run_row[0], "name": run_row[1]}
            splits, selections = _memberships(session, image_id)
        summary = ImageSummary(
            image.id,
            image.label,
            image.origin,
            image.width,
            image.height,
            study_code,
            patient_code,
            source or "",
        )
        return ImageDetail(
            summary=summary,
            sha256=image.sha256,
            bit_depth=image.bit_depth,
            channels=image.channels,
            original_mode=image.original_mode,
            original_format=image.original_format,
            created_at=str(image.created_at),
            features=features,
            parents=parents,
            children=children,
            children_total=int(children_total or 0),
            transform=image.transform,
            run=run,
            checkpoint_step=image.checkpoint_step,
            seed=image.seed,
            splits=splits,
            selections=selections,
        )

    def image_file(self, image_id: int) -> tuple[Path, str] | None:
        """The store file of image ``image_id`` and its SHA-256, or None when there is no such
        image. The path comes from the catalog row, never from the caller."""
        with self.catalog.session() as session:
            row = session.execute(
                select(Image.store_path, Image.sha256).where(Image.id == image_id)
            ).first()
        if row is None:
            return None
        return self.store / row[0], row[1]

    def image_source(self, image_id: int) -> tuple[Path, str, str, float | None] | None:
        """The store file of image ``image_id``, its SHA-256, origin and its study's micrometres
        per pixel, or None when there is no such image."""
        with self.catalog.session() as session:
            row = session.execute(
                select(Image.store_path, Image.sha256, Image.origin, Study.pixel_size_um)
                .join(Study, Study.id == Image.study_id)
                .where(Image.id == image_id)
            ).first()
        if row is None:
            return None
        return self.store / row[0], row[1], row[2], row[3]

    # -- patients and studies ----------------------------------------------------------------

    def patients(
        self, after: str | None = None, limit: int = 100, kind: str = ""
    ) -> tuple[list[PatientSummary], str | None]:
        """One page of patients by code (generator pseudo-patients only when ``kind`` asks).

        Returns:
            The patients and the ``after`` of the next page (None on the last page).
        """
        query = select(Patient.id, Patient.code, Patient.key_kind, Patient.age, Patient.sex)
        query = query.where(Patient.key_kind == kind if kind else Patient.key_kind != "generator")
        if after:
            query = query.where(Patient.code > after)
        query = query.order_by(Patient.code).limit(limit + 1)
        with self.catalog.session() as session:
            rows = session.execute(query).all()
            page = rows[:limit]
            ids = [row[0] for row in page]
            counts = {
                pid: (int(s), int(i))
                for pid, s, i in session.execute(
                    select(
                        Study.patient_id,
                        func.count(func.distinct(Study.id)),
                        func.count(Image.id),
                    )
                    .join(Image, Image.study_id == Study.id, isouter=True)
                    .where(Study.patient_id.in_(ids))
                    .group_by(Study.patient_id)
                )
            }
        patients = [
            PatientSummary(code, key_kind, age, sex, *counts.get(pid, (0, 0)))
            for pid, code, key_kind, age, sex in page
        ]
        return patients, (page[-1][1] if len(rows) > limit else None)

    def patient(self, code: str) -> tuple[PatientSummary, list[StudySummary]] | None:
        """A patient by code and their studies, or None when there is no such patient."""
        with self.catalog.session() as session:
            row = session.execute(
                select(Patient.id, Patient.code, Patient.key_kind, Patient.age, Patient.sex).where(
                    Patient.code == code
                )
            ).first()
            if row is None:
                return None
            studies = self._studies(session, Study.patient_id == row[0])
        patient = PatientSummary(
            row[1], row[2], row[3], row[4], len(studies), sum(s.images for s in studies)
        )
        return patient, studies

    def study(self, code: str) -> StudySummary | None:
        """A study by code, or None when there is no such study."""
        with self.catalog.session() as session:
            found = self._studies(session, Study.code == code)
        return found[0] if found else None

    @staticmethod
    def _studies(session: Any, where: Any) -> list[StudySummary]:
        rows = session.execute(
            select(
                Study.code,
                Patient.code,
                Study.modality,
                Study.stain,
                Study.magnification,
                Study.pixel_size_um,
                Study.study_date,
                Study.source,
                func.count(Image.id),
            )
            .join(Patient, Patient.id == Study.patient_id)
            .join(Image, Image.study_id == Study.id, isouter=True)
            .where(where)
            .group_by(
                Study.id,
                Study.code,
                Patient.code,
                Study.modality,
                Study.stain,
                Study.magnification,
                Study.pixel_size_um,
                Study.study_date,
                Study.source,
            )
            .order_by(Study.code)
        ).all()
        return [
            StudySummary(
                code,
                patient,
                modality,
                stain,
                magnification,
                pixel,
                str(date) if date else None,
                source,
                int(n),
            )
            for code, patient, modality, stain, magnification, pixel, date, source, n in rows
        ]

    def sample(self, wanted: ImageFilter, count: int) -> list[int]:
        """The ids of up to ``count`` images matching ``wanted``, spread evenly over the ids."""
        with self.catalog.session() as session:
            ids = list(session.scalars(self._filtered(select(Image.id), wanted).order_by(Image.id)))
        if len(ids) <= count:
            return ids
        step = len(ids) / count
        return [ids[int(i * step)] for i in range(count)]


def _lineage(
    session: Session, image_id: int
) -> tuple[list[RelatedImage], list[RelatedImage], int | None]:
    """An image's parents, its first 24 children and how many children it has."""
    link = image_parents.c

    def related(theirs: Any, ours: Any, limit: int | None) -> list[RelatedImage]:
        query = (
            select(Image.id, Image.label, Image.origin)
            .join(image_parents, theirs == Image.id)
            .where(ours == image_id)
            .order_by(Image.id)
            .limit(limit)
        )
        return [RelatedImage(*row) for row in session.execute(query)]

    children_total = session.scalar(select(func.count()).where(link.parent_id == image_id))
    return (
        related(link.parent_id, link.image_id, None),
        related(link.image_id, link.parent_id, 24),
        children_total,
    )


def _memberships(
    session: Session, image_id: int
) -> tuple[list[tuple[str, str]], list[tuple[str, SelectionRow]]]:
    """The splits (name, fold) an image is in, and its selection decisions."""
    splits = [
        (name, fold)
        for name, fold in session.execute(
            select(Split.name, SplitMember.fold)
            .join(SplitMember, SplitMember.split_id == Split.id)
            .where(SplitMember.image_id == image_id)
            .order_by(Split.name)
        )
    ]
    selections = [
        (row.selection, selection_row(row))
        for row in session.scalars(
            select(SelectionScore)
            .where(SelectionScore.image_id == image_id)
            .order_by(SelectionScore.selection)
        )
    ]
    return splits, selections
