"""The classifier's configuration: one dataclass, every field commented, presets as small overrides.

Resolve with :data:`CLASSIFIER` (``CLASSIFIER.resolve(preset, overrides)``); save ``dataclasses.asdict(config)`` with every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pathsynth.config import Presets
from pathsynth.errors import ConfigError
from pathsynth.imaging.config import ColourAugmentConfig

NETWORKS = ("small_cnn", "resnet18", "backbone")
KINDS = ("fine-tune", "linear-probe", "logistic")
FROZEN_KINDS = ("linear-probe", "logistic")  # kinds that train on a frozen backbone's embeddings
MONITORS = ("balanced_accuracy", "loss")
SCHEDULES = ("constant", "cosine")
SAMPLERS = ("shuffle", "balanced")


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything that decides how a classifier is built and trained.

    Args: see the comment on each field.
    """

    # model
    kind: str = "fine-tune"  # "fine-tune" (``network`` trained end to end) | "linear-probe" (a
    #   linear head on a frozen backbone's per-image embeddings, the eva protocol; classify/probe.py)
    #   | "logistic" (scikit-learn logistic regression on the same embeddings, C chosen on the
    #   validation patients; classify/logistic.py)
    backbone: str = "resnet18"  # linear-probe, logistic, network=backbone: a timm architecture or
    #   hf-hub:org/name, or "handcrafted" (stain, texture and nuclei features; backbones/handcrafted.py)
    backbone_weights: str | None = None  # the backbone's state dict or .safetensors file (key
    #   prefixes handled) or hf-hub:org/name; None = random init (the floor a backbone must beat)
    backbone_input_size: int = 0  # side the backbone sees; 0 = its pretrained config's
    network: str = "small_cnn"  # "small_cnn" (paper-like) | "resnet18" (torchvision, random init)
    #   | "backbone" (fine-tune the timm ``backbone`` with a new linear head; classify/finetune.py)
    finetune_blocks: int = 0  # network=backbone: train only the last N blocks of the backbone's
    #   timm layer groups (and the head); 0 = every layer
    layer_decay: float = 1.0  # network=backbone: layer-wise learning-rate decay, the layer k
    #   groups below the top trains at learning_rate * layer_decay**k; 1 = none, in (0, 1]
    logistic_c: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)  # logistic: inverse
    #   regularisation strengths tried; the one best on the validation patients is kept
    width: int = 32  # small_cnn: channels of the first block, doubled per block
    blocks: int = 4  # small_cnn: conv-BN-ReLU-pool blocks
    dropout: float = 0.3  # small_cnn: dropout before the linear head, 0 to disable
    weights_path: str | None = None  # resnet18: local state dict to start from; never a download
    # optimisation
    epochs: int = 40  # upper bound; early stopping usually ends sooner
    batch_size: int = 32  # images per step
    learning_rate: float = 1e-3  # Adam
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    class_weighted_loss: bool = True  # weight cross-entropy by inverse class frequency (of the
    #   batches: with sampler="balanced" every class is equally frequent, so no weights apply)
    # modern small-data recipe (classify/recipe.py); every option off by default
    schedule: str = "constant"  # "constant" | "cosine" (to final_lr_fraction), per optimiser step
    warmup_fraction: float = 0.0  # share of the planned steps (epochs x steps) of linear warm-up
    final_lr_fraction: float = 0.0  # cosine: the last step's rate as a share of learning_rate
    label_smoothing: float = 0.0  # training loss only (torch's label_smoothing), in [0, 1)
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixup with soft targets, 0 = off
    cutmix_alpha: float = 0.0  # Beta(alpha, alpha) cutmix with soft targets, 0 = off
    mix_probability: float = 1.0  # share of batches mixed when an alpha is on (both: half each)
    ema_decay: float = 0.0  # weight EMA per step, validated, kept and returned; 0 = off
    sampler: str = "shuffle"  # "shuffle" (each image once per epoch) | "balanced" (inverse-class-
    #   frequency draws with replacement; it replaces class_weighted_loss rather than doubling it)
    # validation and early stopping
    validation_fraction: float = 0.15  # share of the train set held out per class (by group)
    monitor: str = "balanced_accuracy"  # "balanced_accuracy" (ties -> lower loss) | "loss"
    patience: int = 8  # epochs without improvement before stopping
    min_epochs: int = 0  # early stopping cannot end training before this epoch (BN statistics
    #   and a tiny validation set make the first epochs' scores unreliable)
    # inputs larger than the network's (classify/trainer.py, imaging/crops.py)
    crop_size: int = 0  # side of the square crops the network sees; 0 = each input whole. With
    #   a crop size, training draws a new random crop of an input each time it is used and
    #   validation and testing average a dense grid of crops per input
    crops_per_image: int = 1  # times each training input is drawn per epoch (a new crop each)
    crop_stride: int = 0  # grid crops' spacing in pixels for validation and testing; 0 = half
    #   the crop size
    # augmentation (on the device, per batch)
    augment: bool = True  # random horizontal/vertical flips and 90-degree rotations
    colour: ColourAugmentConfig = field(default_factory=ColourAugmentConfig)  # colour and stain
    #   jitter after the flips, off by default; COLOUR_PRESETS["histology"] for H&E
    # run
    seed: int = 0  # seeds weights, batch order, augmentation and the validation split
    device: str = "cpu"  # "auto" (CUDA when present) | "cpu" | "cuda" | "cuda:N"
    bf16: bool = True  # bf16 autocast, used on CUDA only (CPU autocast does not pay here)
    channels_last: bool = True  # NHWC memory layout on every device (the same numbers; on 2 CPU
    #   cores the quick small CNN trained 1.7x faster than NCHW, BENCHMARKS.md)
    eval_batch_size: int = 256  # images per forward pass when evaluating
    tta: bool = False  # test: average each input's 8 dihedral views (microscopy has no "up")

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ConfigError(f"network must be one of {', '.join(NETWORKS)}, got {self.network!r}")
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not 0.0 < self.layer_decay <= 1.0 or self.finetune_blocks < 0:
            raise ConfigError(
                f"layer_decay must be in (0, 1] and finetune_blocks >= 0, got {self.layer_decay}, "
                f"{self.finetune_blocks}"
            )
        if not self.logistic_c or any(not c > 0.0 or not math.isfinite(c) for c in self.logistic_c):
            raise ConfigError(f"logistic_c needs positive finite values, got {self.logistic_c}")
        if self.backbone_input_size != 0 and self.backbone_input_size < 16:
            raise ConfigError(
                f"backbone_input_size must be 0 or at least 16, got {self.backbone_input_size}"
            )
        if self.monitor not in MONITORS:
            raise ConfigError(f"monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )
        for name in ("width", "blocks", "epochs", "batch_size", "patience", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.crop_size < 0 or self.crop_stride < 0 or self.crops_per_image < 1:
            raise ConfigError(
                "crop_size and crop_stride must be >= 0 and crops_per_image >= 1, got "
                f"{self.crop_size}, {self.crop_stride}, {self.crops_per_image}"
            )
        if 0 < self.crop_size < 8:
            raise ConfigError(f"crop_size must be 0 or at least 8 pixels, got {self.crop_size}")
        if not 0 <= self.min_epochs <= self.epochs:
            raise ConfigError(f"min_epochs must be in [0, epochs], got {self.min_epochs}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.learning_rate <= 0.0 or self.weight_decay < 0.0:
            raise ConfigError("learning_rate must be > 0 and weight_decay >= 0")
        self._check_recipe()

    @property
    def grid_stride(self) -> int:
        """Spacing of the test-time crop grid, pixels (``crop_stride``, or half the crop)."""
        return self.crop_stride or max(1, self.crop_size // 2)

    def _check_recipe(self) -> None:
        """Refuse recipe options no run can use, naming the key."""
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        for name in ("warmup_fraction", "label_smoothing", "ema_decay"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("final_lr_fraction", "mix_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0.0:
                raise ConfigError(f"{name} must be >= 0 (0 = off), got {getattr(self, name)}")


# Each preset overrides only what differs from the defaults above.
PRESETS: dict[str, dict[str, Any]] = {
    # the eva protocol's head: full-batch-ish AdamW on frozen features (set classifier.backbone)
    "linear-probe": {"kind": "linear-probe", "epochs": 200, "patience": 20, "batch_size": 256},
    "logistic": {"kind": "logistic"},
    # a timm backbone fine-tuned end to end with layer-wise learning-rate decay (set
    #   classifier.backbone and backbone_weights)
    "fine-tune": {"network": "backbone", "learning_rate": 3e-4, "layer_decay": 0.75},
    "smoke": {"width": 8, "blocks": 3, "epochs": 2, "patience": 2, "batch_size": 16},
    "quick": {"width": 16, "epochs": 25, "patience": 6},
    "paper": {"epochs": 150, "patience": 20, "batch_size": 64, "device": "cuda"},
    # quick's network with the modern small-data recipe on (see classify/recipe.py); on Herlev
    #   validation patients it was not better than quick at the same budget (BENCHMARKS.md)
    "recipe": {
        "width": 16,
        "epochs": 40,
        "patience": 12,
        "min_epochs": 10,
        "weight_decay": 0.05,
        "schedule": "cosine",
        "warmup_fraction": 0.05,
        "label_smoothing": 0.1,
        "mixup_alpha": 0.2,
        "cutmix_alpha": 1.0,
        "mix_probability": 0.5,
        "ema_decay": 0.99,
        "sampler": "balanced",
        "class_weighted_loss": False,
    },
}


CLASSIFIER: Presets[ClassifierConfig] = Presets(ClassifierConfig, PRESETS, "classifier")
"""The classifier's configs (see :class:`~pathsynth.config.Presets`)."""
