"""What the other stages ask of the catalog, by workspace path.

The GAN and classifier stages never import the database layer at module level; their CLI commands
import these functions lazily when the user names a workspace instead of a folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from pathsynth.catalog.models import Image, Patient, Run, Study, image_features
from pathsynth.catalog.queries import fold_images
from pathsynth.catalog.store import sweep_orphans
from pathsynth.catalog.workspace import Workspace
from pathsynth.catalog.writer import BatchWriter
from pathsynth.errors import DataError
from pathsynth.imaging.decode import decode_bytes
from pathsynth.imaging.features import compute_features


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


def fold_files(workspace: Path, split: str, fold: str) -> list[tuple[Path, str]]:
    """The (image file, class label) pairs of one fold of a split, real images only.

    Raises:
        WorkspaceError, CatalogUnavailable, SplitError: no workspace, no database, no such split.
    """
    space = Workspace(workspace)
    with space.open_catalog() as catalog:
        images = fold_images(catalog, space.store, split, fold)
    return [(image.path, image.label) for image in images if image.origin == "real"]


def store_generated(
    workspace: Path, images: Iterable[GeneratedImageLike], run: dict[str, Any]
) -> int:
    """Store generated images in the catalog, origin ``synthetic``, with full provenance.

    Each image becomes ``store/<generator code>/<study code>/<class>-s<seed>-<index>.png`` and an
    image row naming the GAN run, checkpoint step, seed and class, with its features. Images whose
    content is already catalogued (the same seed regenerated) are skipped.

    Args:
        workspace: the workspace folder.
        images: the generated images.
        run: ``run_name``, ``run_dir``, ``checkpoint_step``, ``config`` (resolved config), and
            optionally ``modality``; without it the modality is taken from the catalog if it holds
            only one.

    Returns:
        The number of images added.

    Raises:
        DataError: the modality cannot be told.
        CatalogUnavailable: the catalog cannot be reached.
    """
    space = Workspace(workspace)
    with space.open_catalog() as catalog:
        with catalog.session() as session:
            modality = run.get("modality") or _only_modality(session)
            known = set(session.scalars(select(Image.sha256)))
            catalogued = set(session.scalars(select(Image.store_path)))
            run_id = _gan_run_id(session, run)
        sweep_orphans(space.store, catalogued)
        generator_key = f"generator:{run['run_name']}"
        patient_code = space.pseudonym("patient", generator_key)
        study_code = space.pseudonym("study", f"{generator_key}\0step{run['checkpoint_step']}")
        writer = BatchWriter(space.store, catalog.session)
        added = 0
        try:
            for image in images:
                decoded = decode_bytes(image.png)
                if decoded.sha256 in known:
                    continue
                known.add(decoded.sha256)
                name = f"{image.class_name}-s{image.seed}-{image.index:06d}.png"
                store_path = f"{patient_code}/{study_code}/{name}"
                features = compute_features(decoded.rgb)

                def make_rows(
                    session: Session,
                    image: GeneratedImageLike = image,
                    store_path: str = store_path,
                    sha: str = decoded.sha256,
                    side: tuple[int, int] = (decoded.width, decoded.height),
                    features: dict[str, float] = features,
                ) -> None:
                    patient_id = writer.patient_id(
                        session,
                        patient_code,
                        lambda: Patient(code=patient_code, key_kind="generator"),
                    )
                    study_id = writer.study_id(
                        session,
                        study_code,
                        lambda: Study(
                            code=study_code, patient_id=patient_id, modality=modality,
                            source=str(run["run_name"]),
                        ),
                    )  # fmt: skip
                    row = Image(
                        study_id=study_id, store_path=store_path, sha256=sha, width=side[0],
                        height=side[1], channels=3, bit_depth=8, original_mode="RGB",
                        original_format="PNG", label=image.class_name, origin="synthetic",
                        run_id=run_id, checkpoint_step=image.step, seed=image.seed,
                        transform={"index": image.index},
                    )  # fmt: skip
                    session.add(row)
                    session.flush()
                    session.execute(insert(image_features), [{"image_id": row.id, **features}])

                writer.add(store_path, image.png, make_rows)
                added += 1
            writer.commit()
        except BaseException:
            writer.discard()
            raise
    return added


def _only_modality(session: Session) -> str:
    modalities = session.scalars(select(Study.modality).distinct()).all()
    if len(modalities) != 1:
        raise DataError(
            f"cannot tell the modality of generated images: the catalog holds {modalities or 'none'}"
        )
    return modalities[0]


def _gan_run_id(session: Session, run: dict[str, Any]) -> int:
    """The catalog row of the GAN training run, created on first use."""
    name = str(run["run_name"])
    row = session.scalar(select(Run).where(Run.kind == "gan", Run.name == name))
    if row is None:
        row = Run(
            kind="gan", name=name, config=run.get("config") or {}, status="finished",
            metrics={"run_dir": str(run.get("run_dir", ""))},
        )  # fmt: skip
        session.add(row)
        session.flush()
    return row.id
