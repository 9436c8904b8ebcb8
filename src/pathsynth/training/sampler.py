"""The data order every trainer draws from: global batches of indices, a pure function of the
seed and the epoch, so a resume needs two counters."""

from __future__ import annotations

import torch

from pathsynth.errors import DataError


class EpochSampler:
    """Global batches of indices for one rank, resumable from ``(epoch, position)``.

    Each epoch's order is ``randperm`` from a generator seeded with ``seed`` and the epoch, so
    the order needs no saved generator state; a short final batch is dropped.

    Args:
        size: images in the set.
        batch_size: global batch size.
        seed: the run seed.
    """

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        if size < batch_size:
            raise DataError(f"{size} images are fewer than one batch of {batch_size}")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.batches_per_epoch = size // batch_size
        self.epoch, self.position = 0, 0
        self._order: torch.Tensor | None = None

    def _epoch_order(self) -> torch.Tensor:
        if self._order is None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._order = torch.randperm(self.size, generator=generator)
        return self._order

    def next_batch(self) -> torch.Tensor:
        """Indices of the next global batch (CPU int64)."""
        start = self.position * self.batch_size
        batch = self._epoch_order()[start : start + self.batch_size]
        self.position += 1
        if self.position == self.batches_per_epoch:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        return batch

    def state_dict(self) -> dict[str, int]:
        """Counters to checkpoint."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None
