"""Reading network weights from files the user supplies (never from a download)."""

from __future__ import annotations

from pathlib import Path

import torch

from pathsynth.errors import CheckpointError


def read_state_dict(weights_path: Path, what: str) -> dict[str, torch.Tensor]:
    """A state dict from a local file (bare, or under a ``state_dict`` key).

    Args:
        weights_path: the file.
        what: what the weights are for, named in error messages (``classifier``, ``Inception``).

    Raises:
        CheckpointError: the file is missing, unreadable, or holds no state dict of tensors.
    """
    if not weights_path.is_file():
        raise CheckpointError(f"{what} weights file {weights_path} does not exist")
    try:
        loaded = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling and zip errors have no common type
        raise CheckpointError(
            f"{what} weights file {weights_path} cannot be read: {type(error).__name__}"
        ) from error
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(
        isinstance(value, torch.Tensor) for value in loaded.values()
    ):
        raise CheckpointError(f"{what} weights file {weights_path} does not hold a state dict")
    return loaded
