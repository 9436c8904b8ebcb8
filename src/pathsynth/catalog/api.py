"""The catalog facade: everything the later stages ask of the catalog, one calling convention.

Every function takes the :class:`~pathsynth.catalog.workspace.Workspace` first and opens (and
closes) its catalog itself, so nothing above this package imports the models or SQLAlchemy. The
GAN and classifier stages never import the database layer at module level; the experiment and the
CLI import these functions where a workspace is named.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from pathsynth.catalog.audit import audit_split, audit_to_plain
from pathsynth.catalog.browse import CatalogReader, ImageFilter, SelectionRow, selection_row
from pathsynth.catalog.db import Catalog
from pathsynth.catalog.models import (
    EMBEDDING_DTYPES,
    Embedding,
    Image,
    ImageRun,
    Patient,
    Run,
    SelectionScore,
    Split,
    SplitMember,
    Study,
    image_features,
    image_parents,
)
from pathsynth.catalog.queries import (
    FoldImage,
    every_image,
    fold_images,
    generated_by,
    source_images,
    unlabelled_rows,
)
from pathsynth.catalog.splits import SplitRequest, make_cv_splits, make_split
from pathsynth.catalog.store import sweep_orphans
from pathsynth.catalog.workspace import Workspace
from pathsynth.catalog.writer import BatchWriter
from pathsynth.errors import DataError
from pathsynth.files import label_folder
from pathsynth.imaging.decode import DecodedImage, decode_bytes
from pathsynth.imaging.features import compute_features

# Types of the catalog the later stages (the web app, the Turing test) name, re-exported here so
# that they import the facade only.
__all__ = [
    "CatalogReader",
    "EmbeddingKey",
    "FoldImage",
    "ImageFilter",
    "SelectionRow",
    "Workspace",
]


class GeneratedImageLike(Protocol):
    """One generated image as the GAN's sampler yields it (PNG already encoded)."""

    @property
    def class_name(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def png(self) -> bytes: ...

    # optional: ``sampling``, a mapping of how the image was sampled (a diffusion run's sampler,
    # steps and guidance), stored with it in its ``transform``


def open_workspace(root: Path) -> Workspace:
    """The workspace at ``root``.

    Raises:
        WorkspaceError: no workspace there.
    """
    return Workspace(root)


def split_fold(space: Workspace, split: str, fold: str) -> list[FoldImage]:
    """The images of one fold of a split, ordered by id, with their files and patients.

    Raises:
        CatalogUnavailable, SplitError: no database, no such split or fold.
    """
    with space.open_catalog() as catalog:
        return fold_images(catalog, space.store, split, fold)


def fold_files(space: Workspace, split: str, fold: str) -> list[tuple[Path, str]]:
    """The (image file, class label) pairs of one fold of a split, real images only.

    Raises:
        CatalogUnavailable, SplitError: no database, no such split or fold.
    """
    images = split_fold(space, split, fold)
    return [(image.path, image.label) for image in images if image.origin == "real"]


@dataclass(frozen=True)
class SplitSummary:
    """A stored split: what it keeps whole, how it was made and its per-class counts per fold."""

    name: str
    unit: str
    params: dict[str, Any]
    counts: dict[str, dict[str, int]]
    image_level: bool


def patient_key_kinds(space: Workspace, modality: str, source: str) -> set[str]:
    """What the patient rows of a source's real images stand for (``patient``, ``group``,
    ``image``): a split can keep patients whole only where the catalog knows them.

    Args:
        space: the workspace.
        modality: the studies' modality.
        source: the source folder's name, as ingest recorded it.
    """
    with space.open_catalog() as catalog, catalog.session() as session:
        return set(
            session.scalars(
                select(Patient.key_kind)
                .join(Study, Study.patient_id == Patient.id)
                .where(Study.modality == modality, Study.source == source)
            )
        )


def source_fold(space: Workspace, modality: str, source: str) -> list[FoldImage]:
    """Every real image of one ingested source (``source``: its folder's name), ordered by id."""
    with space.open_catalog() as catalog:
        return source_images(catalog, space.store, modality, source)


def source_labels(space: Workspace, modality: str, source: str) -> set[str]:
    """The class labels of a source's real images (``source``: the folder name ingest recorded)."""
    with space.open_catalog() as catalog, catalog.session() as session:
        return set(
            session.scalars(
                select(Image.label)
                .join(Study, Study.id == Image.study_id)
                .where(Image.origin == "real", Study.modality == modality, Study.source == source)
                .distinct()
            )
        )


def find_split(space: Workspace, name: str) -> SplitSummary | None:
    """The stored split called ``name``, or ``None``."""
    with space.open_catalog() as catalog, catalog.session() as session:
        split = session.scalar(select(Split).where(Split.name == name))
        if split is None:
            return None
        rows = session.execute(
            select(SplitMember.fold, Image.label, func.count())
            .join(Image, Image.id == SplitMember.image_id)
            .where(SplitMember.split_id == split.id)
            .group_by(SplitMember.fold, Image.label)
        ).all()
        counts: dict[str, dict[str, int]] = {}
        for fold, label, count in rows:
            counts.setdefault(fold, {})[label] = int(count)
        image_level = bool(split.params.get("image_level", split.unit == "image"))
        return SplitSummary(split.name, split.unit, dict(split.params), counts, image_level)


def split_audit(space: Workspace, name: str) -> dict[str, Any]:
    """The leakage audit of a stored split's test fold against its training fold, JSON-able
    (see :mod:`pathsynth.catalog.audit`).

    Raises:
        CatalogUnavailable, SplitError: no database, no such split, or an empty fold.
    """
    with space.open_catalog() as catalog:
        return audit_to_plain(audit_split(catalog, name))


def create_cv_splits(space: Workspace, request: SplitRequest, folds: int) -> list[SplitSummary]:
    """Make and store patient-level K-fold splits (see :func:`make_cv_splits`).

    Raises:
        SplitError: what :func:`~pathsynth.catalog.splits.make_cv_splits` refuses.
    """
    with space.open_catalog() as catalog:
        names = make_cv_splits(catalog, request, folds)
    made = [find_split(space, name) for name in names]
    return [split for split in made if split is not None]


def create_split(space: Workspace, request: SplitRequest) -> SplitSummary:
    """Make and store a split of the catalog's real images (see :func:`make_split`).

    Raises:
        SplitError: what :func:`~pathsynth.catalog.splits.make_split` refuses.
    """
    with space.open_catalog() as catalog:
        make_split(catalog, request)
    made = find_split(space, request.name)
    assert made is not None  # just committed
    return made


@dataclass(frozen=True)
class AffineChild:
    """One affine-transformed copy of a catalogued real image.

    Attributes:
        parent_id: catalog id of the real image it was made from.
        index: its number among that parent's children.
        png: the encoded PNG file.
        params: the transform parameters (and the preprocessing that preceded them).
    """

    parent_id: int
    index: int
    png: bytes
    params: dict[str, Any]


_PENDING = -1  # id of an image written in this call but not yet committed


@dataclass(frozen=True)
class _Derived:
    """A derived image ready for the store: where it goes and what its row says."""

    png: bytes
    store_path: str
    study_id: int
    row: dict[str, Any]
    parent_ids: tuple[int, ...] = ()


def _store_derived(space: Workspace, catalog: Catalog, items: Iterable[_Derived]) -> list[int]:
    """Write derived images and their rows (with features and lineage); returns their ids.

    An image whose content is already catalogued is not written again; its existing id is
    returned in its place, so a rerun yields the same ids. Holds the workspace's write lock, so
    the sweep of files left by a killed run never removes another live run's files.
    """
    with space.write_lock():
        return _store_derived_locked(space, catalog, items)


def _derived_rows(
    session: Session, item: _Derived, decoded: DecodedImage, features: dict[str, float]
) -> None:
    """The catalog rows of one derived image: the image, its features and its parents."""
    image = Image(
        study_id=item.study_id,
        store_path=item.store_path,
        sha256=decoded.sha256,
        width=decoded.width,
        height=decoded.height,
        channels=decoded.channels,
        bit_depth=decoded.bit_depth,
        original_mode=decoded.original_mode,
        original_format=decoded.original_format,
        **item.row,
    )
    session.add(image)
    session.flush()
    session.execute(insert(image_features), [{"image_id": image.id, **features}])
    if item.parent_ids:
        session.execute(
            insert(image_parents),
            [{"image_id": image.id, "parent_id": p} for p in item.parent_ids],
        )


def _store_derived_locked(
    space: Workspace, catalog: Catalog, items: Iterable[_Derived]
) -> list[int]:
    with catalog.session() as session:
        known = {sha: image_id for sha, image_id in session.execute(select(Image.sha256, Image.id))}
        catalogued = set(session.scalars(select(Image.store_path)))
    sweep_orphans(space.store, catalogued)
    ids: list[int] = []
    pending: dict[int, str] = {}  # position in ids -> sha256, filled in once committed
    writer = BatchWriter(space.store, catalog.session)
    try:
        for item in items:
            decoded = decode_bytes(item.png)
            if decoded.sha256 in known:
                if known[decoded.sha256] == _PENDING:  # twice in this call: stored once
                    pending[len(ids)] = decoded.sha256
                ids.append(known[decoded.sha256])
                continue
            known[decoded.sha256] = _PENDING
            pending[len(ids)] = decoded.sha256
            ids.append(_PENDING)
            features = compute_features(decoded.rgb)

            rows = functools.partial(_derived_rows, item=item, decoded=decoded, features=features)
            writer.add(item.store_path, item.png, rows)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    if pending:
        with catalog.session() as session:
            found = {
                sha: image_id
                for sha, image_id in session.execute(
                    select(Image.sha256, Image.id).where(Image.sha256.in_(pending.values()))
                )
            }
        for position, sha in pending.items():
            ids[position] = found[sha]
    return ids


def store_affine(
    space: Workspace, children: Iterable[AffineChild], run: dict[str, Any]
) -> list[int]:
    """Store affine children beside their parents, origin ``affine``, with parameters and lineage.

    Each child goes to its parent's study folder as ``<parent stem>-aff<index>-<hash>.png``, its
    row names the parent (``image_parents``), the transform parameters and the run that made it.

    Args:
        space: the workspace.
        children: the children to store.
        run: ``name`` of the augmentation run and its ``config``.

    Returns:
        The catalog id of every child, in order (existing ids for children already stored).

    Raises:
        DataError: a parent id that is not a real image of the catalog.
    """
    with space.open_catalog() as catalog:
        with catalog.session() as session:
            run_id = _run_id(session, "augment", str(run["name"]), run.get("config") or {})
            parents = {
                image_id: (study_id, store_path, label)
                for image_id, study_id, store_path, label in session.execute(
                    select(Image.id, Image.study_id, Image.store_path, Image.label).where(
                        Image.origin == "real"
                    )
                )
            }

        def items() -> Iterator[_Derived]:
            for child in children:
                if child.parent_id not in parents:
                    raise DataError(f"image {child.parent_id} is not a real image of the catalog")
                study_id, parent_path, label = parents[child.parent_id]
                folder, name = parent_path.rsplit("/", 1)
                stem = name.rsplit(".", 1)[0]
                digest = sha256(child.png).hexdigest()[:8]
                yield _Derived(
                    png=child.png,
                    store_path=f"{folder}/{stem}-aff{child.index:04d}-{digest}.png",
                    study_id=study_id,
                    row={
                        "label": label,
                        "origin": "affine",
                        "transform": child.params,
                        "run_id": run_id,
                    },
                    parent_ids=(child.parent_id,),
                )

        return _store_derived(space, catalog, items())


def store_generated(
    space: Workspace, images: Iterable[GeneratedImageLike], run: dict[str, Any]
) -> int:
    """Store generated images in the catalog, origin ``synthetic``, with full provenance.

    Each image becomes ``store/<generator code>/<study code>/<class>-s<seed>-<index>.png`` and an
    image row naming the generator run, checkpoint step, seed and class, with its features. The
    run is keyed on its unique ``run_id`` (two runs in different folders with the same folder name
    are two runs). An image whose content is already catalogued (the same seed regenerated, or
    another run that draws the very same pixels) is not stored again, but is linked to this run
    too (:class:`~pathsynth.catalog.models.ImageRun`).

    Args:
        space: the workspace.
        images: the generated images.
        run: ``run_id``, ``run_name``, ``run_dir``, ``checkpoint_step``, ``config`` (resolved
            config), optionally ``kind`` (default ``gan``) and ``modality``; without a modality
            it is taken from the catalog if it holds only one.

    Returns:
        The number of images added.

    Raises:
        DataError: the modality cannot be told.
        CatalogUnavailable: the catalog cannot be reached.
    """
    return len(store_generated_ids(space, images, run)[1])


def store_generated_ids(
    space: Workspace, images: Iterable[GeneratedImageLike], run: dict[str, Any]
) -> tuple[list[int], set[int]]:
    """As :func:`store_generated`; returns the id of every image and the set of new ids."""
    run_id = str(run["run_id"])
    run_name = f"{run['run_name']}-{run_id[:12]}"
    generator_key = f"generator:{run_id}"
    patient_code = space.pseudonym("patient", generator_key)
    # images drawn with other sampler settings (a diffusion run's guidance, steps) are another
    # study of the same run, so their files never share a name with the first ones
    settings = json.dumps(run["sampling"], sort_keys=True) if run.get("sampling") else ""
    study_key = f"{generator_key}\0step{run['checkpoint_step']}" + (
        f"\0{settings}" if settings else ""
    )
    study_code = space.pseudonym("study", study_key)
    with space.open_catalog() as catalog:
        with catalog.session() as session:
            modality = run.get("modality") or _only_modality(session)
            before = set(session.scalars(select(Image.id).where(Image.origin == "synthetic")))
            run_row = _run_id(
                session,
                str(run.get("kind", "gan")),
                run_name,
                run.get("config") or {},
                {"run_dir": str(run.get("run_dir", "")), "run_id": run_id},
            )
            study_id = _generator_study(session, patient_code, study_code, modality, run_name)

        def items() -> Iterator[_Derived]:
            for image in images:
                yield _Derived(
                    png=image.png,
                    store_path=(
                        f"{patient_code}/{study_code}/"
                        f"{label_folder(image.class_name)}-s{image.seed}-{image.index:06d}.png"
                    ),
                    study_id=study_id,
                    row={
                        "label": image.class_name,
                        "origin": "synthetic",
                        "run_id": run_row,
                        "checkpoint_step": image.step,
                        "seed": image.seed,
                        "transform": {"index": image.index, **_sampling(image)},
                    },
                )

        ids = _store_derived(space, catalog, items())
        _link_run(catalog, ids, run_row)
    return ids, set(ids) - before


def _link_run(catalog: Catalog, image_ids: list[int], run_row: int) -> None:
    """Record that run ``run_row`` made ``image_ids`` (new or already catalogued by content)."""
    with catalog.session() as session:
        linked = set(session.scalars(select(ImageRun.image_id).where(ImageRun.run_id == run_row)))
        session.add_all(
            ImageRun(image_id=image_id, run_id=run_row)
            for image_id in dict.fromkeys(image_ids)
            if image_id not in linked
        )


def _generator_study(
    session: Session, patient_code: str, study_code: str, modality: str, source: str
) -> int:
    """The id of a generator run's study (its "patient" is the generator), made if new."""
    patient = session.scalar(select(Patient).where(Patient.code == patient_code))
    if patient is None:
        patient = Patient(code=patient_code, key_kind="generator")
        session.add(patient)
    study = session.scalar(select(Study).where(Study.code == study_code))
    if study is None:
        study = Study(code=study_code, patient=patient, modality=modality, source=source)
        session.add(study)
    session.flush()
    return int(study.id)


def _sampling(image: GeneratedImageLike) -> dict[str, Any]:
    """How a generated image was sampled, where its generator says (diffusion runs)."""
    sampling = getattr(image, "sampling", None)
    return dict(sampling) if isinstance(sampling, Mapping) else {}


def _only_modality(session: Session) -> str:
    modalities = session.scalars(select(Study.modality).distinct()).all()
    if len(modalities) != 1:
        raise DataError(
            f"cannot tell the modality of generated images: the catalog holds {modalities or 'none'}"
        )
    return modalities[0]


def _run_id(
    session: Session,
    kind: str,
    name: str,
    config: dict[str, Any],
    metrics: dict[str, Any] | None = None,
) -> int:
    """The catalog row of a run, created (finished) on first use."""
    row = session.scalar(select(Run).where(Run.kind == kind, Run.name == name))
    if row is None:
        row = Run(kind=kind, name=name, config=config, status="finished", metrics=metrics)
        session.add(row)
        session.flush()
    return row.id


# -- the web app ----------------------------------------------------------------------------------


def open_reader(space: Workspace) -> CatalogReader:
    """A long-lived, read-only reader of the catalog (see :mod:`pathsynth.catalog.browse`).

    The schema is brought to the newest migration first (where the workspace can be written),
    then the reader gets a connection pool of its own that refuses every write.

    Raises:
        CatalogUnavailable: the database cannot be reached or is at an older schema read-only.
    """
    space.open_catalog().close()  # migrates where it can
    embedded_read_only = not space.writable and space.config.db_url is None
    return CatalogReader(
        Catalog(space.db_url, migrate=False, read_only=embedded_read_only), space.store
    )


def generated_images(space: Workspace, run_id: str) -> list[FoldImage]:
    """The catalogued images a generator run made (``run_id``: its unique id from run.json),
    ordered by id.

    Raises:
        DataError: no catalogued images of that run.
    """
    with space.open_catalog() as catalog:
        found = generated_by(catalog, space.store, run_id)
    if not found:
        raise DataError(f"the catalog holds no images generated by run {run_id}")
    return found


# -- embeddings (migration 0004) ------------------------------------------------------------------


def all_images(space: Workspace) -> list[FoldImage]:
    """Every image of the catalog (real, affine and synthetic), ordered by id."""
    with space.open_catalog() as catalog:
        return every_image(catalog, space.store)


def unlabelled_images(space: Workspace) -> list[FoldImage]:
    """The images ingested with ``ingest --unlabelled`` (for self-supervised pretraining only:
    no split, export or classifier query takes them), ordered by id."""
    with space.open_catalog() as catalog:
        return unlabelled_rows(catalog, space.store)


def image_sha256s(space: Workspace, image_ids: Iterable[int]) -> dict[int, str]:
    """The content hash of each catalog image id (ids not in the catalog are left out)."""
    wanted = sorted({int(i) for i in image_ids})
    found: dict[int, str] = {}
    with space.open_catalog() as catalog, catalog.session() as session:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = session.execute(select(Image.id, Image.sha256).where(Image.id.in_(chunk)))
            found.update({image_id: sha for image_id, sha in rows})
    return found


@dataclass(frozen=True)
class EmbeddingKey:
    """What decides an image's feature vector, besides the image itself.

    Attributes:
        backbone: the architecture (timm name or hub id).
        weights_sha256: hash of the backbone's loaded tensors.
        preprocess_sha256: hash of the preprocessing, input spec and aggregation.
    """

    backbone: str
    weights_sha256: str
    preprocess_sha256: str

    @property
    def run_name(self) -> str:
        """The name of the ``embed`` run that records this key's method."""
        return f"{self.backbone}-w{self.weights_sha256[:12]}-p{self.preprocess_sha256[:12]}"


def stored_embeddings(
    space: Workspace, key: EmbeddingKey, image_sha256s: Iterable[str]
) -> dict[str, np.ndarray]:
    """The stored vectors of these images under ``key`` (images without one are left out).

    Returns:
        ``image sha256 -> float32 (dim,)`` array.
    """
    wanted = list(dict.fromkeys(image_sha256s))
    found: dict[str, np.ndarray] = {}
    with space.open_catalog() as catalog, catalog.session() as session:
        for start in range(0, len(wanted), 500):  # bounded IN lists
            rows = session.execute(
                select(
                    Embedding.image_sha256, Embedding.dtype, Embedding.dim, Embedding.vector
                ).where(
                    Embedding.backbone == key.backbone,
                    Embedding.weights_sha256 == key.weights_sha256,
                    Embedding.preprocess_sha256 == key.preprocess_sha256,
                    Embedding.image_sha256.in_(wanted[start : start + 500]),
                )
            )
            for sha, dtype, dim, blob in rows:
                found[sha] = _vector(blob, dtype, dim)
    return found


def _vector(blob: bytes, dtype: str, dim: int) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: the upper halves of float32s
        halves = np.frombuffer(blob, dtype="<u2").astype(np.uint32) << 16
        vector = halves.view(np.float32)
    else:
        vector = np.frombuffer(blob, dtype=np.dtype(dtype).newbyteorder("<")).astype(np.float32)
    if vector.shape != (dim,):
        raise DataError(f"a stored embedding holds {vector.size} numbers, its row says {dim}")
    return vector


def _embedding_row(sha: str, vector: np.ndarray, inputs: int) -> dict[str, Any]:
    """One image's vector as a row of the embeddings table (float32, little-endian bytes).

    Raises:
        DataError: a vector that is not one-dimensional and finite.
    """
    flat = np.asarray(vector, dtype="<f4")
    if flat.ndim != 1 or not np.isfinite(flat).all():
        raise DataError(f"the embedding of image {sha[:12]} is not a finite vector")
    return {"image_sha256": sha, "inputs": int(inputs), "dtype": EMBEDDING_DTYPES[0],
            "dim": int(flat.size), "vector": flat.tobytes()}  # fmt: skip


def store_embeddings(
    space: Workspace,
    key: EmbeddingKey,
    vectors: dict[str, tuple[np.ndarray, int]],
    method: dict[str, Any],
) -> int:
    """Store float32 vectors under ``key`` in one transaction; images that already have one
    under this key keep it.

    Args:
        space: the workspace.
        key: the backbone, weights and preprocessing they were computed with.
        vectors: ``image sha256 -> (float32 (dim,) vector, network inputs averaged into it)``.
        method: the resolved backbone and preprocessing settings, recorded once as the config of
            the ``embed`` run named after the key.

    Returns:
        The number of vectors added.

    Raises:
        DataError: a vector that is not one-dimensional and finite.
    """
    rows = [_embedding_row(sha, vector, inputs) for sha, (vector, inputs) in vectors.items()]
    if not rows:
        return 0
    with space.write_lock(), space.open_catalog() as catalog, catalog.session() as session:
        present = set(
            session.scalars(
                select(Embedding.image_sha256).where(
                    Embedding.backbone == key.backbone,
                    Embedding.weights_sha256 == key.weights_sha256,
                    Embedding.preprocess_sha256 == key.preprocess_sha256,
                    Embedding.image_sha256.in_([row["image_sha256"] for row in rows]),
                )
            )
        )
        fresh = [row for row in rows if row["image_sha256"] not in present]
        if not fresh:
            return 0
        run_id = _run_id(session, "embed", key.run_name, method)
        key_columns = {
            "backbone": key.backbone,
            "weights_sha256": key.weights_sha256,
            "preprocess_sha256": key.preprocess_sha256,
            "run_id": run_id,
        }
        session.execute(insert(Embedding), [{**row, **key_columns} for row in fresh])
    return len(fresh)


# -- selective synthesis ---------------------------------------------------------------------------


def store_selection(
    space: Workspace, selection: str, rows: list[SelectionRow], method: dict[str, Any]
) -> int:
    """Replace the scores recorded under ``selection`` by ``rows``, in one transaction.

    Args:
        space: the workspace.
        selection: the selection's name (an experiment's, for its ``select`` stage).
        rows: one row per generated image, each a catalog image id.
        method: the settings, thresholds and kept fractions, recorded as the config of the
            ``select`` run named ``selection`` (replaced on a rerun).

    Returns:
        The number of rows stored.

    Raises:
        DataError: an image id the catalog does not hold or that is not a generated image, one
            id twice, or a score that is not finite (nothing is written).
    """
    ids = [row.image_id for row in rows]
    if len(set(ids)) != len(ids):
        raise DataError(f"selection {selection!r}: an image is scored twice")
    for row in rows:
        numbers = (
            row.confidence,
            row.min_confidence,
            row.distance,
            row.max_distance,
            row.copy_ratio,
        )
        if not all(np.isfinite(numbers)):
            raise DataError(f"selection {selection!r}: image {row.image_id} has a score not finite")
    with space.write_lock(), space.open_catalog() as catalog, catalog.session() as session:
        _check_generated(session, selection, ids)
        run_id = _run_id(session, "select", selection, method)
        run = session.get(Run, run_id)
        assert run is not None
        run.config = method  # a rerun records its own settings
        session.execute(delete(SelectionScore).where(SelectionScore.selection == selection))
        if rows:
            session.execute(
                insert(SelectionScore),
                [
                    {**dataclasses.asdict(row), "selection": selection, "run_id": run_id}
                    for row in rows
                ],
            )
    return len(rows)


def _check_generated(session: Session, selection: str, ids: list[int]) -> None:
    """Refuse ids the catalog does not hold or that are not generated images.

    Raises:
        DataError: the first such id, and how many are missing.
    """
    origins: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found = session.execute(select(Image.id, Image.origin).where(Image.id.in_(chunk)))
        origins.update({image_id: origin for image_id, origin in found})
    missing = sorted(set(ids) - set(origins))
    if missing:
        raise DataError(
            f"selection {selection!r}: image {missing[0]} is not in the catalog "
            f"({len(missing)} missing)"
        )
    other = sorted(i for i, origin in origins.items() if origin != "synthetic")
    if other:
        raise DataError(
            f"selection {selection!r}: image {other[0]} is {origins[other[0]]}, not generated"
        )


def selection_scores(space: Workspace, selection: str) -> list[SelectionRow]:
    """The rows recorded under ``selection``, by image id."""
    with space.open_catalog() as catalog, catalog.session() as session:
        found = session.scalars(
            select(SelectionScore)
            .where(SelectionScore.selection == selection)
            .order_by(SelectionScore.image_id)
        )
        return [selection_row(row) for row in found]
