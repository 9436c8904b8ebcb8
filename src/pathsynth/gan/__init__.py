"""The class-conditional GAN: config and presets, networks, losses, DiffAugment/ADA, EMA,
checkpoints, the trainer (single process or torchrun/DDP) and sampling.

It takes tensors or folders and never imports the catalog or any SQL package.
"""
