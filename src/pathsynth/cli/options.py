"""Which command-line option sets which config key, in one place.

A command names the table of its options (by parameter name) and :func:`config_overrides` turns
the options given on the command line (not ``None``) into dotted-key overrides, with the
``--set`` assignments on top. Paths become text; comma lists are split by the config's reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# train-gan, train-diffusion, pretrain (each has the options its config has)
TRAINING_KEYS = {
    "steps": "optim.steps",
    "batch_size": "optim.batch_size",
    "resolution": "data.preprocess.size",
    "seed": "run.seed",
    "device": "run.device",
    "loss": "loss.kind",
    "backbone": "model.backbone",
}
# generate, diffusion runs: the run's sampling group
SAMPLING_KEYS = {
    "sampler": "sampler",
    "sampling_steps": "steps",
    "guidance": "guidance",
    "guidance_interval": "guidance_interval",
    "compile_unet": "compile",
}
# reproduce, classify
EXPERIMENT_KEYS = {
    "seeds": "seeds",
    "folds": "folds",
    "protocols": "protocols",
    "protocol": "protocols",
    "train_on": "conditions",
    "generator": "generator",
    "device": "device",
    "inception_weights": "inception_weights",
    "pixel_size": "source_pixel_size_um",
    "external_pixel_size": "external_pixel_size_um",
    "network": "classifier.network",
    "classifier_kinds": "classifier_kinds",
    "quality_backbone": "quality.backbone",
    "quality_backbone_weights": "quality.backbone_weights",
    "classifier_weights": "classifier.weights_path",
}


def config_overrides(
    given: Mapping[str, Any], keys: Mapping[str, str], assignments: Iterable[str] = ()
) -> dict[str, Any]:
    """The overrides of a command: each of its options (``given``: typer's ``ctx.params``) named
    in ``keys`` that was given (not ``None``), under its config key, then the ``--set key=value``
    assignments.

    Raises:
        ConfigError: an assignment without ``=``.
    """
    from pathsynth.config import parse_assignments

    overrides = {
        key: str(given[name]) if isinstance(given[name], Path) else given[name]
        for name, key in keys.items()
        if given.get(name) is not None
    }
    overrides.update(parse_assignments(assignments))
    return overrides
