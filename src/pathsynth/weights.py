"""Reading network weights from files the user supplies (never from a download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pathsynth.errors import CheckpointError


def load_torch_file(path: Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """What a file written with ``torch.save`` holds, read with ``weights_only=True`` (opening it
    never runs code).

    Args:
        path: the file.
        what: what the file is, named in error messages (``checkpoint``, ``classifier bundle``).
        map_location: where tensors are loaded.

    Raises:
        CheckpointError: the file is missing, or unreadable (damaged, or another kind of file).
    """
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling and zip errors have no common type
        raise CheckpointError(
            f"{what} {path} cannot be read ({type(error).__name__}): it is damaged or another "
            "kind of file"
        ) from None


def read_state_dict(weights_path: Path, what: str) -> dict[str, torch.Tensor]:
    """A state dict from a local file (bare, or under a ``state_dict`` key).

    Args:
        weights_path: the file.
        what: what the weights are for, named in error messages (``classifier``, ``Inception``).

    Raises:
        CheckpointError: the file is missing, unreadable, or holds no state dict of tensors.
    """
    loaded = load_torch_file(weights_path, f"{what} weights file")
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(
        isinstance(value, torch.Tensor) for value in loaded.values()
    ):
        raise CheckpointError(f"{what} weights file {weights_path} does not hold a state dict")
    return loaded
