"""Network inputs to feature vectors: normalised as the backbone expects, patches averaged.

Inputs are the ``uint8`` squares :mod:`pathsynth.imaging.patches` makes (whole images or patches
of them). Each is resized to the backbone's input side when its side differs, scaled to [0, 1],
normalised with the backbone's mean and std, and passed through the frozen network; the features
of an image's patches are averaged (:data:`AGGREGATION`), one vector per image.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import torch
import torch.nn.functional as F

from pathsynth.backbones.load import Backbone, InputSpec
from pathsynth.errors import DataError

AGGREGATION = "mean"  # how the features of an image's patches become one vector
EMBED_VERSION = 1  # bump when this module changes the vectors it computes for the same inputs


def normalise(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """``uint8`` NCHW images as the backbone's float input (resized to ``spec.size`` if needed;
    a size of 0 takes them as they are).

    Raises:
        DataError: not a uint8 (N, 3, H, W) tensor.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise DataError(f"expected uint8 (N, 3, H, W) inputs, got {images.dtype} {images.shape}")
    x = images.float() / 255.0
    if spec.size and (x.shape[-1] != spec.size or x.shape[-2] != spec.size):
        mode = "bicubic" if spec.interpolation == "bicubic" else "bilinear"
        x = F.interpolate(x, size=(spec.size, spec.size), mode=mode, align_corners=False)
        x = x.clamp(0.0, 1.0)
    mean = torch.tensor(spec.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.inference_mode()
def embed_inputs(
    backbone: Backbone,
    inputs: torch.Tensor,
    image_index: torch.Tensor | None = None,
    batch_size: int = 64,
    bf16: bool = False,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
) -> torch.Tensor:
    """One feature vector per image: the mean of its inputs' features.

    Args:
        backbone: the frozen feature extractor.
        inputs: ``uint8`` (M, 3, S, S) network inputs.
        image_index: (M,) index of the image each input belongs to (0..n-1, every image present);
            ``None``: each input is its own image.
        batch_size: inputs per forward pass.
        bf16: bf16 autocast (on CPU and CUDA); vectors are returned as float32 either way.
        device: where the network runs.
        channels_last: NHWC memory layout (the same numbers; as fast or faster than NCHW for a
            ResNet-18 on the 2-core CPU, BENCHMARKS.md); the model is converted in place.

    Returns:
        ``float32`` (n, dim) on the CPU.

    Raises:
        DataError: no inputs, inputs that are not uint8 RGB squares, or an index of the wrong
            length or with an image without inputs.
    """
    if len(inputs) == 0:
        raise DataError("no inputs to embed")
    index = image_index if image_index is not None else torch.arange(len(inputs))
    if len(index) != len(inputs):
        raise DataError(f"{len(index)} image indices for {len(inputs)} inputs")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = backbone.model.to(device).to(memory_format=layout).eval()
    autocast = (
        torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
        if bf16
        else contextlib.nullcontext()
    )
    parts = []
    with autocast:
        for start in range(0, len(inputs), batch_size):
            batch = normalise(inputs[start : start + batch_size].to(device), backbone.spec)
            batch = batch.contiguous(memory_format=layout)
            parts.append(model(batch).float().cpu())
    features = torch.cat(parts)
    count = int(index.max()) + 1
    sums = torch.zeros(count, features.shape[1]).index_add_(0, index, features)
    per_image = torch.bincount(index, minlength=count)
    if bool((per_image == 0).any()):
        raise DataError("an image without inputs in the image index")
    return sums / per_image.unsqueeze(1).float()


def preprocessing_sha256(preprocess: dict[str, Any], spec: InputSpec) -> str:
    """Hex sha256 of everything between an image file and the backbone's input: the
    preprocessing config, the backbone's input spec, the aggregation and :data:`EMBED_VERSION`."""
    text = json.dumps(
        {
            "preprocess": preprocess,
            "input": spec.as_dict(),
            "aggregation": AGGREGATION,
            "version": EMBED_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()
