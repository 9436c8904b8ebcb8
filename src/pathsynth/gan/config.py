"""Training configuration: one dataclass per concern, flat dotted keys, presets that override defaults.

Every hyper-parameter lives here with its allowed values in a comment. A run resolves
``defaults <- preset <- overrides`` (``--set group.key=value`` on the command line) and saves the
result as ``config.json`` in its run folder, so any number in a run can be traced in seconds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from pathsynth.errors import ConfigError

LOSS_KINDS = ("bce", "wgan-gp", "hinge")
FIT_MODES = ("pad", "crop", "stretch")
AMP_MODES = ("auto", "bf16", "off")
AUGMENT_OPS = ("color", "translation", "cutout")


@dataclass
class DataConfig:
    """Where the images come from and how they reach the network's square."""

    folder: str = ""  # class-folder root FOLDER/<class>/<image>; "" when taken from a workspace
    workspace: str = ""  # workspace folder when the images come from the catalog
    split: str = ""  # catalog split name (with workspace)
    fold: str = "train"  # catalog fold name (with workspace)
    resolution: int = 128  # square side in pixels; must be one the networks can make (see networks)
    fit: str = "pad"  # "pad" (keep aspect, pad onto canvas) | "crop" (center crop) | "stretch"
    fill: str = (
        "border"  # canvas colour for fit=pad: "border" (median border colour) | "black" | "white"
    )


@dataclass
class ModelConfig:
    """Network shapes. Widths follow ``min(channel_max, channel_base // side)`` per layer."""

    noise_dim: int = 64  # N(0, 1) numbers fed to the generator (paper: 64)
    class_embed_dim: int = 64  # size of the learned class embedding concatenated to the noise
    g_fc_side: int = 4  # side of the feature map the fully connected layer makes
    g_layers: int = 7  # transposed convolutions (paper: 7); stride-1 ones come first, at g_fc_side
    g_channel_base: int = 4096  # generator width numerator
    g_channel_max: int = 512  # generator width cap
    g_dropout: float = (
        0.1  # dropout rate after each generator layer (paper: present, rate unstated)
    )
    d_layers: int = 6  # convolutions (paper: 6)
    d_stride2_layers: int = 5  # of which the first ones have stride 2 (paper: 5)
    d_channel_base: int = 4096  # discriminator width numerator
    d_channel_max: int = 512  # discriminator width cap
    d_dropout: float = 0.3  # dropout rate after each discriminator convolution
    leaky_slope: float = 0.2  # LeakyReLU slope (paper: 0.2)
    kernel: int = 5  # kernel side of every (transposed) convolution (paper: 5)
    spectral_norm: bool = False  # spectral normalisation on every discriminator layer
    d_minibatch_std_group: int = 0  # minibatch-stddev feature over groups of this size; 0 = off


@dataclass
class LossConfig:
    """Adversarial loss and regularisers."""

    kind: str = "bce"  # "bce" (logit + BCE, the paper's sigmoid) | "wgan-gp" | "hinge"
    gp_weight: float = 10.0  # gradient penalty weight (wgan-gp only)
    r1_gamma: float = 0.0  # R1 penalty on real images, gamma/2 * |grad D(x)|^2; 0 = off
    r1_interval: int = 1  # apply R1 every this many D steps (lazy regularisation)
    lecam_weight: float = 0.0  # LeCam regulariser weight; 0 = off
    lecam_decay: float = 0.99  # EMA decay of the LeCam anchors


@dataclass
class OptimConfig:
    """Optimisers and schedule."""

    batch_size: int = 64  # global batch (split over ranks under torchrun)
    g_lr: float = 1e-3  # generator Adam learning rate (paper: 1e-3)
    d_lr: float = 1e-3  # discriminator Adam learning rate (paper: 1e-3)
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    weight_decay: float = 1e-6  # L2 regularisation, as Adam's coupled weight decay (paper: 1e-6)
    n_critic: int = 1  # discriminator steps per generator step
    epochs: int = 3000  # passes over the data (paper: 3000); used when steps == 0
    steps: int = 0  # generator steps to train; 0 = derive from epochs


@dataclass
class AugmentConfig:
    """Differentiable augmentation of everything the discriminator sees."""

    policy: str = ""  # comma list of "color", "translation", "cutout"; "" = none
    p: float = 1.0  # probability each image is augmented (start value when adaptive)
    adaptive: bool = False  # ADA-style: move p so the sign of D(real) averages to target
    target: float = 0.6  # target of E[sign(D(real))]
    interval: int = 4  # generator steps between p updates
    speed_kimg: float = 20.0  # thousands of images for p to go 0 -> 1


@dataclass
class EmaConfig:
    """Exponential moving average of the generator, used for samples and generation."""

    decay: float = 0.999  # per-step decay
    start_step: int = 0  # copy G straight into EMA before this step
    warmup: bool = True  # use min(decay, (1 + step) / (10 + step)): early EMA not stuck at init


@dataclass
class RunConfig:
    """Run bookkeeping and the speed options."""

    seed: int = 0  # seeds weights, noise, dropout, augmentation and data order
    sample_every: int = 500  # steps between sample grids (0 = only at the end)
    checkpoint_every: int = 1000  # steps between 'last' checkpoints (0 = only at the end)
    quality_every: int = 1000  # steps between quality signals for the 'best' checkpoint (0 = off)
    quality_samples: int = 256  # EMA samples (and real images) for the quality signal
    log_every: int = 50  # steps between JSONL stats lines
    samples_per_class: int = 8  # fixed-noise images per class in each grid
    device: str = "auto"  # "auto" (cuda if present) | "cpu" | "cuda" | "cuda:N"
    amp: str = "auto"  # "auto" (bf16 on CUDA and on CPUs with native bf16, measured faster) | "bf16" | "off"
    channels_last: bool = True  # NHWC memory format for convolutions
    compile: bool = False  # torch.compile both networks (measured slower on the 2-core CPU)
    fused_adam: bool = True  # fused Adam kernels (CUDA and CPU); off = foreach kernels


@dataclass
class TrainConfig:
    """The whole resolved configuration of a training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = "paper"  # the preset it was resolved from (informational)

    def to_dict(self) -> dict[str, Any]:
        """The config as nested plain data (what ``config.json`` holds)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The config as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


_GROUPS = ("data", "model", "loss", "optim", "augment", "ema", "run")


def valid_keys() -> list[str]:
    """Every dotted key a preset or ``--set`` may name, e.g. ``optim.batch_size``."""
    base = TrainConfig()
    keys = []
    for group in _GROUPS:
        for f in dataclasses.fields(getattr(base, group)):
            keys.append(f"{group}.{f.name}")
    return keys


def _coerce(key: str, current: Any, value: Any) -> Any:
    """``value`` converted to the type of the default at ``key``."""
    kind = type(current)
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() in ("1", "true", "yes", "on"):
                    return True
                if text.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if kind is int:
                number = float(text)
                if not number.is_integer():
                    raise ValueError(text)
                return int(number)
            return kind(text)
        except ValueError:
            raise ConfigError(
                f"config key {key!r} wants a {kind.__name__}, got {value!r}"
            ) from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"config key {key!r} wants a {kind.__name__}, got {value!r}")
    return value


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with dotted-key ``overrides`` applied.

    Args:
        config: the config to start from (left unchanged).
        overrides: ``{"group.key": value}``; string values are converted to the key's type.

    Returns:
        The new config.

    Raises:
        ConfigError: an unknown key (the message names it and lists the valid keys) or a value
            that cannot be converted to the key's type.
    """
    data = config.to_dict()
    allowed = valid_keys()
    for key, value in overrides.items():
        if key not in allowed:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(allowed)}")
        group, name = key.split(".", 1)
        data[group][name] = _coerce(key, data[group][name], value)
    return from_dict(data)


def from_dict(data: dict[str, Any]) -> TrainConfig:
    """A config from nested plain data (e.g. a run's ``config.json``).

    Raises:
        ConfigError: a group or key the config does not have.
    """
    groups: dict[str, Any] = {}
    defaults = TrainConfig()
    allowed = valid_keys()
    for group, values in data.items():
        if group == "preset":
            continue
        if group not in _GROUPS or not isinstance(values, dict):
            raise ConfigError(f"unknown config key {group!r}; valid keys: {', '.join(allowed)}")
        default_group = getattr(defaults, group)
        for name in values:
            if not hasattr(default_group, name):
                raise ConfigError(
                    f"unknown config key {group}.{name!r}; valid keys: {', '.join(allowed)}"
                )
        typed = {
            name: _coerce(f"{group}.{name}", getattr(default_group, name), value)
            for name, value in values.items()
        }
        groups[group] = dataclasses.replace(default_group, **typed)
    return TrainConfig(**groups, preset=str(data.get("preset", defaults.preset)))


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``["optim.g_lr=2e-4", ...]`` as ``{"optim.g_lr": "2e-4"}``.

    Raises:
        ConfigError: an item without ``=``.
    """
    result: dict[str, str] = {}
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set wants key=value, got {item!r}")
        key, value = item.split("=", 1)
        result[key.strip()] = value.strip()
    return result


def validate(config: TrainConfig) -> None:
    """Refuse values no run can use (before any data is loaded or network built).

    Raises:
        ConfigError: a value outside its allowed set or range, naming the key.
    """
    if config.loss.kind not in LOSS_KINDS:
        raise ConfigError(f"loss.kind {config.loss.kind!r} is not one of {', '.join(LOSS_KINDS)}")
    if config.data.fit not in FIT_MODES:
        raise ConfigError(f"data.fit {config.data.fit!r} is not one of {', '.join(FIT_MODES)}")
    if config.run.amp not in AMP_MODES:
        raise ConfigError(f"run.amp {config.run.amp!r} is not one of {', '.join(AMP_MODES)}")
    for op in augment_ops(config.augment.policy):
        if op not in AUGMENT_OPS:
            raise ConfigError(
                f"augment.policy names {op!r}; allowed: {', '.join(AUGMENT_OPS)} (comma separated)"
            )
    if config.optim.batch_size < 1:
        raise ConfigError("optim.batch_size must be at least 1")
    if config.optim.n_critic < 1:
        raise ConfigError("optim.n_critic must be at least 1")
    if not 0.0 <= config.model.g_dropout < 1.0 or not 0.0 <= config.model.d_dropout < 1.0:
        raise ConfigError("model.g_dropout and model.d_dropout must be in [0, 1)")
    if config.model.d_minibatch_std_group < 0:
        raise ConfigError("model.d_minibatch_std_group must be 0 (off) or a group size")
    if not 0.0 <= config.augment.p <= 1.0:
        raise ConfigError("augment.p must be in [0, 1]")
    if not 0.0 <= config.ema.decay < 1.0:
        raise ConfigError("ema.decay must be in [0, 1)")


def augment_ops(policy: str) -> list[str]:
    """The operation names in an ``augment.policy`` string."""
    return [op.strip() for op in policy.split(",") if op.strip()]
