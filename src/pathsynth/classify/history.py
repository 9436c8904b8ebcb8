"""What training a classifier records: one line per epoch, the result, and the early stopping
that keeps the best epoch's weights (the trained network and the frozen-feature probes share
them)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from pathsynth.classify.config import ClassifierConfig

_TIE = 1e-9  # balanced accuracies closer than this count as equal


@dataclass
class EpochRecord:
    """Numbers of one training epoch.

    Args:
        epoch: 1-based epoch number.
        train_loss: mean training cross-entropy (class-weighted if configured).
        train_accuracy: accuracy on the augmented training batches.
        validation_loss: mean unweighted cross-entropy on the validation set.
        validation_accuracy: accuracy on the validation set.
        validation_balanced_accuracy: balanced accuracy on the validation set.
        seconds: wall time of the epoch, validation included.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    validation_loss: float
    validation_accuracy: float
    validation_balanced_accuracy: float
    seconds: float


@dataclass
class TrainingResult:
    """A trained classifier (best epoch's weights restored) and how it got there.

    Args:
        model: the network, in eval mode, on the configured device.
        config: the configuration it was trained with.
        class_names: class name per output index.
        history: one record per epoch run.
        best_epoch: 1-based epoch whose weights were restored.
        stopped_early: training ended by patience before ``config.epochs``.
        train_size: images trained on (after the validation split).
        validation_size: images validated on.
        seconds: total wall time.
    """

    model: nn.Module
    config: ClassifierConfig
    class_names: list[str]
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    train_size: int = 0
    validation_size: int = 0
    seconds: float = 0.0

    def curves(self) -> dict[str, list[float]]:
        """Per-epoch curves keyed by record field (for plots and JSON)."""
        names = [name for name in EpochRecord.__dataclass_fields__ if name != "epoch"]
        return {name: [getattr(record, name) for record in self.history] for name in names}


def _improved(record: EpochRecord, best: EpochRecord | None, monitor: str) -> bool:
    if best is None:
        return True
    if monitor == "loss":
        return record.validation_loss < best.validation_loss
    gain = record.validation_balanced_accuracy - best.validation_balanced_accuracy
    return gain > _TIE or (abs(gain) <= _TIE and record.validation_loss < best.validation_loss)


class EarlyStopping:
    """Keeps the best epoch's weights and says when ``patience`` epochs brought nothing better."""

    def __init__(self, config: ClassifierConfig) -> None:
        self.config = config
        self.best: EpochRecord | None = None
        self.best_state: dict[str, torch.Tensor] = {}

    def should_stop(self, record: EpochRecord, model: nn.Module) -> bool:
        """Note one epoch (copying ``model``'s weights if it is the best yet); True: stop now."""
        if _improved(record, self.best, self.config.monitor):
            self.best = record
            self.best_state = {
                key: value.detach().clone() for key, value in model.state_dict().items()
            }
            return False
        return (
            self.best is not None
            and record.epoch >= self.config.min_epochs
            and record.epoch - self.best.epoch >= self.config.patience
        )

    def restore_best(self, model: nn.Module) -> int:
        """Load the best epoch's weights into ``model``, put it in eval mode; returns that epoch."""
        model.load_state_dict(self.best_state)
        model.eval()
        return self.best.epoch if self.best is not None else 0
