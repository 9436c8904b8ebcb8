"""The config groups every generator trainer shares (the GAN's and the diffusion model's): where
the images come from and at what size, the EMA of the trained network, and run bookkeeping with
the speed options."""

from __future__ import annotations

from dataclasses import dataclass, field

from pathsynth.devices import AMP_MODES, COMPILE_MODES
from pathsynth.errors import ConfigError
from pathsynth.imaging.patches import PreprocessConfig


@dataclass(frozen=True)
class DataConfig:
    """How images reach the network's square: the same preprocessing config ``reproduce`` uses.

    Where the images come from (a class-folder root or a catalog split) is the caller's business,
    not part of the config: a run records it in ``run.json``.
    """

    preprocess: PreprocessConfig = field(default_factory=lambda: PreprocessConfig(mode="fit"))
    crop: int = 0  # train on random crops of this side from the (larger) inputs; 0 = whole

    def __post_init__(self) -> None:
        if self.crop < 0 or 0 < self.crop < 8 or self.crop > self.preprocess.size:
            raise ConfigError(
                f"data.crop must be 0 or in [8, preprocess.size={self.preprocess.size}], "
                f"got {self.crop}"
            )

    @property
    def resolution(self) -> int:
        """Side of the square images the networks make and see, pixels (``crop`` if set, else
        ``preprocess.size``)."""
        return self.crop or self.preprocess.size


@dataclass(frozen=True)
class EmaConfig:
    """Exponential moving average of the generator, used for samples and generation."""

    decay: float = 0.999  # per-step decay
    start_step: int = 0  # copy G straight into EMA before this step
    warmup: bool = True  # use min(decay, (1 + step) / (10 + step)): early EMA not stuck at init

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay < 1.0:
            raise ConfigError("ema.decay must be in [0, 1)")


@dataclass(frozen=True)
class RunConfig:
    """Run bookkeeping and the speed options."""

    seed: int = 0  # seeds weights, noise, dropout, augmentation and data order
    sample_every: int = 500  # steps between sample grids (0 = only at the end)
    checkpoint_every: int = 1000  # steps between 'last' checkpoints (0 = only at the end)
    quality_every: int = 1000  # steps between quality signals for the 'best' checkpoint (0 = off)
    quality_samples: int = 256  # EMA samples (and real images) for the quality signal
    quality_backbone: str = ""  # timm backbone whose features the quality signal uses; "" = fixed
    #   random-conv features (gan/quality.py)
    quality_backbone_weights: str | None = None  # its weights file or hf-hub id; None = random init
    quality_backbone_size: int = 0  # side the backbone sees; 0 = its pretrained config's
    log_every: int = 50  # steps between JSONL stats lines
    samples_per_class: int = 8  # fixed-noise images per class in each grid
    device: str = "auto"  # "auto" (cuda if present) | "cpu" | "cuda" | "cuda:N"
    amp: str = "auto"  # "auto" (bf16 on CUDA and on CPUs with native bf16, measured faster) | "bf16" | "off"
    channels_last: bool = True  # NHWC memory format for convolutions
    compile: bool = False  # torch.compile the trained networks (measured slower on the 2-core CPU)
    compile_mode: str = "default"  # "default" | "reduce-overhead" (CUDA graphs) |
    #   "max-autotune-no-cudagraphs": torch.compile's mode when run.compile is on
    fused_adam: bool = True  # fused Adam kernels (CUDA and CPU); off = foreach kernels

    def __post_init__(self) -> None:
        if self.amp not in AMP_MODES:
            raise ConfigError(f"run.amp {self.amp!r} is not one of {', '.join(AMP_MODES)}")
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(
                f"run.compile_mode {self.compile_mode!r} is not one of {', '.join(COMPILE_MODES)}"
            )
        for name in ("sample_every", "checkpoint_every", "quality_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"run.{name} must be >= 0 (0: off), got {getattr(self, name)}")
        for name in ("quality_samples", "log_every", "samples_per_class"):
            if getattr(self, name) < 1:
                raise ConfigError(f"run.{name} must be at least 1, got {getattr(self, name)}")
