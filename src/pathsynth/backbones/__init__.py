"""Feature backbones (timm architectures with local or hub weights) and image embeddings."""

from pathsynth.backbones.embed import AGGREGATION, embed_inputs, normalise, preprocessing_sha256
from pathsynth.backbones.load import Backbone, InputSpec, load_backbone, read_weights

__all__ = [
    "AGGREGATION",
    "Backbone",
    "InputSpec",
    "embed_inputs",
    "load_backbone",
    "normalise",
    "preprocessing_sha256",
    "read_weights",
]
