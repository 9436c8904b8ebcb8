"""torchrun with 2 gloo processes pretrains like one process with the same global batch: the
views are drawn for the whole batch on every rank, BatchNorm is cross-rank and NT-Xent's
negatives are gathered from both ranks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import run_ranks

from pathsynth.pretrain.config import PRETRAIN
from pathsynth.pretrain.trainer import SimclrTrainer, load_pretrain_checkpoint
from pathsynth.training.checkpoint import find_checkpoint

from .conftest import SPLIT

ARGS = ["--preset", "smoke", "--steps", "3", "--device", "cpu", "--no-unlabelled"]


def _pretrain(ranks: int, lab: Path, runs: Path, name: str) -> dict:
    args = ["pretrain", "-w", str(lab), "--split", SPLIT, "--fold", "train", *ARGS]
    return load_pretrain_checkpoint(find_checkpoint(run_ranks(ranks, args, runs, name), "last"))


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(
    lab: Path, tmp_path: Path
) -> None:
    single = _pretrain(1, lab, tmp_path, "single")
    ddp = _pretrain(2, lab, tmp_path, "ddp")

    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["step"] == single["step"] == 3
    config = PRETRAIN.read(single["config"])
    pool = torch.zeros(config.optim.batch_size, 3, 48, 48, dtype=torch.uint8)
    initial = SimclrTrainer(config, pool, tmp_path).network.state_dict()  # the seeded start
    names = [k for k, v in single["network"].items() if v.is_floating_point()]
    gap = torch.cat([(single["network"][k] - ddp["network"][k]).abs().flatten() for k in names])
    moved = torch.cat([(single["network"][k] - initial[k]).abs().flatten() for k in names])
    # Float sums reduce in another order over two ranks; AdamW turns that into steps of the
    # learning rate's size on near-zero gradients (a few BatchNorm biases), so compare the gap
    # with how far training moved the weights, and bound the largest by a few steps' worth.
    assert gap.mean() < 0.01 * moved.mean(), (float(gap.mean()), float(moved.mean()))
    assert gap.max() < 10 * config.optim.lr
    # Batch-norm statistics covered the global batch on both ranks (rank 0's own half would
    # give other running means; the small gap left is that of the weights above).
    means = [k for k in single["network"] if k.endswith("running_mean")]
    bn_gap = torch.cat([(single["network"][k] - ddp["network"][k]).abs() for k in means])
    bn_size = torch.cat([single["network"][k].abs() for k in means])
    assert bn_gap.mean() < 0.01 * bn_size.mean(), (float(bn_gap.mean()), float(bn_gap.max()))
