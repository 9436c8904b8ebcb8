"""Class probabilities per image file from a classifier bundle: what ``pathsynth predict`` runs.

Each file is decoded as ingest decodes it (:func:`pathsynth.imaging.decode.decode_file`), prepared by
the bundle's own :class:`~pathsynth.imaging.patches.PreprocessConfig`, and predicted; when the
inputs are patches, their probabilities are averaged per image, as the experiment's test does
(:func:`pathsynth.classify.evaluate.aggregate_patches`). A file that cannot be used is recorded
with its reason and the others go on.
"""

from __future__ import annotations

import functools
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pathsynth.classify.bundle import ClassifierBundle
from pathsynth.classify.evaluate import aggregate_patches, predict_probabilities
from pathsynth.errors import DataError, ImageRefused, ImageTooSmall
from pathsynth.imaging.decode import decode_file
from pathsynth.imaging.patches import PreprocessConfig, preprocess_image
from pathsynth.imaging.stain import StainReference, normalise_stain

# Suffixes taken from a folder (ingest's formats); other files there (notes, CSVs) are left alone.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MIN_SIDE = 8  # pixels: a smaller image is refused, not upscaled into a prediction


@dataclass
class FilePredictions:
    """Per-image class probabilities of image files, and the files that could not be used.

    Args:
        paths: the predicted files, in the order given.
        probabilities: (len(paths), n_classes) float64, rows summing to 1.
        class_names: class name per column.
        refused: ``(path, reason)`` per file that could not be decoded or prepared.
    """

    paths: list[Path]
    probabilities: torch.Tensor
    class_names: list[str]
    refused: list[tuple[Path, str]] = field(default_factory=list)

    def predicted(self) -> list[str]:
        """The most probable class name per predicted file."""
        return [self.class_names[int(i)] for i in self.probabilities.argmax(dim=1)]


@dataclass
class ImageFiles:
    """The image files a ``predict`` call names, and the paths it cannot use with the reason.

    Args:
        found: the files to predict, each once, in order.
        refused: ``(path, reason)`` for each path that cannot be read as a file.
    """

    found: list[Path]
    refused: list[tuple[Path, str]] = field(default_factory=list)


def image_files(paths: Sequence[Path]) -> ImageFiles:
    """The image files named, folders walked recursively (sorted, hidden entries skipped).

    A file named on its own is taken whatever its suffix (so a bad one is reported, not dropped);
    in a folder only :data:`IMAGE_SUFFIXES` are taken. A path that is not there, a link to
    nothing (dangling or a loop) and anything that is not a regular file (a FIFO would block the
    read forever) is refused with its reason, named or found in a folder, and the rest go on.

    Raises:
        DataError: nothing at all to predict (the message gives the first refusals).
    """
    found: list[Path] = []
    refused: list[tuple[Path, str]] = []

    def take(candidate: Path) -> None:
        reason = _not_a_file(candidate)
        if reason:
            refused.append((candidate, reason))
        else:
            found.append(candidate)

    for path in map(Path, paths):
        if not path.is_dir():
            take(path)
            continue
        for entry in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in entry.relative_to(path).parts)
            if not hidden and entry.suffix.lower() in IMAGE_SUFFIXES and not entry.is_dir():
                take(entry)
    if not found:
        shown = "; ".join(f"{path} {reason}" for path, reason in refused[:3])
        raise DataError(
            f"nothing to predict: {shown}"
            if shown
            else f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}"
        )
    # a path named twice (or named and in a folder): predicted, or refused, once
    reasons: dict[Path, str] = {}
    for path, reason in refused:
        reasons.setdefault(path, reason)
    return ImageFiles(list(dict.fromkeys(found)), list(reasons.items()))


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as an image file, or ``None`` when it can."""
    if path.is_symlink() and not path.exists():
        return "is a link to nothing (dangling, or a loop of links)"
    try:
        mode = path.stat().st_mode
    except OSError:
        return "does not exist"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a FIFO, socket or device)"
    return None


def prepare_file(
    path: Path,
    preprocess: PreprocessConfig,
    stain: StainReference | None = None,
    pixel_size_um: float | None = None,
) -> torch.Tensor:
    """One image file as the network's uint8 (P, 3, S, S) inputs (stain-normalised to ``stain``
    where the classifier's inputs were; brought to the inputs' magnification from
    ``pixel_size_um``, the file's micrometres per pixel, where they have one).

    Raises:
        ImageRefused: the file cannot be read or decoded, or the image cannot be prepared (for
            example smaller than one patch).
    """
    return _prepare(path, preprocess, [stain], pixel_size_um)[0]


def _prepare(
    path: Path,
    preprocess: PreprocessConfig,
    stains: Sequence[StainReference | None],
    pixel_size_um: float | None,
    modality: str | None = None,
) -> list[torch.Tensor]:
    """The file decoded and prepared once, then normalised to each of ``stains`` (see
    :func:`prepare_file`); ``modality`` (the classifier's) names what an image too small for
    its inputs was expected to be."""
    decoded = decode_file(path)  # ingest's decoder, pixel limit included
    if min(decoded.width, decoded.height) < MIN_SIDE:
        raise ImageRefused(
            f"a {decoded.width}x{decoded.height} image is under {MIN_SIDE} px a side: no "
            "microscopy image a classifier could read"
        )
    try:
        # the file's sha256 seeds random patch positions, as in the experiment's cache
        inputs = preprocess_image(decoded.rgb, preprocess, decoded.sha256, pixel_size_um)
        return [normalise_stain(inputs, s) if s is not None else inputs for s in stains]
    except ImageTooSmall as error:
        what = f"a {modality} classifier" if modality else "this classifier"
        raise ImageRefused(
            f"{error.fact}: {what} takes {preprocess.size} px inputs at the magnification it was "
            "trained on; is this an image of another modality or magnification?"
        ) from None
    except DataError as error:
        raise ImageRefused(str(error)) from None


def predict_files(
    bundles: ClassifierBundle | Sequence[ClassifierBundle],
    paths: Sequence[Path],
    batch_size: int = 64,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    pixel_size_um: float | None = None,
) -> FilePredictions:
    """Class probabilities per image file, patches averaged per image, and with several bundles
    (an ensemble, :func:`~pathsynth.classify.bundle.load_bundles`) averaged over the bundles.

    Args:
        bundles: the loaded classifier(s) (their models' devices are used); several must share
            classes and inputs (``load_bundles`` checks it), each keeps its own stain reference.
        paths: image files (see :func:`image_files` for folders).
        batch_size: image files decoded together; network inputs per forward pass.
        workers: threads that read and decode (decoding releases the GIL).
        progress: called with (files done, files in all) after each batch.
        pixel_size_um: micrometres per pixel of the files (needed when the classifier's inputs
            are at a chosen magnification).

    Returns:
        The predictions of the usable files and the reason for each refused one.

    Raises:
        DataError: a batch size below 1, no bundle, or no ``pixel_size_um`` for a classifier
            whose inputs have a magnification.
    """
    chosen = _usable(bundles, batch_size, pixel_size_um)
    first = chosen[0]
    preprocess = first.manifest.preprocess
    files = [Path(p) for p in paths]
    kept: list[Path] = []
    rows: list[torch.Tensor] = []
    refused: list[tuple[Path, str]] = []
    stains = [bundle.manifest.stain for bundle in chosen]
    attempt = functools.partial(_attempt, preprocess=preprocess, stains=stains,
                                pixel_size_um=pixel_size_um,
                                modality=first.manifest.provenance.modality)  # fmt: skip
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            inputs = []
            for path, outcome in zip(chunk, pool.map(attempt, chunk), strict=True):
                if isinstance(outcome, str):
                    refused.append((path, outcome))
                else:
                    inputs.append((path, outcome))
            if inputs:
                kept.extend(path for path, _ in inputs)
                rows.append(_ensemble_probabilities(chosen, [t for _, t in inputs], batch_size))
            if progress is not None:
                progress(min(start + batch_size, len(files)), len(files))
    n_classes = len(first.class_names)
    probabilities = torch.cat(rows) if rows else torch.zeros(0, n_classes, dtype=torch.float64)
    return FilePredictions(kept, probabilities, first.class_names, refused)


def _attempt(
    path: Path,
    preprocess: PreprocessConfig,
    stains: Sequence[StainReference | None],
    pixel_size_um: float | None,
    modality: str | None,
) -> list[torch.Tensor] | str:
    """One file's inputs per bundle, or the reason it is refused."""
    try:
        return _prepare(path, preprocess, stains, pixel_size_um, modality)
    except ImageRefused as error:
        return str(error)


def _usable(
    bundles: ClassifierBundle | Sequence[ClassifierBundle],
    batch_size: int,
    pixel_size_um: float | None,
) -> list[ClassifierBundle]:
    """The bundles as a list, once checked against the call (not once per file).

    Raises:
        DataError: no bundle, a batch size below 1, or no ``pixel_size_um`` for inputs at a
            magnification.
    """
    chosen = [bundles] if isinstance(bundles, ClassifierBundle) else list(bundles)
    if not chosen:
        raise DataError("no classifier bundle to predict with")
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    preprocess = chosen[0].manifest.preprocess
    if preprocess.needs_pixel_size and pixel_size_um is None:
        raise DataError(
            f"the classifier's inputs are at {preprocess.pixel_size_um} um/px: pass the images' "
            "micrometres per pixel (--pixel-size)"
        )
    return chosen


def _ensemble_probabilities(
    bundles: list[ClassifierBundle], inputs: list[list[torch.Tensor]], batch_size: int
) -> torch.Tensor:
    """Each image's class probabilities, averaged over the bundles (``inputs[i][b]``: image i's
    inputs prepared for bundle b)."""
    per_bundle = [
        _image_probabilities(bundle, [prepared[b] for prepared in inputs], batch_size)
        for b, bundle in enumerate(bundles)
    ]
    return torch.stack(per_bundle).mean(dim=0)


def _image_probabilities(
    bundle: ClassifierBundle, per_image: list[torch.Tensor], batch_size: int
) -> torch.Tensor:
    """(len(per_image), n_classes) mean patch probabilities of each image's inputs."""
    patches = torch.cat(per_image)
    image_ids = torch.cat([torch.full((len(t),), i) for i, t in enumerate(per_image)])
    config = bundle.manifest.classifier
    probabilities = predict_probabilities(
        bundle.model, patches, batch_size, config.tta, config.crop_size, config.grid_stride
    )
    # Labels are unknown here; aggregate_patches only checks they agree within an image.
    unknown = torch.zeros(len(patches), dtype=torch.long)
    return aggregate_patches(probabilities, unknown, image_ids, bundle.class_names).probabilities
