"""Image generators behind one interface: train a run, resume it, sample from it, describe it.

The experiment driver and the ``generate`` command speak only :class:`ImageGenerator`; each kind
(the class-conditional GAN and the diffusion model) plugs in through :data:`GENERATORS` without touching them.
"""

from pathsynth.generators.base import (
    GeneratorSummary,
    ImageGenerator,
    Samples,
    TrainedRun,
    store_samples,
)
from pathsynth.generators.registry import GENERATORS, generator_for

__all__ = [
    "GENERATORS",
    "GeneratorSummary",
    "ImageGenerator",
    "Samples",
    "TrainedRun",
    "generator_for",
    "store_samples",
]
