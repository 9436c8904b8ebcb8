"""A trained classifier as one file a lab can keep, copy and run: a classifier bundle.

A bundle (``*.bundle``) is one ``torch.save`` archive of plain, ``weights_only``-safe types:

- ``format``: :data:`BUNDLE_MARK`, so any other file is told apart from a bundle;
- ``bundle_version``: :data:`BUNDLE_VERSION`, bumped when the layout changes; a bundle of another
  version is refused with what to do (the pathsynth version that wrote it is in its provenance);
- ``manifest``: a JSON text of :class:`BundleManifest`: the classifier and preprocessing configs,
  the class names, where the classifier came from and how it scored on its test set;
- ``state_dict``: the network's weights.

Loading never unpickles code (``weights_only=True``) and rebuilds the network from the recorded
config, so a bundle runs in a fresh process on any machine with torch (no catalog, no SQL).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pathsynth import __version__
from pathsynth.classify.config import ClassifierConfig
from pathsynth.classify.listing import BundleListing, write_listing
from pathsynth.classify.networks import build_classifier
from pathsynth.config import from_plain, sanitise, to_plain
from pathsynth.errors import CheckpointError, ConfigError
from pathsynth.files import atomic_path
from pathsynth.imaging.patches import PreprocessConfig
from pathsynth.imaging.stain import StainReference
from pathsynth.weights import load_torch_file

BUNDLE_MARK = "pathsynth-classifier-bundle"
BUNDLE_VERSION = 1
BUNDLE_SUFFIX = ".bundle"


@dataclass(frozen=True)
class Provenance:
    """Where a classifier came from.

    Args:
        experiment: the experiment's name, ``None`` for a classifier trained outside one.
        protocol: ``honest`` or ``paper`` (how its test metrics were measured).
        condition: what it trained on: ``original``, ``affine``, ``synthetic``, ``affine+synthetic``.
        seed: the training seed.
        training_images: number of training inputs it saw (patches count one each).
        modality: ``histology`` or ``cytology``.
        source: the name of the folder of real images the experiment read (never its path,
            which may hold a user's or a patient's name).
        generator_run_id: the GAN run whose images it trained on, for the synthetic conditions.
        source_sha256: sha256 of the real training images, where the caller knows them.
        pathsynth_version: the version that trained it.
        created: UTC time the bundle was written (ISO 8601).
    """

    experiment: str | None = None
    protocol: str | None = None
    condition: str | None = None
    seed: int | None = None
    training_images: int | None = None
    modality: str | None = None
    source: str | None = None
    generator_run_id: str | None = None
    source_sha256: list[str] = field(default_factory=list)
    pathsynth_version: str = __version__
    created: str = ""


@dataclass(frozen=True)
class BundleManifest:
    """Everything in a bundle except the weights.

    Args:
        classifier: how the network is built (its ``weights_path`` is cleared: the weights are in
            the bundle).
        preprocess: how an image file becomes the network's inputs; :func:`predict_files` applies
            exactly this.
        class_names: class name per output index.
        provenance: where the classifier came from.
        metrics: its test summary (``accuracy``, ``balanced_accuracy``, ``macro_f1``,
            ``macro_auc``), ``None`` where undefined; empty when it was never tested.
        stain: the stain normalisation its inputs went through after ``preprocess`` (fitted on
            its training fold), ``None`` for none; :func:`predict_files` applies it too.
    """

    classifier: ClassifierConfig
    preprocess: PreprocessConfig
    class_names: list[str]
    provenance: Provenance
    metrics: dict[str, float | None] = field(default_factory=dict)
    stain: StainReference | None = None

    def listing(self) -> BundleListing:
        """What a listing of bundles shows of this one (its size is recorded when written)."""
        origin = self.provenance
        return BundleListing(
            origin.experiment,
            origin.protocol,
            origin.condition,
            origin.seed,
            list(self.class_names),
            dict(self.metrics),
        )


@dataclass
class ClassifierBundle:
    """A loaded bundle: the network in eval mode on its device, and its manifest.

    Args:
        path: the file it was read from.
        manifest: everything but the weights.
        model: the network with the bundle's weights, in eval mode.
    """

    path: Path
    manifest: BundleManifest
    model: nn.Module

    @property
    def class_names(self) -> list[str]:
        """Class name per output index."""
        return list(self.manifest.class_names)


def save_bundle(
    path: Path,
    model: nn.Module,
    config: ClassifierConfig,
    preprocess: PreprocessConfig,
    class_names: list[str],
    provenance: Provenance,
    metrics: dict[str, float | None] | None = None,
    stain: StainReference | None = None,
) -> Path:
    """Write a trained classifier as a bundle, atomically (whole or not at all).

    Args:
        path: the bundle file (its folder is created).
        model: the trained network (any device; the weights are saved on the CPU).
        config: the config it was built and trained with.
        preprocess: how its inputs were prepared from image files.
        class_names: class name per output index.
        provenance: where it came from; an empty ``created`` is set to now.
        metrics: its test summary, if it was tested.
        stain: the stain normalisation applied to its inputs after ``preprocess``, if any.

    Returns:
        ``path``.

    Raises:
        ConfigError: class names that are empty, repeated, or not one per network output.
    """
    names = list(class_names)
    outputs = _output_count(model)
    if (
        not names
        or len(set(names)) != len(names)
        or (outputs is not None and outputs != len(names))
    ):
        raise ConfigError(
            f"a bundle needs one distinct class name per output ({outputs} outputs), got {names}"
        )
    if not provenance.created:
        created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        provenance = dataclasses.replace(provenance, created=created)
    manifest = BundleManifest(
        classifier=dataclasses.replace(config, weights_path=None),
        preprocess=preprocess,
        class_names=names,
        provenance=provenance,
        metrics=dict(metrics or {}),
        stain=stain,
    )
    payload = {
        "format": BUNDLE_MARK,
        "bundle_version": BUNDLE_VERSION,
        "manifest": json.dumps(sanitise(to_plain(manifest)), allow_nan=False),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)
    write_listing(Path(path), manifest.listing())
    return Path(path)


def read_manifest(path: Path) -> BundleManifest:
    """A bundle's manifest without building its network (for listings).

    Raises:
        CheckpointError: what :func:`load_bundle` refuses about the file itself.
    """
    return _manifest(path, _read_payload(path))


def load_bundle(path: Path, device: torch.device | str = "cpu") -> ClassifierBundle:
    """Read a bundle and rebuild its network, in eval mode on ``device``.

    Args:
        path: the bundle file.
        device: where the network computes.

    Raises:
        CheckpointError: a missing or unreadable file, a file that is not a pathsynth classifier
            bundle, a bundle of another bundle version, a damaged manifest, or weights that do
            not fit the recorded network.
    """
    payload = _read_payload(path)
    manifest = _manifest(path, payload)
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"classifier bundle {path} holds no weights")
    model = build_classifier(manifest.classifier, len(manifest.class_names), weights=False)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # missing, unexpected or mis-shaped tensors
        reason = str(error).splitlines()[0].strip()
        raise CheckpointError(f"classifier bundle {path} weights do not fit: {reason}") from None
    model.to(torch.device(device)).eval()
    return ClassifierBundle(Path(path), manifest, model)


def load_bundles(path: Path, device: torch.device | str = "cpu") -> list[ClassifierBundle]:
    """One bundle, or every ``*.bundle`` under a folder (an ensemble: the seeds of a condition,
    ``classify/<protocol>/<condition>/``, or the folds x seeds a cross-validation gathers there).

    Raises:
        CheckpointError: a path that does not exist, a folder without bundles, a bundle that
            cannot be loaded, or bundles that disagree on what they predict (classes, modality,
            inputs, protocol or condition: the message names the first difference).
    """
    if not path.exists():
        raise CheckpointError(f"bundle {path} does not exist")
    files = sorted(path.rglob(f"*{BUNDLE_SUFFIX}")) if path.is_dir() else [path]
    if not files:
        raise CheckpointError(f"no *{BUNDLE_SUFFIX} file under {path}")
    bundles = [load_bundle(file, device) for file in files]
    first = bundles[0]
    for bundle in bundles[1:]:
        for what, mine, theirs in (
            ("classes", bundle.class_names, first.class_names),
            ("modality", bundle.manifest.provenance.modality, first.manifest.provenance.modality),
            ("inputs", bundle.manifest.preprocess, first.manifest.preprocess),
            ("protocol", bundle.manifest.provenance.protocol, first.manifest.provenance.protocol),
            (
                "condition",
                bundle.manifest.provenance.condition,
                first.manifest.provenance.condition,
            ),
        ):
            if mine != theirs:
                raise CheckpointError(
                    f"bundles under {path} differ in {what} ({first.path.name}: {theirs}, "
                    f"{bundle.path.name}: {mine}); name one condition's folder"
                )
    return bundles


def _read_payload(path: Path) -> dict[str, Any]:
    """The archive's top-level dict, checked to be a bundle of this version."""
    payload = load_torch_file(Path(path), "classifier bundle")
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_MARK:
        raise CheckpointError(f"{path} is not a pathsynth classifier bundle")
    version = payload.get("bundle_version")
    if version != BUNDLE_VERSION:
        raise CheckpointError(
            f"classifier bundle {path} has bundle version {version}, this pathsynth reads "
            f"{BUNDLE_VERSION}; load it with the pathsynth that wrote it, or retrain"
        )
    return payload


def _manifest(path: Path, payload: dict[str, Any]) -> BundleManifest:
    try:
        data = json.loads(payload["manifest"])
        return from_plain(BundleManifest, data, "classifier bundle")
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise CheckpointError(f"classifier bundle {path} has a damaged manifest: {error}") from None


def _output_count(model: nn.Module) -> int | None:
    """Outputs of the network's last linear layer (``None`` when it has none)."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    return linears[-1].out_features if linears else None
