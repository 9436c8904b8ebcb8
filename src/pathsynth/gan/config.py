"""GAN training configuration: one frozen dataclass per concern, dotted keys, presets as overrides.

Every hyper-parameter lives here with its allowed values in a comment, and each group refuses
values no run can use when it is made (:mod:`pathsynth.config` is the mechanism every config
shares). A run resolves ``defaults <- preset <- overrides`` (``--set group.key=value`` on the
command line) and saves the result as ``config.json`` in its run folder, so any number in a run can
be traced in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pathsynth.config import to_json, to_plain
from pathsynth.errors import ConfigError
from pathsynth.imaging.config import ColourAugmentConfig
from pathsynth.training.config import DataConfig, EmaConfig, RunConfig

LOSS_KINDS = ("bce", "wgan-gp", "hinge")
ARCHITECTURES = ("dcgan", "fastgan")
AUGMENT_OPS = ("color", "translation", "cutout")


@dataclass(frozen=True)
class ModelConfig:
    """Network shapes. Widths follow ``min(channel_max, channel_base // side)`` per layer.

    ``arch`` picks the networks: ``"dcgan"`` (the paper's, :mod:`pathsynth.gan.networks`; every
    field below applies) or ``"fastgan"`` (Liu et al. 2021, :mod:`pathsynth.gan.fastgan`; it
    reads the noise, embedding, width, slope and spectral-norm fields and ignores the layer
    counts, kernel, dropout and minibatch-stddev ones).
    """

    arch: str = "dcgan"  # "dcgan" (the paper's) | "fastgan" (skip-layer excitation, D decoders)
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

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"model.arch {self.arch!r} is not one of {', '.join(ARCHITECTURES)}")
        if not 0.0 <= self.g_dropout < 1.0 or not 0.0 <= self.d_dropout < 1.0:
            raise ConfigError("model.g_dropout and model.d_dropout must be in [0, 1)")
        if self.d_minibatch_std_group < 0:
            raise ConfigError("model.d_minibatch_std_group must be 0 (off) or a group size")
        for name in ("noise_dim", "class_embed_dim", "g_fc_side", "g_layers", "d_layers", "kernel"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class LossConfig:
    """Adversarial loss and regularisers."""

    kind: str = "bce"  # "bce" (logit + BCE, the paper's sigmoid) | "wgan-gp" | "hinge"
    gp_weight: float = 10.0  # gradient penalty weight (wgan-gp only)
    r1_gamma: float = 0.0  # R1 penalty on real images, gamma/2 * |grad D(x)|^2; 0 = off
    r1_interval: int = 1  # apply R1 every this many D steps (lazy regularisation)
    lecam_weight: float = 0.0  # LeCam regulariser weight; 0 = off
    lecam_decay: float = 0.99  # EMA decay of the LeCam anchors
    reconstruction_weight: float = 0.0  # FastGAN's self-supervised D loss (L1 of its decoders'
    # reconstructions of real images); model.arch "fastgan" only; 0 = off

    def __post_init__(self) -> None:
        if self.kind not in LOSS_KINDS:
            raise ConfigError(f"loss.kind {self.kind!r} is not one of {', '.join(LOSS_KINDS)}")
        for name in ("gp_weight", "r1_gamma", "lecam_weight", "reconstruction_weight"):
            if getattr(self, name) < 0.0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
        if self.r1_interval < 1:
            raise ConfigError(f"loss.r1_interval must be at least 1, got {self.r1_interval}")


@dataclass(frozen=True)
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

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("optim.batch_size must be at least 1")
        if self.n_critic < 1:
            raise ConfigError("optim.n_critic must be at least 1")
        if self.g_lr <= 0.0 or self.d_lr <= 0.0:
            raise ConfigError(
                f"optim.g_lr and optim.d_lr must be > 0, got {self.g_lr}, {self.d_lr}"
            )
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0) or self.weight_decay < 0.0:
            raise ConfigError("optim.beta1/beta2 must be in [0, 1) and optim.weight_decay >= 0")
        if self.steps < 0 or self.epochs < 1:
            raise ConfigError(
                f"optim.steps must be >= 0 (0: from epochs) and optim.epochs >= 1, "
                f"got {self.steps} and {self.epochs}"
            )


@dataclass(frozen=True)
class AugmentConfig:
    """Differentiable augmentation of everything the discriminator sees, and colour augmentation
    of the real images it sees.

    ``colour`` is the classifier's colour and stain augmentation
    (:class:`pathsynth.imaging.augment.ColourAugment`, all off by default; e.g.
    ``augment.colour.hed_p=0.5``), applied to real images only, before DiffAugment: the
    generator then learns the stain variation the classifier is trained to ignore.
    """

    policy: str = ""  # comma list of "color", "translation", "cutout"; "" = none
    p: float = 1.0  # probability each image is augmented (start value when adaptive)
    adaptive: bool = False  # ADA-style: move p so the sign of D(real) averages to target
    target: float = 0.6  # target of E[sign(D(real))]
    interval: int = 4  # generator steps between p updates
    speed_kimg: float = 20.0  # thousands of images for p to go 0 -> 1
    colour: ColourAugmentConfig = field(default_factory=ColourAugmentConfig)  # real images only

    def __post_init__(self) -> None:
        for op in augment_ops(self.policy):
            if op not in AUGMENT_OPS:
                raise ConfigError(
                    f"augment.policy names {op!r}; allowed: {', '.join(AUGMENT_OPS)} (comma separated)"
                )
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError("augment.p must be in [0, 1]")
        if self.interval < 1 or self.speed_kimg <= 0.0:
            raise ConfigError("augment.interval must be at least 1 and augment.speed_kimg > 0")


@dataclass(frozen=True)
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
        return to_plain(self)

    def to_json(self) -> str:
        """The config as indented JSON."""
        return to_json(self)


def augment_ops(policy: str) -> list[str]:
    """The operation names in an ``augment.policy`` string."""
    return [op.strip() for op in policy.split(",") if op.strip()]
