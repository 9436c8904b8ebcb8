"""Self-supervised pretraining (SimCLR) of a timm backbone on the lab's own images."""

from pathsynth.pretrain.config import PRETRAIN, PretrainConfig
from pathsynth.pretrain.run import BACKBONE_NAME, train_pretrain_run

__all__ = ["BACKBONE_NAME", "PRETRAIN", "PretrainConfig", "train_pretrain_run"]
