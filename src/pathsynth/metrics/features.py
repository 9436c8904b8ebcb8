"""Feature extractors that feed the synthesis-quality metrics, all offline.

Three kinds, all behind :class:`FeatureExtractor` (a name plus ``images -> (n, d) features``):

- :class:`ClassifierFeatures`: any ``torch.nn.Module`` (normally a classifier trained on the real
  train fold) with a forward hook on a named layer, or by default on the input of its last
  ``nn.Linear`` (the penultimate features). This is the default for pathology: Inception was
  trained on ImageNet photographs and needs a download anyway.
- :class:`BackboneFeatures`: a timm backbone (:mod:`pathsynth.backbones`: an SSL or foundation
  model's weights, or random init), images resized and normalised as its pretrained config asks;
  the domain features the experiment's quality stage prefers when a backbone has weights.
- :class:`InceptionFeatures`: torchvision's Inception-v3 pool features (2048-d), the standard for
  FID/KID, built ONLY from a local weights file the user passes; nothing is ever downloaded.

Images come in as uint8 NCHW (as :class:`pathsynth.imaging.tensorset.TensorImageSet` holds them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception_v3

from pathsynth.errors import CheckpointError, ConfigError, DataError
from pathsynth.imaging.tensorset import to_signed_float
from pathsynth.weights import read_state_dict

INCEPTION_INPUT_SIZE = 299  # Inception-v3's native resolution
INCEPTION_FEATURE_DIM = 2048  # width of the pool layer before the logits


class FeatureExtractor(Protocol):
    """Maps uint8 NCHW images to an (n, d) float feature matrix."""

    name: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def _check_uint8_images(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError(
            f"feature extraction takes uint8 NCHW images, got {images.dtype} {tuple(images.shape)}"
        )


def last_linear_layer_name(model: nn.Module) -> str:
    """Name of the last ``nn.Linear`` in ``model`` (its input is the penultimate feature vector).

    Raises:
        ConfigError: the model has no ``nn.Linear``.
    """
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ConfigError("the model has no nn.Linear layer; name the feature layer explicitly")
    return names[-1]


class ClassifierFeatures:
    """Features of a trained classifier, taken by a forward hook.

    Args:
        model: the network (left in eval mode while extracting, then restored).
        layer: name of a module in ``model.named_modules()`` whose *output* is the feature; 4-D
            outputs are averaged over space. ``None`` takes the *input* of the last ``nn.Linear``.
        preprocess: uint8 images -> network input; default ``to_signed_float`` ([-1, 1]), the
            input pathsynth's classifiers are trained on.
        batch_size: images per forward pass.
        name: how the features are named in reports.

    Raises:
        ConfigError: ``layer`` names no module of ``model``, or (``layer=None``) no ``nn.Linear``.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        preprocess: Callable[[torch.Tensor], torch.Tensor] = to_signed_float,
        batch_size: int = 64,
        name: str = "classifier",
    ) -> None:
        modules = dict(model.named_modules())
        self.hook_input = layer is None
        self.layer = last_linear_layer_name(model) if layer is None else layer
        if self.layer not in modules:
            raise ConfigError(f"the model has no layer named {self.layer!r}")
        self.model = model
        self.module = modules[self.layer]
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.name = name

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(n, d) float32 features of uint8 NCHW ``images``, on the CPU.

        Raises:
            DataError: images that are not uint8 NCHW.
        """
        _check_uint8_images(images)
        captured: list[torch.Tensor] = []

        def capture(_module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            value = inputs[0] if self.hook_input else output
            if value.ndim == 4:
                value = value.mean(dim=(2, 3))
            captured.append(value.flatten(start_dim=1).float().cpu())

        device = next(self.model.parameters()).device
        was_training = self.model.training
        handle = self.module.register_forward_hook(capture)
        self.model.eval()
        try:
            for start in range(0, len(images), self.batch_size):
                batch = images[start : start + self.batch_size].to(device)
                self.model(self.preprocess(batch))
        finally:
            handle.remove()
            self.model.train(was_training)
        return torch.cat(captured)


class BackboneFeatures:
    """Pooled features of a frozen timm backbone (see :mod:`pathsynth.backbones`).

    Args:
        backbone: a :class:`~pathsynth.backbones.load.Backbone` (from ``load_backbone``).
        device: where the network runs.
        batch_size: images per forward pass.
    """

    def __init__(self, backbone: Any, device: torch.device | str = "cpu", batch_size: int = 64):
        self.backbone = backbone
        self.device = device
        self.batch_size = batch_size
        self.name = f"{backbone.name} ({backbone.weights})"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(n, dim) float32 features of uint8 NCHW RGB ``images``, on the CPU.

        Raises:
            DataError: images that are not uint8 (N, 3, H, W).
        """
        from pathsynth.backbones.embed import embed_inputs

        _check_uint8_images(images)
        return embed_inputs(self.backbone, images, batch_size=self.batch_size, device=self.device)


def load_inception(weights_path: Path | str) -> nn.Module:
    """torchvision Inception-v3 with weights from a local file, its classifier head removed.

    The file must hold a state dict of ``torchvision.models.inception_v3`` (e.g. one saved from
    ``inception_v3(weights=...)`` on a machine with internet). Whether it has the auxiliary head and
    how many classes it was trained for is read from the file. The network takes inputs in [-1, 1]
    (``transform_input=False``, the range the original Inception was trained on).

    Args:
        weights_path: path of the state dict file.

    Returns:
        The network in eval mode, returning (n, 2048) pool features.

    Raises:
        CheckpointError: the file is missing, unreadable, not a state dict, or not an Inception-v3
            state dict (missing, unexpected or mis-shaped tensors).
    """
    path = Path(weights_path)
    state = read_state_dict(path, "Inception-v3")
    head = state.get("fc.weight")
    if head is None or head.ndim != 2 or head.shape[1] != INCEPTION_FEATURE_DIM:
        raise CheckpointError(f"{path} is not an Inception-v3 state dict (no 2048-wide fc layer)")
    has_aux = any(key.startswith("AuxLogits.") for key in state)
    model = inception_v3(
        weights=None,
        aux_logits=has_aux,
        init_weights=False,
        num_classes=int(head.shape[0]),
        transform_input=False,
    )
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise CheckpointError(f"{path} does not match Inception-v3: {first_line}") from error
    model.fc = nn.Identity()
    return model.eval()


class InceptionFeatures:
    """Inception-v3 pool features (the standard FID/KID features) from a local weights file.

    Images are resized to 299x299 (bilinear, antialiased) and mapped to [-1, 1].

    Args:
        weights_path: local torchvision Inception-v3 state dict (see :func:`load_inception`).
        device: where to run the network.
        batch_size: images per forward pass.

    Raises:
        CheckpointError: as :func:`load_inception`.
    """

    name = "inception-v3"

    def __init__(
        self, weights_path: Path | str, device: torch.device | str = "cpu", batch_size: int = 32
    ) -> None:
        self.model = load_inception(weights_path).to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(n, 2048) float32 features of uint8 NCHW RGB ``images``, on the CPU.

        Raises:
            DataError: images that are not uint8 NCHW with 3 channels.
        """
        _check_uint8_images(images)
        if images.shape[1] != 3:
            raise DataError(f"Inception-v3 takes RGB images, got {images.shape[1]} channels")
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = to_signed_float(images[start : start + self.batch_size].to(self.device))
            batch = F.interpolate(
                batch,
                size=(INCEPTION_INPUT_SIZE, INCEPTION_INPUT_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            chunks.append(self.model(batch).float().cpu())
        return torch.cat(chunks)
