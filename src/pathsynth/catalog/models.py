"""The catalog's tables, as SQLAlchemy 2 models.

The layout follows the reference database (BPCI2100): patients, their studies, and the images of
each study with their features, plus what pathsynth adds: image lineage (affine children and
synthetic images), named splits and runs. Column types are chosen to work unchanged on SQLite,
MariaDB/MySQL and PostgreSQL (bounded strings for every indexed text column, JSON for free-form
parameters). Schema changes go through Alembic migrations in ``catalog/migrations``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from pathsynth.imaging.features import FEATURE_NAMES

MODALITIES = ("histology", "cytology")
# ``unlabelled``: real images ingested with ``ingest --unlabelled`` for self-supervised
# pretraining (label ""); every query that splits, exports or trains classifiers asks for "real"
# images, so none of them ever takes one (migration 0005).
UNLABELLED_ORIGIN = "unlabelled"
ORIGINS = ("real", "affine", "synthetic", UNLABELLED_ORIGIN)
FOLDS = ("train", "val", "test")
# What a patient row's key stood for in the source: a real patient identifier, a slide/group
# identifier used in its place, nothing known (one pseudo-patient per image), or a GAN run (the
# "patient" of synthetic images, which have none).
PATIENT_KEY_KINDS = ("patient", "group", "image", "generator")
RUN_STATUSES = ("running", "finished", "failed")


def too_long(model: type[Base], values: dict[str, Any]) -> str | None:
    """Why one of ``values`` does not fit its bounded string column of ``model``, or None.

    Checked before insert, so that one long value is reported with its field instead of failing a
    whole transaction (MariaDB in strict mode) or being cut short (other modes).
    """
    columns = model.__table__.columns
    for name, value in values.items():
        length = getattr(columns[name].type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            return f"{name} {value[:20]!r}... is {len(value)} characters long; at most {length}"
    return None


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    listed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({listed})", name=f"{column}_allowed")


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


class Patient(Base):
    """A patient, known only by a pseudonymous code (a salted hash of the source identifier)."""

    __tablename__ = "patients"
    __table_args__ = (_one_of("key_kind", PATIENT_KEY_KINDS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    key_kind: Mapped[str] = mapped_column(String(16))
    age: Mapped[int | None]
    sex: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())

    studies: Mapped[list[Study]] = relationship(back_populates="patient")


class Study(Base):
    """One study (examination) of a patient: a modality, stain and scale shared by its images."""

    __tablename__ = "studies"
    __table_args__ = (_one_of("modality", MODALITIES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    stain: Mapped[str | None] = mapped_column(String(64))
    magnification: Mapped[float | None]
    pixel_size_um: Mapped[float | None]
    study_date: Mapped[dt.date | None] = mapped_column(Date)
    source: Mapped[str | None] = mapped_column(String(255))

    patient: Mapped[Patient] = relationship(back_populates="studies")
    images: Mapped[list[Image]] = relationship(back_populates="study")


image_parents = Table(
    "image_parents",
    Base.metadata,
    Column("image_id", ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("parent_id", ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
)


class Image(Base):
    """One image file in the store, its pixel format, label and provenance.

    Real images carry their source path; ``affine`` images their parent(s) and transform
    parameters; ``synthetic`` images the generator run, checkpoint step, seed and class.
    """

    __tablename__ = "images"
    __table_args__ = (_one_of("origin", ORIGINS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    store_path: Mapped[str] = mapped_column(String(512), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    width: Mapped[int]
    height: Mapped[int]
    channels: Mapped[int]
    bit_depth: Mapped[int]
    original_mode: Mapped[str] = mapped_column(String(16))
    original_format: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(64), index=True)
    origin: Mapped[str] = mapped_column(String(16), index=True)
    source_path: Mapped[str | None] = mapped_column(String(1024))
    transform: Mapped[dict[str, Any] | None]
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    checkpoint_step: Mapped[int | None]
    seed: Mapped[int | None]
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())

    study: Mapped[Study] = relationship(back_populates="images")
    parents: Mapped[list[Image]] = relationship(
        secondary=image_parents,
        primaryjoin=lambda: Image.id == image_parents.c.image_id,
        secondaryjoin=lambda: Image.id == image_parents.c.parent_id,
    )


image_features = Table(
    "image_features",
    Base.metadata,
    Column("image_id", ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    *(Column(name, Float, nullable=False) for name in FEATURE_NAMES),
)


class Split(Base):
    """A named assignment of images to folds, with how it was made."""

    __tablename__ = "splits"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    unit: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())

    members: Mapped[list[SplitMember]] = relationship(
        back_populates="split", cascade="all, delete-orphan"
    )


class SplitMember(Base):
    """Which fold of a split one image is in."""

    __tablename__ = "split_members"
    __table_args__ = (_one_of("fold", FOLDS),)

    split_id: Mapped[int] = mapped_column(
        ForeignKey("splits.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    fold: Mapped[str] = mapped_column(String(8))

    split: Mapped[Split] = relationship(back_populates="members")


class Run(Base):
    """A piece of work whose outputs enter the catalog (GAN training, generation, augmentation)."""

    __tablename__ = "runs"
    __table_args__ = (
        _one_of("status", RUN_STATUSES),
        UniqueConstraint("kind", "name", name="kind_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    config: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class ImageRun(Base):
    """Every generator run that made an image (migration 0007). An image is stored once by its
    content; a later run that draws the very same pixels (the same seed of the same network) is
    linked here, so that it too finds the images it made. ``images.run_id`` keeps the first."""

    __tablename__ = "image_runs"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True, index=True)


# The visual Turing test (migration 0003): the only tables the web app writes.
TURING_TRUTHS = ("real", "synthetic")


class TuringTest(Base):
    """A blinded real-versus-synthetic test: a fixed set of items shown to several raters.

    ``params`` records how the items were chosen (experiment, split and fold of the real images,
    generator run, images per class, display size, seed).
    """

    __tablename__ = "turing_tests"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    params: Mapped[dict[str, Any]]
    classes: Mapped[dict[str, Any]]  # {"names": [...]}: the choices offered to raters
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())


class TuringRater(Base):
    """One rater of one test. Only the SHA-256 of the rater's secret token is stored; the token
    itself is shown once, when the rater is added. ``order_seed`` shuffles the items for them."""

    __tablename__ = "turing_raters"
    __table_args__ = (UniqueConstraint("test_id", "name", name="test_rater_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(
        ForeignKey("turing_tests.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    order_seed: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())


class TuringItem(Base):
    """One image of a test under an opaque id; its re-encoded file lives under the workspace's
    ``turing/<test id>/`` folder, named by that id."""

    __tablename__ = "turing_items"
    __table_args__ = (_one_of("truth", TURING_TRUTHS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(
        ForeignKey("turing_tests.id", ondelete="CASCADE"), index=True
    )
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    truth: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(64))


class TuringAnswer(Base):
    """One rater's call on one item: real or synthetic, optionally the class and a confidence
    (1-5). A rater answers each item once; a second answer replaces the first."""

    __tablename__ = "turing_answers"
    __table_args__ = (
        _one_of("called", TURING_TRUTHS),
        CheckConstraint(
            "confidence IS NULL OR (confidence >= 1 AND confidence <= 5)",
            name="confidence_range",
        ),
    )

    rater_id: Mapped[int] = mapped_column(
        ForeignKey("turing_raters.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("turing_items.id", ondelete="CASCADE"), primary_key=True
    )
    called: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[int | None]
    answered_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())


# Embeddings (migration 0004): one feature vector per image content, backbone and preprocessing.
EMBEDDING_DTYPES = ("float32", "float16", "bfloat16")


class Embedding(Base):
    """One image's feature vector from one backbone, computed once and reused.

    Keyed by what decides the vector: the image's content (``image_sha256``, not its row, so a
    changed file gets a new vector and identical files share one), the backbone's architecture
    and the hash of its loaded tensors, and the hash of the preprocessing (config, input size and
    normalisation, aggregation). The vector is a blob of ``dim`` little-endian numbers of
    ``dtype``: a few KiB per image (512-1536 floats), read a fold at a time in one query and
    written in the same transaction as its key, so a killed run leaves no vector without its row
    or the reverse (files in the store would add thousands of tiny files and that second
    consistency problem). ``run_id`` names the ``embed`` run whose config records the method.
    """

    __tablename__ = "embeddings"
    __table_args__ = (
        _one_of("dtype", EMBEDDING_DTYPES),
        UniqueConstraint(
            "image_sha256", "backbone", "weights_sha256", "preprocess_sha256", name="embedding_key"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    backbone: Mapped[str] = mapped_column(String(128))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    preprocess_sha256: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[int]  # network inputs (patches) averaged into the vector
    dtype: Mapped[str] = mapped_column(String(16))
    dim: Mapped[int]
    vector: Mapped[bytes] = mapped_column(LargeBinary(length=2**24))  # MEDIUMBLOB on MariaDB
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())


# Selective synthesis (migration 0005): each generated image's scores and keep/reject decision.
class SelectionScore(Base):
    """One generated image's selection scores under one selection (an experiment's ``select``
    stage, named in ``selection``) and whether it was kept.

    The criteria come from that experiment's real training fold only; the thresholds are the
    image's class's. ``run_id`` names the ``select`` run whose config records the settings and
    the per-class thresholds and kept fractions.
    """

    __tablename__ = "selection_scores"
    __table_args__ = (UniqueConstraint("image_id", "selection", name="selection_image"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    selection: Mapped[str] = mapped_column(String(128), index=True)
    confidence: Mapped[float] = mapped_column(Float)  # real-trained classifier, intended class
    min_confidence: Mapped[float] = mapped_column(Float)  # the class's threshold
    distance: Mapped[float] = mapped_column(Float)  # to the class's nearest real images
    max_distance: Mapped[float] = mapped_column(Float)  # the class's threshold
    copy_ratio: Mapped[float] = mapped_column(Float)  # memorisation: nearest real / real median
    near_copy: Mapped[bool]
    kept: Mapped[bool]
    reason: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())
