"""The generator interface, the registry of kinds, and storing samples in the catalog."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.generators.sampling import GeneratedImage
    from pathsynth.imaging.tensorset import TensorImageSet


@dataclass(frozen=True)
class TrainedRun:
    """How a generator's training run ended.

    Args:
        run_dir: the run folder.
        status: ``finished`` or ``interrupted`` (a checkpoint was written; rerun to continue).
        step: training steps done.
        numbers: what the run reports about itself (best score, best checkpoint, ...).
    """

    run_dir: Path
    status: str
    step: int
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Samples:
    """Images sampled from one checkpoint of a run, with what the catalog records about them.

    Args:
        images: the images, PNG-encoded, in a fixed order (class by class).
        class_names: class name per label index.
        step: training step of the checkpoint.
        checkpoint: the checkpoint file.
        provenance: run id, name, folder, checkpoint step and resolved config, stored with
            every image.
    """

    images: Iterator[GeneratedImage]
    class_names: list[str]
    step: int
    checkpoint: Path
    provenance: dict[str, Any]


@dataclass(frozen=True)
class GeneratorSummary:
    """A run as the report shows it.

    Args:
        kind: the generator kind (``gan`` or ``diffusion``).
        run_id: the run's unique id.
        run_dir: its folder.
        stats_jsonl: its training statistics, one JSON record per line.
        config: its resolved config as plain data.
    """

    kind: str
    run_id: str
    run_dir: str
    stats_jsonl: str
    config: dict[str, Any]


class ImageGenerator(Protocol):
    """What every generator kind offers the experiment and the CLI."""

    kind: str

    def train(
        self,
        images: TensorImageSet,
        runs: Path,
        name: str,
        source: str,
        resume_dir: Path | None = None,
        log: Callable[[str], None] | None = None,
        on_open: Callable[[Path], None] | None = None,
    ) -> TrainedRun:
        """Train a new run under ``runs`` (or continue ``resume_dir`` from its last checkpoint)."""
        ...

    def sample(
        self,
        run_dir: Path,
        per_class: int,
        seed: int,
        checkpoint: str = "best",
        device: str = "auto",
        batch_size: int = 64,
    ) -> Samples:
        """``per_class`` images of every class; the same seed gives the same bytes."""
        ...

    def describe(self, run_dir: Path) -> GeneratorSummary:
        """The run as the report shows it."""
        ...


def store_samples(
    workspace: Workspace, samples: Samples, modality: str | None = None
) -> tuple[list[int], set[int]]:
    """Store sampled images in the workspace's catalog (origin ``synthetic``, with provenance).

    Returns:
        The catalog id of every image in order, and the set of ids added now.

    Raises:
        DataError: the modality cannot be told; CatalogUnavailable: no database.
    """
    from pathsynth.catalog.api import store_generated_ids

    provenance = {**samples.provenance, **({"modality": modality} if modality else {})}
    return store_generated_ids(workspace, samples.images, provenance)
