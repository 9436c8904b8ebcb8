"""Named presets: each overrides only the config keys that differ from the defaults.

``paper`` (the default config *is* the paper's set-up, so the preset is empty)
    Berezsky, Liashchynskyi et al. 2019: G = 64 N(0,1) numbers + class -> one fully connected
    layer -> 7 transposed convolutions 5x5 with dropout and batch normalisation after each,
    LeakyReLU 0.2, tanh on the last; D = 6 convolutions 5x5, the first 5 with stride 2, dropout
    after each, LeakyReLU 0.2, one-logit fully connected head; batch 64, Adam lr 1e-3 both,
    L2 1e-6 both, 3000 epochs. Where the paper is silent we chose, and keep:

    - The FC layer makes a 4x4 map; for 128x128 the 7 transposed convolutions are two of stride 1
      at 4x4 then five of stride 2 (4 -> 128). Stride-1 layers at the smallest side add the
      paper's depth for about 1% of the compute that stride-1 layers at 128x128 would cost; the
      same layout is the TensorFlow DCGAN tutorial's (stride-1 5x5 transposed conv right after the
      dense layer), which the paper's layer list follows closely.
    - The last transposed convolution is followed by tanh only: dropout would zero output pixels
      and batch normalisation would pin each RGB channel's mean and spread per batch, both of
      which fight the colour statistics the generator must learn; the paper's "tanh on the last
      layer" implies the same.
    - Widths ``min(512, 4096 / side)`` (512 at 4x4 and 8x8, 256, 128, 64 at 64x64): the DCGAN
      widths, the usual choice for 5x5 DCGAN-style nets at this size.
    - Class into G: a learned 64-d embedding concatenated to the noise before the FC layer (the
      classic conditional GAN input; cheap and what "CWGAN" implementations do).
      Class into D: projection discriminator (Miyato & Koyama 2018): logit = w.h + <embed(y), h>
      on the pooled features; it conditions without adding input channels and is the standard
      for class-conditional D since.
    - Dropout: 0.3 in D (the rate of the TensorFlow/Keras DCGAN examples the paper's D matches);
      0.1 in G: G dropout is extra noise and at high rates washes out the class signal.
    - Adam betas (0.5, 0.999): Radford et al.'s DCGAN setting; beta1 0.9 oscillates at lr 1e-3.

``paper-wgan-gp``
    The same networks read as a conditional Wasserstein GAN: no sigmoid (the logit is the critic),
    gradient penalty 10, 5 critic steps per generator step, Adam betas (0.0, 0.9) and lr 1e-4
    (Gulrajani et al. 2017; lr 1e-3 diverges with WGAN-GP). Dropout stays in D as the paper has it.

``modern``
    The paper's networks plus what small-data GAN trainers use now: hinge loss, spectral norm on
    D, DiffAugment colour+translation+cutout with an ADA-style adaptive probability (target 0.6),
    LeCam 0.01 (Tseng et al. 2021, made for limited data), a minibatch-stddev feature in D over
    groups of 4 (Karras et al. 2018), EMA generator, lr 2e-4 with betas (0.0, 0.99); and, unlike
    the paper, no dropout in either network and a 16-d class embedding. On herlev the runs with
    the paper's dropout collapsed to nearly one image per class (the generator leaned on dropout
    masks instead of the noise; with dropout off at sampling every image of a class came out the
    same), and the smaller embedding left the noise the larger share of G's input. Evidence (six
    reduced CPU runs, one seed each, so indicative only): BENCHMARKS-gan.md.

``fastgan``, ``fastgan-64``, ``fastgan-128``
    FastGAN (Liu et al. 2021; :mod:`pathsynth.gan.fastgan`), made for about 100 images and a few
    GPU-hours: skip-layer excitation in G; D with two small decoders whose L1 reconstruction of
    the real images (weight 1) is added to its loss; hinge loss, spectral norm on D, DiffAugment
    colour+translation on every image D sees (p 1, as in the paper's code), Adam 2e-4 with betas
    (0.5, 0.999) (the paper's), EMA generator, the class as in ``modern`` (16-d embedding into G,
    projection in D). ``fastgan`` keeps the image size of the data;
    ``fastgan-64`` is sized for the CPU (64 px, widths ``min(128, 1024 / side)``, batch 32: a
    step costs about what the experiment's ``quick`` GAN step does, 7.0 s each at load 7 on the
    shared 2-core machine, where widths ``min(128, 2048 / side)`` took twice that) and
    ``fastgan-128`` for a GPU (128 px, the paper's widths up to 512 at 4-16 px, batch 64). Colour augmentation of real
    images (``augment.colour.*``, the classifier's) is off by default in all three.

``smoke``
    A 32x32, few-channel version for tests and quick checks: same layer counts, tiny widths.
"""

from __future__ import annotations

from typing import Any

from pathsynth.config import Presets
from pathsynth.gan.config import TrainConfig

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "paper-wgan-gp": {
        "loss.kind": "wgan-gp",
        "loss.gp_weight": 10.0,
        "optim.n_critic": 5,
        "optim.g_lr": 1e-4,
        "optim.d_lr": 1e-4,
        "optim.beta1": 0.0,
        "optim.beta2": 0.9,
    },
    "modern": {
        "loss.kind": "hinge",
        "loss.lecam_weight": 0.01,
        "model.spectral_norm": True,
        "model.d_minibatch_std_group": 4,
        "model.g_dropout": 0.0,
        "model.d_dropout": 0.0,
        "model.class_embed_dim": 16,
        "augment.policy": "color,translation,cutout",
        "augment.adaptive": True,
        "augment.p": 0.0,
        "augment.target": 0.6,
        "optim.g_lr": 2e-4,
        "optim.d_lr": 2e-4,
        "optim.beta1": 0.0,
        "optim.beta2": 0.99,
        "ema.decay": 0.999,
    },
    "fastgan": {
        "model.arch": "fastgan",
        "model.spectral_norm": True,
        "model.g_dropout": 0.0,
        "model.d_dropout": 0.0,
        "model.class_embed_dim": 16,
        "loss.kind": "hinge",
        "loss.reconstruction_weight": 1.0,
        "augment.policy": "color,translation",
        "augment.p": 1.0,
        "optim.g_lr": 2e-4,
        "optim.d_lr": 2e-4,
        "optim.beta1": 0.5,
        "optim.beta2": 0.999,
        "ema.decay": 0.999,
    },
    "smoke": {
        "data.preprocess.size": 32,
        "model.g_channel_base": 128,
        "model.g_channel_max": 32,
        "model.d_channel_base": 256,
        "model.d_channel_max": 32,
        "model.class_embed_dim": 8,
        "optim.batch_size": 8,
        "optim.steps": 4,
        "run.sample_every": 2,
        "run.checkpoint_every": 2,
        "run.quality_every": 2,
        "run.quality_samples": 16,
        "run.log_every": 1,
        "run.samples_per_class": 2,
    },
}


PRESETS["fastgan-64"] = {  # a step costs about what the experiment's quick GAN step does on the CPU
    **PRESETS["fastgan"],
    "data.preprocess.size": 64,
    "model.g_channel_base": 1024,
    "model.g_channel_max": 128,
    "model.d_channel_base": 1024,
    "model.d_channel_max": 128,
    "optim.batch_size": 32,
}
PRESETS["fastgan-128"] = {
    **PRESETS["fastgan"],
    "data.preprocess.size": 128,
    "model.g_channel_base": 8192,
    "model.g_channel_max": 512,
    "model.d_channel_base": 8192,
    "model.d_channel_max": 512,
    "optim.batch_size": 64,
}


GAN: Presets[TrainConfig] = Presets(TrainConfig, PRESETS, "GAN")
"""The GAN's configs: ``GAN.resolve(preset, overrides)``, ``GAN.override(config, overrides)``,
``GAN.read(plain)`` (see :class:`~pathsynth.config.Presets`)."""
