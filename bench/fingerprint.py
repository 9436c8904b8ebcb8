"""What a refactoring must not change: every preset's resolved config, and the checkpoints, stats
lines and sample grids of tiny GAN, diffusion and SimCLR runs on the CPU.

    python bench/fingerprint.py before.json        # on the old commit
    python bench/fingerprint.py after.json         # on the new one
    python bench/fingerprint.py after.json --against before.json

Each checkpoint is hashed tensor by tensor (bytes, dtype, shape) and key by key; timings are left
out of the stats lines. Two runs of one commit give the same file (checked on the 2-core VM).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from pathsynth.classify.config import CLASSIFIER
from pathsynth.classify.config import PRESETS as CLASSIFIER_PRESETS
from pathsynth.diffusion.config import DIFFUSION
from pathsynth.diffusion.config import PRESETS as DIFFUSION_PRESETS
from pathsynth.diffusion.trainer import DiffusionTrainer
from pathsynth.experiment.config import PRESETS as EXPERIMENT_PRESETS
from pathsynth.experiment.config import experiment_presets
from pathsynth.gan.presets import GAN
from pathsynth.gan.presets import PRESETS as GAN_PRESETS
from pathsynth.gan.trainer import GanTrainer
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.pretrain.config import PRESETS as PRETRAIN_PRESETS
from pathsynth.pretrain.config import PRETRAIN
from pathsynth.pretrain.trainer import SimclrTrainer
from pathsynth.selection.config import SELECTION, SELECTION_PRESETS
from pathsynth.training.checkpoint import list_checkpoints

GAN_VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "ada-lecam-r1": {
        "augment.adaptive": True, "augment.policy": "color,translation", "augment.interval": 2,
        "loss.lecam_weight": 0.1, "loss.r1_gamma": 1.0, "loss.r1_interval": 2,
    },
    "ncritic2-wgan": {"optim.n_critic": 2, "loss.kind": "wgan-gp"},
    "quality": {"run.quality_every": 2, "run.sample_every": 3, "run.checkpoint_every": 2},
}  # fmt: skip
DIFFUSION_VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "eps": {"schedule.prediction": "epsilon"},
}


def digest(value: Any) -> str:
    """A short hash of nested dicts, lists and tensors (keys sorted)."""
    hasher = hashlib.sha256()

    def walk(item: Any) -> None:
        if isinstance(item, torch.Tensor):
            flat = item.detach().cpu().contiguous().reshape(-1)
            hasher.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
            hasher.update(str((item.dtype, tuple(item.shape))).encode())
        elif isinstance(item, dict):
            for key in sorted(item, key=str):
                hasher.update(str(key).encode())
                walk(item[key])
        elif isinstance(item, list | tuple):
            for part in item:
                walk(part)
        else:
            hasher.update(repr(item).encode())

    walk(value)
    return hasher.hexdigest()[:16]


def tiny_set(side: int, per_class: int = 8) -> TensorImageSet:
    """Three classes of flat colours with noise, uint8."""
    generator = torch.Generator().manual_seed(0)
    colours = torch.tensor([[200, 40, 40], [40, 200, 40], [40, 40, 200]], dtype=torch.float32)
    images = colours.repeat_interleave(per_class, 0)[:, :, None, None]
    noise = torch.randn(len(images), 3, side, side, generator=generator) * 20
    pixels = (images + noise).clamp(0, 255).to(torch.uint8)
    return TensorImageSet(pixels, torch.arange(3).repeat_interleave(per_class), ["a", "b", "c"])


def run_record(run: Path, result: Any) -> dict[str, Any]:
    """Checkpoint hashes, stats lines without timings, grid hashes of a finished run."""
    stats = run / "stats.jsonl"
    lines = [json.loads(line) for line in stats.read_text().splitlines()] if stats.exists() else []
    samples = run / "samples"
    return {
        "step": result.step,
        "status": result.status,
        "checkpoints": {
            path.name: digest(torch.load(path, weights_only=False))
            for path in list_checkpoints(run)
        },
        "stats": [
            {k: v for k, v in line.items() if k not in ("sec_per_step", "images_per_s")}
            for line in lines
        ],
        "grids": {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            for path in sorted(samples.glob("*.png"))
        }
        if samples.exists()
        else {},
    }


def configs() -> dict[str, Any]:
    """Every preset of every config type, resolved, as plain data."""
    found: dict[str, Any] = {}
    for name in GAN_PRESETS:
        found[f"gan/{name}"] = json.loads(GAN.resolve(name).to_json())
    for name in DIFFUSION_PRESETS:
        found[f"diffusion/{name}"] = json.loads(DIFFUSION.resolve(name).to_json())
    for name in PRETRAIN_PRESETS:
        found[f"pretrain/{name}"] = json.loads(PRETRAIN.resolve(name).to_json())
    for name in CLASSIFIER_PRESETS:
        found[f"classifier/{name}"] = repr(CLASSIFIER.resolve(name))
    for name in SELECTION_PRESETS:
        found[f"selection/{name}"] = repr(SELECTION.resolve(name))
    for name in EXPERIMENT_PRESETS:
        for modality in ("histology", "cytology"):
            found[f"experiment/{name}/{modality}"] = repr(
                experiment_presets(modality).resolve(name)
            )
    for variant, overrides in EXPERIMENT_VARIANTS.items():  # settings that follow from others
        found[f"experiment/quick/histology/{variant}"] = repr(
            experiment_presets("histology").resolve("quick", overrides)
        )
    return found


EXPERIMENT_VARIANTS: dict[str, dict[str, Any]] = {
    "both": {"generator": "both"},
    "both+selection": {"generator": "both", "selection.enabled": "true"},
    "selection": {"selection.enabled": "true", "conditions": "original,affine+synthetic"},
    "kinds": {"classifier_kinds": "linear-probe,fine-tune"},
    "quality-backbone": {"quality.backbone": "resnet18", "quality.backbone_weights": "w.pt"},
    "crop": {"classifier.crop_size": "32", "preprocess.size": "96"},
}


def runs(root: Path) -> dict[str, Any]:
    """Tiny runs of every trainer, on the CPU."""
    found: dict[str, Any] = {}
    quiet = {"run.device": "cpu", "run.quality_every": 0, "run.sample_every": 0, "optim.steps": 5}
    for name, extra in GAN_VARIANTS.items():
        config = GAN.resolve("smoke", {**quiet, **extra})
        run = root / f"gan-{name}"
        run.mkdir()
        result = GanTrainer(config, tiny_set(config.data.preprocess.size), run).train()
        found[f"gan/{name}"] = run_record(run, result)
    for name, extra in DIFFUSION_VARIANTS.items():
        overrides = {"run.device": "cpu", "run.sample_every": 2, "run.amp": "off", "optim.steps": 4}
        config = DIFFUSION.resolve("smoke", {**overrides, **extra})
        run = root / f"diffusion-{name}"
        run.mkdir()
        result = DiffusionTrainer(config, tiny_set(config.data.preprocess.size), run).train()
        found[f"diffusion/{name}"] = run_record(run, result)
    config = PRETRAIN.resolve("smoke", {"run.device": "cpu"})
    run = root / "pretrain"
    run.mkdir()
    result = SimclrTrainer(config, tiny_set(48).images, run).train()
    found["pretrain/smoke"] = run_record(run, result)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="JSON file to write")
    parser.add_argument("--against", type=Path, help="an earlier fingerprint to compare with")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        found = {"configs": configs(), "runs": runs(Path(tmp))}
    args.out.write_text(json.dumps(found, indent=1, sort_keys=True, default=str) + "\n")
    if args.against is None:
        return 0
    before = json.loads(args.against.read_text())
    now = json.loads(args.out.read_text())
    differ = [
        f"configs/{k}" for k in before["configs"] if before["configs"][k] != now["configs"].get(k)
    ]
    differ += [f"runs/{k}" for k in before["runs"] if before["runs"][k] != now["runs"].get(k)]
    print("identical" if not differ else "differ: " + ", ".join(differ))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
