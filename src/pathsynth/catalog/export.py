"""Export a fold of a split as class folders, for tools that read ``DIR/<class>/<image>``."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

from pathsynth.catalog.queries import FoldImage
from pathsynth.errors import SplitError
from pathsynth.files import label_folder


def export_class_folders(images: list[FoldImage], out: Path) -> Counter[str]:
    """Write ``out/<label folder>/<file>`` for each image: a hard link where the file system
    allows, else a copy. The folder is :func:`~pathsynth.files.label_folder` of the label, so a
    label such as ``../x`` or ``CIN 2/3`` stays one folder inside ``out``.

    Args:
        images: the images to export (e.g. one fold of a split).
        out: a folder that does not exist yet or is empty.

    Returns:
        Images written per class.

    Raises:
        SplitError: ``out`` exists and is not empty, or there is nothing to export.
    """
    if out.exists() and any(out.iterdir()):
        raise SplitError(f"export folder {out} exists and is not empty")
    if not images:
        raise SplitError("the fold holds no images to export")
    counts: Counter[str] = Counter()
    for image in images:
        destination = out / label_folder(image.label) / image.path.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(image.path, destination)
        except OSError:
            shutil.copy2(image.path, destination)
        counts[image.label] += 1
    return counts
