"""Classifier networks: a small paper-like CNN and torchvision's ResNet-18, both from random init.

The reference paper only says "a CNN". :class:`SmallCNN` is the plain design of that era, kept
small for sets of a few hundred images: ``blocks`` x (3x3 conv - batch norm - ReLU - 2x2 max pool),
channels doubling per block, then global average pooling, dropout and one linear layer. Global
pooling makes it indifferent to the input size (128x128 patches or whole resized images) and keeps
the parameter count low (about 0.4 M at width 32, 4 blocks), which matters with tens of originals.

ResNet-18 is the common stronger baseline; it is built with random weights and may start from a
local state dict the user supplies. Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from pathsynth.classify.config import FROZEN_KINDS, ClassifierConfig
from pathsynth.errors import CheckpointError, ConfigError
from pathsynth.weights import read_state_dict

if TYPE_CHECKING:
    from torchvision.models import ResNet


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    """A few conv-BN-ReLU-pool blocks, global average pooling and a linear head.

    Args:
        num_classes: number of output logits.
        in_channels: image channels.
        width: channels of the first block (doubled by each following block).
        blocks: number of conv blocks (each halves the resolution).
        dropout: dropout probability before the head.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        width: int = 32,
        blocks: int = 4,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        channels = [in_channels] + [width * 2**i for i in range(blocks)]
        self.features = nn.Sequential(
            *(_conv_block(channels[i], channels[i + 1]) for i in range(blocks))
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels[-1], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of images (N, C, H, W) in [-1, 1]."""
        pooled = self.pool(self.features(images)).flatten(start_dim=1)
        return self.head(self.dropout(pooled))


def resnet18(num_classes: int, weights_path: Path | str | None = None) -> ResNet:
    """torchvision ResNet-18 with ``num_classes`` outputs, random init or local weights.

    When the file's head has a different number of classes (e.g. ImageNet's 1000), the head is
    left freshly initialised and every other layer is loaded.

    Args:
        num_classes: number of output logits.
        weights_path: optional local state dict of a torchvision ResNet-18.

    Returns:
        The network.

    Raises:
        CheckpointError: the file is missing, unreadable, not a state dict, or not a ResNet-18
            state dict (missing, unexpected or mis-shaped tensors outside the head).
    """
    # imported here so the small CNN (and its bundles) run where torchvision is not installed
    from torchvision.models import resnet18 as torchvision_resnet18

    model = torchvision_resnet18(weights=None, num_classes=num_classes)
    if weights_path is None:
        return model
    path = Path(weights_path)
    state = read_state_dict(path, "classifier")
    head = state.get("fc.weight")
    if head is not None and head.shape != model.fc.weight.shape:
        state = {key: value for key, value in state.items() if not key.startswith("fc.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # mis-shaped tensors
        raise CheckpointError(
            f"{path} does not match ResNet-18: {str(error).splitlines()[-1].strip()}"
        ) from error
    missing_body = [key for key in missing if not key.startswith("fc.")]
    if missing_body or unexpected:
        some = (missing_body or list(unexpected))[:3]
        raise CheckpointError(
            f"{path} does not match ResNet-18: {len(missing_body)} tensors missing, "
            f"{len(unexpected)} unexpected (e.g. {', '.join(some)})"
        )
    return model


def build_classifier(
    config: ClassifierConfig, num_classes: int, in_channels: int = 3, weights: bool = True
) -> nn.Module:
    """The network ``config.network`` names, for ``num_classes`` classes.

    A ``linear-probe`` or ``logistic`` config gives a
    :class:`~pathsynth.classify.probe.FrozenFeatureClassifier` whose backbone is the bare
    architecture (random init; a bundle's state dict or the caller supplies the weights), except
    a hub backbone, which is loaded from the hub (cache). ``network="backbone"`` gives a
    :class:`~pathsynth.classify.finetune.BackboneClassifier` starting from ``backbone_weights``.

    Args:
        config: the classifier config.
        num_classes: number of outputs.
        in_channels: image channels.
        weights: load ``backbone_weights`` for ``network="backbone"``; False builds the bare
            architecture (a bundle's state dict then supplies every tensor).

    Raises:
        CheckpointError: a ``weights_path`` that :func:`resnet18` refuses, or backbone weights
            :func:`~pathsynth.backbones.load.load_backbone` refuses.
        ConfigError: ``weights_path`` with the small CNN, ResNet-18 or a backbone on non-RGB
            images, a backbone timm does not know, or more ``finetune_blocks`` than it has.
    """
    if config.kind in FROZEN_KINDS or config.network == "backbone":
        if in_channels != 3:
            raise ConfigError(f"a timm backbone takes RGB images, got {in_channels} channels")
        from pathsynth.classify.probe import FrozenFeatureClassifier, probe_backbone

        if config.kind in FROZEN_KINDS:
            return FrozenFeatureClassifier(probe_backbone(config, weights=False), num_classes)
        from pathsynth.classify.finetune import BackboneClassifier

        backbone = probe_backbone(config, weights=weights)
        return BackboneClassifier(backbone, num_classes, config.finetune_blocks)
    if config.network == "resnet18":
        if in_channels != 3:
            raise ConfigError(f"resnet18 takes RGB images, got {in_channels} channels")
        return resnet18(num_classes, config.weights_path)
    if config.weights_path is not None:
        raise ConfigError("weights_path is only used with network='resnet18'")
    return SmallCNN(num_classes, in_channels, config.width, config.blocks, config.dropout)
