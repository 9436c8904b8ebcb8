"""Making a visual Turing test: which images, how they are shown, and who rates them.

The real images come from the held-out (test) fold of an experiment's split, the synthetic ones
from the images its generator put in the catalog; ``per_class`` of each per class, drawn with a
seed. Nothing a rater receives may tell them apart except the pixels: every image is prepared the
way the generator saw its training images (the experiment's preprocessing, first patch), brought
to the generated images' size, and re-encoded as a plain PNG without metadata under an opaque
random id.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pathsynth.catalog.api import FoldImage, Workspace, generated_images, split_fold
from pathsynth.errors import DataError, PathsynthError, TuringError
from pathsynth.files import check_name, write_atomic
from pathsynth.imaging.decode import load_rgb
from pathsynth.imaging.patches import PreprocessConfig, input_squares
from pathsynth.imaging.png import encode_png
from pathsynth.turing.store import PlannedItem, TuringBook, new_public_id

MAX_PER_CLASS = 500


@dataclass(frozen=True)
class CreatedTest:
    """A test just made: its id, name, items, and each rater's secret token (shown once)."""

    test_id: int
    name: str
    items: int
    class_names: list[str]
    tokens: dict[str, str]


def display_pixels(
    path: Path,
    truth: str,
    preprocess: PreprocessConfig,
    sha256: str,
    size: int,
    pixel_size_um: float | None = None,
) -> np.ndarray:
    """The pixels a rater sees: a real image prepared as the generator's inputs were (first
    patch, at the config's micrometres per pixel from the image's recorded ``pixel_size_um``),
    a generated one as stored; both brought to ``size`` x ``size``: a real patch larger than the
    generated images is cropped at its centre, as the generator's training crops were (resizing
    it would show the tissue at another scale than the generated images), anything else resized.

    Raises:
        DataError: what :func:`~pathsynth.imaging.patches.input_squares` refuses (a real
            image without a recorded pixel size when the config asks for one).
    """
    rgb = load_rgb(path)
    if truth == "real":
        rgb = input_squares(rgb, preprocess, sha256, pixel_size_um)[0]
        if rgb.shape[0] > size and rgb.shape[1] > size:
            top, left = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
            rgb = rgb[top : top + size, left : left + size]
    if rgb.shape[0] != size or rgb.shape[1] != size:
        image = Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB")
        rgb = np.asarray(image.resize((size, size), Image.Resampling.LANCZOS))
    return np.ascontiguousarray(rgb)


def clean_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of ``pixels`` with no metadata (no text, time, gamma or colour profile chunk)."""
    return encode_png(np.ascontiguousarray(pixels, dtype=np.uint8), compress_level=6)


def make_test(
    space: Workspace,
    name: str,
    real: list[FoldImage],
    synthetic: list[FoldImage],
    per_class: int,
    raters: list[str],
    preprocess: PreprocessConfig,
    seed: int = 0,
    classes: list[str] | None = None,
    params: dict[str, Any] | None = None,
) -> CreatedTest:
    """Choose, re-encode and store a test's images and add its raters.

    Args:
        space: the workspace.
        name: the test's name (unique in the catalog).
        real: the candidate real (held-out) images.
        synthetic: the candidate generated images.
        per_class: real and synthetic images per class (each).
        raters: the raters' names.
        preprocess: how the generator's training inputs were prepared.
        seed: seeds the draw.
        classes: the classes to test (default: every class with both kinds).
        params: recorded with the test (where the images came from).

    Raises:
        TuringError: ``per_class`` outside 1-500, no raters or a class with too few images of
            either kind, or what storing the test refuses.
    """
    _check_request(per_class, raters)
    real = [image for image in real if image.origin == "real"]
    chosen_classes = classes or sorted({i.label for i in real} & {i.label for i in synthetic})
    if not chosen_classes:
        raise TuringError("no class has both held-out real and generated images")
    picked = _draw(real, synthetic, chosen_classes, per_class, seed)
    size = int(load_rgb(picked[-1][0].path).shape[0])  # generated images are square
    planned = [
        PlannedItem(image.image_id, truth, image.label, new_public_id()) for image, truth in picked
    ]
    record = {**(params or {}), "per_class": per_class, "seed": seed, "size": size,
              "preprocess": preprocess.as_dict()}  # fmt: skip
    with TuringBook.open(space) as book:
        test_id = book.create(name, chosen_classes, planned, record)
        folder = book.folder(test_id)
        try:
            for item, (image, truth) in zip(planned, picked, strict=True):
                pixels = display_pixels(
                    image.path, truth, preprocess, image.sha256, size, image.pixel_size_um
                )
                write_atomic(folder / f"{item.public_id}.png", clean_png(pixels))
            tokens = {rater: book.add_rater(test_id, rater) for rater in raters}
        except (PathsynthError, OSError):
            book.drop(test_id)
            raise
    return CreatedTest(test_id, name, len(planned), chosen_classes, tokens)


def _check_request(per_class: int, raters: list[str]) -> None:
    """Refuse a test no rater could take.

    Raises:
        TuringError: ``per_class`` outside 1-500, no raters, or a rater named twice.
    """
    if not 1 <= per_class <= MAX_PER_CLASS:
        raise TuringError(f"images per class must be 1 to {MAX_PER_CLASS}, got {per_class}")
    if not raters:
        raise TuringError("name at least one rater")
    if len(set(raters)) != len(raters):
        raise TuringError("rater names must differ")


def _draw(
    real: list[FoldImage], synthetic: list[FoldImage], classes: list[str], per_class: int, seed: int
) -> list[tuple[FoldImage, str]]:
    """``per_class`` real and synthetic images of each class, drawn with ``seed``, with their
    truth.

    Raises:
        TuringError: a class with fewer images of either kind.
    """
    draw = random.Random(seed)
    picked: list[tuple[FoldImage, str]] = []
    for label in classes:
        for truth, pool in (("real", real), ("synthetic", synthetic)):
            candidates = [image for image in pool if image.label == label]
            if len(candidates) < per_class:
                raise TuringError(
                    f"class {label!r} has {len(candidates)} {truth} images, "
                    f"fewer than the {per_class} asked for"
                )
            picked += [(image, truth) for image in draw.sample(candidates, per_class)]
    return picked


def make_test_from_experiment(
    space: Workspace,
    experiment: str,
    name: str,
    per_class: int,
    raters: list[str],
    seed: int = 0,
) -> CreatedTest:
    """A test of an experiment's generator against its held-out real images.

    Raises:
        DataError: no such experiment, or one whose generator has not run or made no images.
        TuringError: what :func:`make_test` refuses.
    """
    from pathsynth.experiment.context import real_split_name
    from pathsynth.experiment.state import ExperimentPaths, ExperimentState
    from pathsynth.inventory import read_run_identity

    try:  # a name, never a path: "../x" would reach outside the workspace
        check_name(experiment, "experiment")
    except ValueError as error:
        raise DataError(str(error)) from None
    paths = ExperimentPaths(space.root / "experiments" / experiment)
    if not paths.state.is_file():
        raise DataError(f"no experiment named {experiment!r} in {space.root}")
    state = ExperimentState.load(paths.state)
    run_dir = state.outputs("generator").get("run_dir")
    if not state.finished("generate") or not run_dir:
        raise DataError(f"experiment {experiment!r} has not generated images yet")
    try:
        run_id = read_run_identity(Path(run_dir)).get("run_id")
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read the generator run {run_dir}: {error}") from None
    if not run_id:
        raise DataError(f"the generator run {run_dir} has no run id (run.json)")
    fold = state.config.get("fold", -1)
    split = (
        real_split_name(state.parent, int(fold)) if state.parent else real_split_name(state.name)
    )
    preprocess = PreprocessConfig(**state.config.get("preprocess", {}))
    return make_test(
        space,
        name,
        split_fold(space, split, "test"),
        generated_images(space, str(run_id)),
        per_class,
        raters,
        preprocess,
        seed,
        state.classes,
        {
            "experiment": experiment,
            "split": split,
            "fold": "test",
            "generator_run": str(run_id),
            "generator_dir": Path(run_dir).name,
        },
    )
