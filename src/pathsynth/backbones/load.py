"""Feature backbones through timm, from a local weights file, a Hugging Face hub id, or random init.

``load_backbone("resnet18", weights="lab/resnet18.safetensors")`` builds timm's architecture with
no classification head (``num_classes=0``: the forward pass returns pooled features) and loads a
state dict or safetensors file into it. Files written by other trainers wrap their keys in a
prefix (``module.`` from DDP, ``model.``, ``backbone.``, ``encoder.``, ``trunk.``); the prefix that
makes the file's keys match the architecture is removed, as is the file's classification head. A
file that still does not match is refused with one line naming the first missing, unexpected or
mis-shaped tensors. ``weights="hf-hub:org/name"`` lets timm read the model's ``config.json`` and
weights from the hub, which on a machine without a network means the local cache
(``HF_HUB_OFFLINE=1``, ``HF_HUB_CACHE``). Nothing is downloaded by the tests or CI.

``load_backbone("handcrafted")`` is no network: stain, texture and nuclei features computed by
scikit-image (:mod:`pathsynth.backbones.handcrafted`), the classic baseline a classifier can be
compared with.

Input size and normalisation come from the backbone's own pretrained config
(``timm.data.resolve_data_config``), so a foundation model sees inputs as it was trained on them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pathsynth.errors import CheckpointError, ConfigError
from pathsynth.weights import load_torch_file

HUB_PREFIX = "hf-hub:"
HANDCRAFTED = "handcrafted"  # stain, texture and nuclei features, not a network (handcrafted.py)
# wrappers other trainers put around a backbone's keys, tried in this order (and nested)
KEY_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "trunk.", "student.", "teacher.")
_SHOWN = 3  # tensors named in a mismatch message


@dataclass(frozen=True)
class InputSpec:
    """What the backbone expects: square side, channel mean and std in [0, 1] units.

    Attributes:
        size: side of the square input, pixels; 0: inputs as they come (handcrafted features).
        mean: per-channel mean subtracted from RGB in [0, 1].
        std: per-channel standard deviation divided by.
        interpolation: how timm resizes for this model (``bilinear``, ``bicubic``).
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str

    def as_dict(self) -> dict[str, Any]:
        """The spec as JSON-able data (part of an embedding's preprocessing key)."""
        return {
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }


@dataclass
class Backbone:
    """A feature extractor and what identifies its features.

    Attributes:
        name: the timm architecture or hub id it was built from.
        model: the network, in eval mode; ``model(x)`` returns (N, dim) features.
        spec: its input size and normalisation.
        dim: the feature dimension.
        weights_sha256: hash of every tensor of the loaded state (names, shapes, dtypes, bytes): two
            backbones with the same hash compute the same features, whatever file they came from.
        weights: where the weights came from (a path, a hub id, or ``random-init``).
    """

    name: str
    model: nn.Module
    spec: InputSpec
    dim: int
    weights_sha256: str
    weights: str


def load_backbone(
    name: str, weights: str | Path | None = None, seed: int = 0, input_size: int | None = None
) -> Backbone:
    """A timm architecture as a feature extractor, with local, hub or random-init weights.

    Args:
        name: a timm architecture (``resnet18``, ``vit_small_patch16_224``, ...), optionally
            with a pretrained tag whose config sets the normalisation (``.dino``), a hub id
            ``hf-hub:org/name`` (then ``weights`` must be ``None`` or the same id), or
            ``handcrafted`` (:mod:`pathsynth.backbones.handcrafted`; no weights).
        weights: a state dict (``torch.save``) or ``.safetensors`` file, ``hf-hub:org/name``,
            or ``None`` for random init (seeded by ``seed``, so it is reproducible).
        seed: seeds random init.
        input_size: the side inputs are resized to, replacing the pretrained config's (a CNN
            takes any size; small sizes keep tests and CPU runs fast); ``None``: the config's.

    Returns:
        The backbone in eval mode on the CPU.

    Raises:
        ConfigError: an architecture timm does not know, or a hub id that cannot be resolved
            (no network and not in the local cache), or an ``input_size`` below 16, or weights
            for the handcrafted features.
        CheckpointError: a weights file that is missing, truncated or not weights, or whose
            tensors do not match the architecture (names the first missing, unexpected or
            mis-shaped ones).
    """
    if input_size is not None and input_size < 16:
        raise ConfigError(f"backbone input_size must be at least 16 pixels, got {input_size}")
    if name == HANDCRAFTED:
        return _handcrafted(weights, input_size)
    source = str(weights) if weights is not None else None
    hub = name if name.startswith(HUB_PREFIX) else None
    if source is not None and source.startswith(HUB_PREFIX):
        if hub is not None and hub != source:
            raise ConfigError(f"backbone {name} and weights {source} name two hub models")
        hub = source
    torch.manual_seed(seed)
    if hub is not None:
        model, origin = _from_hub(hub), hub
    else:
        model = _architecture(name)
        origin = "random-init"
        if source is not None:
            _load_file(model, Path(source), name)
            origin = source
    model.eval()
    spec = input_spec(model)
    if input_size is not None:
        spec = dataclasses.replace(spec, size=input_size)
    return Backbone(
        name=hub or name,
        model=model,
        spec=spec,
        dim=int(getattr(model, "num_features", 0)) or _probe_dim(model),
        weights_sha256=state_sha256(model),
        weights=origin,
    )


def _handcrafted(weights: str | Path | None, input_size: int | None) -> Backbone:
    """The handcrafted stain, texture and nuclei features (no weights; inputs as they come
    unless ``input_size`` is given).

    Raises:
        ConfigError: a weights file or hub id for it.
    """
    from pathsynth.backbones.handcrafted import DIM, HandcraftedFeatures

    if weights is not None:
        raise ConfigError(f"the {HANDCRAFTED} backbone has no weights; got {weights}")
    model = HandcraftedFeatures().eval()
    spec = InputSpec(
        size=input_size or 0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="bilinear"
    )
    return Backbone(HANDCRAFTED, model, spec, DIM, state_sha256(model), "none (handcrafted)")


def _architecture(name: str) -> nn.Module:
    """A random-init timm architecture without its classification head.

    Raises:
        ConfigError: an architecture timm does not know (naming up to 5 similar ones).
    """
    import timm

    if not timm.is_model(name):  # a pretrained tag (vit_small_patch16_224.dino) is allowed
        close = timm.list_models(f"*{name}*")[:5]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise ConfigError(f"timm has no architecture {name!r}{hint}")
    return timm.create_model(name, pretrained=False, num_classes=0)


def _from_hub(hub: str) -> nn.Module:
    """timm's model for a hub id (from the local cache when offline)."""
    import timm

    try:
        return timm.create_model(hub, pretrained=True, num_classes=0)
    except (OSError, ValueError, RuntimeError) as error:
        # huggingface_hub's offline/not-found errors derive from OSError or ValueError
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ConfigError(
            f"backbone {hub} cannot be loaded ({type(error).__name__}: {first[:200]}); without a "
            "network it must be in the local hub cache (HF_HUB_CACHE), or pass a weights file"
        ) from None


def input_spec(model: nn.Module) -> InputSpec:
    """The input size and normalisation of a timm model's pretrained config."""
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=model)
    _, height, width = config["input_size"]
    mean = tuple(float(v) for v in config["mean"])
    std = tuple(float(v) for v in config["std"])
    return InputSpec(
        size=int(max(height, width)),
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        interpolation=str(config.get("interpolation", "bilinear")),
    )


def read_weights(path: Path, what: str = "backbone") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors or ``torch.save`` file (a bare state dict or one under
    ``state_dict``, ``model``, ``teacher`` or ``student``).

    Raises:
        CheckpointError: missing, truncated, damaged, or holding no tensors.
    """
    if not path.is_file():
        raise CheckpointError(f"{what} weights file {path} does not exist")
    with path.open("rb") as handle:
        head = handle.read(9)
    if path.suffix == ".safetensors" or (len(head) == 9 and head[8:9] == b"{"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(
                f"{what} weights file {path} cannot be read as safetensors "
                f"({str(error).splitlines()[0][:120]}): it is truncated or another kind of file"
            ) from None
    loaded = load_torch_file(path, f"{what} weights file")
    state = _unwrap(loaded) if isinstance(loaded, dict) else {}
    if not state:
        raise CheckpointError(f"{what} weights file {path} holds no tensors")
    return state


def _unwrap(loaded: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of a bare state dict or of the first known wrapper key holding one."""
    for key in ("state_dict", "model", "teacher", "student"):
        inner = loaded.get(key)
        if isinstance(inner, dict) and inner:
            loaded = inner
            break
    return {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}


def _strip_prefixes(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """``state`` with wrapper prefixes removed: one every key carries, or one whose removal
    matches more of ``expected`` (nested ones such as ``module.backbone.`` come off in turn)."""
    changed = True
    while changed:
        changed = False
        matched = len(expected & state.keys())
        for prefix in KEY_PREFIXES:
            stripped = {
                (k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()
            }
            wrapper = all(k.startswith(prefix) for k in state)
            if wrapper or len(expected & stripped.keys()) > matched:
                state, changed = stripped, True
                break
    return state


def _load_file(model: nn.Module, path: Path, name: str) -> None:
    """Load a weights file into ``model`` (prefixes handled, its classifier head dropped).

    Raises:
        CheckpointError: as :func:`read_weights`, or tensors that do not match ``name``.
    """
    state = _strip_prefixes(read_weights(path), set(model.state_dict()))
    expected = model.state_dict()
    head = str(getattr(model, "pretrained_cfg", {}).get("classifier") or "")
    heads = tuple(f"{part}." for part in (head, "fc", "head", "classifier") if part)
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(heads)}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:_SHOWN])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:_SHOWN])})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape ({'; '.join(shapes[:_SHOWN])})")
        raise CheckpointError(f"{path} does not match {name}: tensors " + ", ".join(parts))
    model.load_state_dict(state, strict=True)


def state_sha256(model: nn.Module) -> str:
    """Hex sha256 over every tensor of the model's state: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous()
        digest.update(json.dumps([key, str(flat.dtype), list(flat.shape)]).encode())
        if flat.dtype == torch.bfloat16:
            flat = flat.view(torch.int16)
        digest.update(flat.numpy().tobytes())
    return digest.hexdigest()


def _probe_dim(model: nn.Module) -> int:
    spec = input_spec(model)
    with torch.no_grad():
        return int(model(torch.zeros(1, 3, spec.size, spec.size)).shape[-1])
