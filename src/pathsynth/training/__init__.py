"""What every trainer shares (the GAN, the diffusion model, self-supervised pretraining): the
numbered run folder and its identity (:mod:`~pathsynth.training.runs`), checkpoints
(:mod:`~pathsynth.training.checkpoint`) and the torchrun / DDP helpers
(:mod:`~pathsynth.training.distributed`)."""
