"""Fine-tuning a timm backbone (``classifier.network=backbone``): all layers or the last blocks,
with layer-wise learning-rate decay.

:class:`BackboneClassifier` puts a new linear head on a :class:`~pathsynth.backbones.load.Backbone`
and takes images in [-1, 1] like every other classifier, resized and normalised as the backbone's
own pretrained config asks; the trainer, bundles, ``predict`` and test-time evaluation treat it
as any network. Its layers are timm's layer groups (``model.group_matcher``: for a ResNet the stem
and each residual block, for a ViT the patch embedding and each transformer block), numbered from
the input; :func:`layer_groups` says which group each tensor belongs to.

- ``finetune_blocks=N`` trains only the last N groups and the head; the others are frozen, and
  their batch-norm layers keep their statistics (eval mode) while the rest trains.
- ``layer_decay=d`` gives the group k steps below the top ``learning_rate * d**k`` (BEiT's
  layer-wise decay, through timm's ``param_groups_layer_decay``); the head and the top group
  train at the full rate. One-dimensional tensors (norms, biases) get no weight decay, as timm
  does.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pathsynth.backbones.load import HANDCRAFTED, Backbone
from pathsynth.classify.config import ClassifierConfig
from pathsynth.errors import ConfigError


def layer_groups(model: nn.Module) -> dict[str, int]:
    """The timm layer group of every parameter of ``model`` (0 = nearest the input).

    Uses the model's ``group_matcher`` (fine-grained: one group per block) where timm defines
    one, otherwise timm's automatic grouping.
    """
    from timm.models import group_parameters
    from timm.optim._param_groups import auto_group_layers

    matcher = getattr(model, "group_matcher", None)
    if callable(matcher):
        mapping = group_parameters(model, matcher(coarse=False), reverse=True)
    else:
        mapping = auto_group_layers(model)
    return {name: int(group) for name, group in mapping.items()}


class BackboneClassifier(nn.Module):
    """A timm backbone and a new linear head, trained end to end or in its last blocks.

    Args:
        backbone: the feature extractor (its weights are the starting point).
        num_classes: number of output logits.
        finetune_blocks: train only the backbone's last N layer groups; 0 = every layer.

    Raises:
        ConfigError: ``finetune_blocks`` larger than the backbone's number of layer groups, or
            the handcrafted features (no parameters).
    """

    mean: torch.Tensor  # the backbone's input normalisation, (1, 3, 1, 1) buffers
    std: torch.Tensor

    def __init__(self, backbone: Backbone, num_classes: int, finetune_blocks: int = 0) -> None:
        super().__init__()
        if backbone.name == HANDCRAFTED:
            raise ConfigError(
                f"the {HANDCRAFTED} features have nothing to fine-tune; use them with "
                "classifier.kind=logistic or linear-probe"
            )
        self.backbone = backbone.model
        self.spec = backbone.spec
        self.head = nn.Linear(backbone.dim, num_classes)
        self.groups = layer_groups(self.backbone)
        self.layers = max(self.groups.values(), default=0) + 1
        if finetune_blocks > self.layers:
            raise ConfigError(
                f"finetune_blocks {finetune_blocks} is more than the {self.layers} layer groups of "
                f"{backbone.name}"
            )
        first_trained = self.layers - finetune_blocks if finetune_blocks else 0
        for name, parameter in self.backbone.named_parameters():
            parameter.requires_grad_(self.groups.get(name, self.layers - 1) >= first_trained)
        mean = torch.tensor(backbone.spec.mean).view(1, 3, 1, 1)
        std = torch.tensor(backbone.spec.std).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def train(self, mode: bool = True) -> BackboneClassifier:
        """Train mode, except frozen batch-norm layers, which keep their statistics."""
        super().train(mode)
        for module in self.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                own = list(module.parameters(recurse=False))
                if own and not any(p.requires_grad for p in own):
                    module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of images (N, 3, H, W) in [-1, 1]."""
        x = (images.float() + 1.0) / 2.0
        size = self.spec.size
        if x.shape[-1] != size or x.shape[-2] != size:
            mode = "bicubic" if self.spec.interpolation == "bicubic" else "bilinear"
            x = F.interpolate(x, size=(size, size), mode=mode, align_corners=False).clamp(0, 1)
        x = (x - self.mean) / self.std
        return self.head(self.backbone(x))

    def parameter_groups(self, config: ClassifierConfig) -> list[dict[str, Any]]:
        """AdamW parameter groups: the trainable backbone tensors with their layer's rate
        (``learning_rate * layer_decay**k``) and weight decay, and the head at the full rate."""
        from timm.optim import param_groups_layer_decay

        groups = param_groups_layer_decay(
            self.backbone, weight_decay=config.weight_decay, layer_decay=config.layer_decay
        )
        for group in groups:
            group["lr"] = config.learning_rate * float(group.pop("lr_scale", 1.0))
        groups.append({"params": list(self.head.parameters()), "lr": config.learning_rate})
        return [group for group in groups if group["params"]]


def optimiser_groups(model: nn.Module, config: ClassifierConfig) -> list[dict[str, Any]]:
    """What the trainer's AdamW steps: a fine-tuned backbone's layer-wise groups, or every
    trainable parameter of any other network at ``learning_rate``."""
    if isinstance(model, BackboneClassifier):
        return model.parameter_groups(config)
    return [{"params": [p for p in model.parameters() if p.requires_grad]}]
