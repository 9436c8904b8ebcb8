"""Compare the generators: train each for the same wall-clock budget on one image set, then
report FD, KID, precision/recall/density/coverage on the same features, and train and sampling
images per second.

    python bench/generators.py --data ../shared/data/herlev --modality cytology --budget-s 300
    python bench/generators.py --data ../shared/data/bach --modality histology --pixel-size 0.84
    python bench/generators.py --synthetic --device cuda       # GPU speed only, no data needed

Real data: the images are made network inputs as ``reproduce --preset quick`` makes them
(:func:`pathsynth.experiment.config.experiment_presets`), and each generator gets the quick
experiment's config (``--set gan.optim.batch_size=64``, ``--set diffusion.sampling.steps=50``
reach any key). Features are the penultimate layer of the project's classifier trained on the
same real images for ``--feature-epochs`` (the quality stage's extractor, here without a test
split: it measures generators, not classifiers). Generated images are sampled with the EMA
weights, ``--per-class`` per class; the diffusion model with DPM-Solver++ at ``--sampling-steps``.

``--synthetic``: random uint8 images at the ``--preset`` size (diffusion ``gpu``: 128 px),
``--train-steps`` timed steps after ``--warmup`` untimed ones (bf16 on CUDA), eager, then
compiled with ``--set run.compile=true``; then sampling of
``--sample-batch`` images at 25 DPM-Solver++ steps with guidance (two UNet passes per step inside
the guidance interval; ``--guidance-interval LO,HI`` adds one), eager and with
``--compile-sampler`` compiled, each timed after an untimed pass of the same size.
Prints a table; ``--json FILE`` also writes the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from pathsynth.config import parse_assignments
from pathsynth.devices import device_name, resolve_device
from pathsynth.diffusion.config import DIFFUSION, DiffusionConfig
from pathsynth.diffusion.sampling import GuidedSampler
from pathsynth.diffusion.trainer import DiffusionTrainer
from pathsynth.gan.trainer import GanTrainer
from pathsynth.generators.sampling import class_noise
from pathsynth.imaging.png import encode_png
from pathsynth.imaging.tensorset import TensorImageSet, image_grid, to_uint8


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_trainer(kind: str, config: Any, data: TensorImageSet, run_dir: Path) -> Any:
    """The generator's own trainer (its step is what ``reproduce`` runs)."""
    if kind == "gan":
        return GanTrainer(config, data, run_dir)
    return DiffusionTrainer(config, data, run_dir)


def train_for(trainer: Any, budget_s: float, device: torch.device) -> dict[str, float]:
    """Steps until ``budget_s`` seconds have passed; the figures of the run."""
    batch = trainer.config.optim.batch_size
    started = time.perf_counter()
    steps = 0
    while time.perf_counter() - started < budget_s:
        trainer.train_step()
        steps += 1
    sync(device)
    elapsed = time.perf_counter() - started
    return {"steps": steps, "seconds": elapsed, "train_images_per_s": steps * batch / elapsed}


@torch.no_grad()
def sample(
    kind: str, trainer: Any, per_class: int, batch: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``per_class`` EMA images of every class (uint8 NCHW), their labels, images per second."""
    classes = len(trainer.class_names)
    if kind == "gan":
        network: Any = trainer.G_ema
        noise_dim = trainer.config.model.noise_dim
        amp = trainer.bf16
    else:
        network = GuidedSampler(trainer.ema, trainer.config, classes, bf16=trainer.bf16)
        noise_dim = network.noise_dim
        amp = False  # the sampler runs its own autocast
    images, labels = [], []
    sync(device)
    started = time.perf_counter()
    for c in range(classes):
        noise = class_noise(0, c, per_class, noise_dim)
        for start in range(0, per_class, batch):
            chunk = noise[start : start + batch].to(device)
            label = torch.full((len(chunk),), c, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                images.append(to_uint8(network(chunk, label).float()).cpu())
            labels.append(label.cpu())
    sync(device)
    elapsed = time.perf_counter() - started
    return torch.cat(images), torch.cat(labels), classes * per_class / elapsed


def real_set(args: argparse.Namespace) -> tuple[TensorImageSet, Any]:
    """The real images as ``reproduce --preset quick`` makes them, and the experiment config."""
    from pathsynth.experiment.config import experiment_presets
    from pathsynth.imaging.folders import folder_files, load_image_set

    overrides: dict[str, Any] = {"diffusion.sampling.steps": args.sampling_steps}
    overrides.update(parse_assignments(args.set))
    overrides["source_pixel_size_um"] = args.pixel_size
    config = experiment_presets(args.modality).resolve("quick", overrides)
    preprocess = config.preprocess
    if preprocess.pixel_size_um and args.pixel_size:  # shrink by the ratio of pixel sizes
        scale = preprocess.pixel_size_um / args.pixel_size
        preprocess = dataclasses.replace(preprocess, pixel_size_um=0.0, scale=scale)
    root = args.data / "images" if (args.data / "images").is_dir() else args.data
    data = load_image_set(folder_files(root), preprocess, str(args.data))
    return data, config


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Train each generator for the budget on the real set; quality and speed figures."""
    # the classifier and metric stack is imported here, so --synthetic runs without it
    from pathsynth.classify.trainer import train_classifier
    from pathsynth.imaging.crops import random_crops
    from pathsynth.metrics.features import ClassifierFeatures
    from pathsynth.metrics.registry import synthesis_quality

    device = resolve_device(args.device)
    data, config = real_set(args)
    print(f"{len(data)} real inputs of {data.resolution}px, {len(data.class_names)} classes")
    torch.manual_seed(0)
    classifier_config = dataclasses.replace(
        config.classifier, epochs=args.feature_epochs, min_epochs=1, device=str(device)
    )
    started = time.perf_counter()
    features = ClassifierFeatures(train_classifier(data, classifier_config).model)
    print(f"feature classifier: {time.perf_counter() - started:.0f}s")
    side = config.gan.data.resolution
    real = data.images
    if real.shape[-1] != side:
        real = random_crops(real, side, torch.Generator().manual_seed(0))
    real_features = features(real)
    figures: dict[str, Any] = {"real_inputs": len(data), "side": side}
    for kind in args.generators.split(","):
        generator_config = config.gan if kind == "gan" else config.diffusion
        run = dataclasses.replace(generator_config.run, device=str(device))
        generator_config = dataclasses.replace(generator_config, run=run)
        with tempfile.TemporaryDirectory() as folder:
            trainer = make_trainer(kind, generator_config, data, Path(folder))
            trained = train_for(trainer, args.budget_s, device)
        images, labels, rate = sample(kind, trainer, args.per_class, args.sample_batch, device)
        numbers = synthesis_quality(
            real_features, features(images), generator=torch.Generator().manual_seed(0)
        )
        figures[kind] = {**trained, "sample_images_per_s": rate, **numbers}
        if args.grid_dir:
            columns = min(8, args.per_class)
            rows = torch.cat([images[labels == c][:columns] for c in range(len(data.class_names))])
            path = args.grid_dir / f"{args.modality}-{kind}-grid.png"
            path.write_bytes(encode_png(image_grid(rows, columns)))
            print(f"grid: {path} (rows: {', '.join(data.class_names)})")
    return figures


def _train_rate(trainer: DiffusionTrainer, steps: int, warmup: int, device: torch.device) -> float:
    """Training images/s over ``steps`` timed steps after ``warmup`` untimed ones."""
    for _ in range(warmup):
        trainer.train_step()
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    sync(device)
    return steps * trainer.config.optim.batch_size / (time.perf_counter() - started)


def _sample_rate(sampler: GuidedSampler, images: int, device: torch.device) -> float:
    """Sampling images/s of one pass of ``images`` after an untimed one of the same size (a
    compiled UNet compiles per shape)."""
    noise = torch.randn(images, sampler.noise_dim, device=device)
    label = torch.randint(0, sampler.num_classes, (images,), device=device)
    sampler(noise, label)
    sync(device)
    started = time.perf_counter()
    sampler(noise, label)
    sync(device)
    return images / (time.perf_counter() - started)


def synthetic_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Diffusion training and sampling speed on random images (no data, no metrics).

    Training is timed eager, then compiled (``run.compile=true``); sampling eager and, with
    ``--compile-sampler``, compiled, at the run's guidance interval and each
    ``--guidance-interval``. All in one process, one UNet.
    """
    device = resolve_device(args.device)
    config: DiffusionConfig = DIFFUSION.resolve(
        args.preset, {"run.device": str(device), **parse_assignments(args.set)}
    )
    side, batch = config.data.resolution, config.optim.batch_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (max(2 * batch, 512), 3, side, side), generator=generator)
    labels = torch.randint(0, 4, (len(images),), generator=generator)
    data = TensorImageSet(images.to(torch.uint8), labels, ["a", "b", "c", "d"])
    with tempfile.TemporaryDirectory() as folder:
        trainer = DiffusionTrainer(config, data, Path(folder))
    compiled_step = trainer.unet_train
    trainer.unet_train = trainer.unet  # eager first
    train = {"eager": _train_rate(trainer, args.train_steps, args.warmup, device)}
    if config.run.compile:
        trainer.unet_train = compiled_step
        started = time.perf_counter()
        trainer.train_step()
        sync(device)
        compile_s = time.perf_counter() - started
        train[f"compiled ({config.run.compile_mode})"] = _train_rate(
            trainer, args.train_steps, args.warmup, device
        )
    intervals = [config.sampling.guidance_interval] + [
        tuple(float(x) for x in text.split(",")) for text in args.guidance_interval
    ]
    sample: dict[str, float] = {}
    for compile_unet in (False, True) if args.compile_sampler else (False,):
        for interval in intervals:
            sampling = dataclasses.replace(
                config.sampling, guidance_interval=interval, compile=compile_unet
            )
            sampler = GuidedSampler(trainer.ema, config, 4, sampling, bf16=trainer.bf16)
            label = f"{'compiled' if compile_unet else 'eager'}, guidance in {list(interval)}"
            sample[label] = _sample_rate(sampler, args.sample_batch, device)
    parameters = sum(p.numel() for p in trainer.unet.parameters())
    figures: dict[str, Any] = {
        "preset": args.preset,
        "side": side,
        "batch": batch,
        "parameters_m": parameters / 1e6,
        "bf16": trainer.bf16,
        "train_steps": args.train_steps,
        "train_images_per_s": train,
        "sampling": f"{config.sampling.sampler} {config.sampling.steps} steps, guidance "
        f"{config.sampling.guidance}",
        "sample_images": args.sample_batch,
        "sample_images_per_s": sample,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else None,
    }
    if config.run.compile:
        figures["compile_first_step_s"] = compile_s
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="Set root: <class>/ or images/<class>/.")
    parser.add_argument("--modality", default="cytology", help="histology | cytology.")
    parser.add_argument("--pixel-size", type=float, default=None, help="Source um per pixel.")
    parser.add_argument("--generators", default="gan,diffusion", help="Comma list.")
    parser.add_argument("--budget-s", type=float, default=300.0, help="Training seconds each.")
    parser.add_argument("--per-class", type=int, default=64, help="Generated images per class.")
    parser.add_argument("--sampling-steps", type=int, default=25, help="DPM-Solver++ steps.")
    parser.add_argument("--sample-batch", type=int, default=64, help="Images per sampling pass.")
    parser.add_argument("--feature-epochs", type=int, default=10, help="Feature classifier.")
    parser.add_argument("--grid-dir", type=Path, default=None, help="Write sample grids here.")
    parser.add_argument("--synthetic", action="store_true", help="Speed on random images only.")
    parser.add_argument("--preset", default="gpu", help="Diffusion preset (--synthetic).")
    parser.add_argument("--train-steps", type=int, default=20, help="Timed steps (--synthetic).")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed steps (--synthetic).")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda.")
    parser.add_argument("--set", action="append", default=[], help="Config key=value.")
    parser.add_argument(
        "--guidance-interval", action="append", default=[], help="LO,HI also timed (--synthetic)."
    )
    parser.add_argument(
        "--compile-sampler", action="store_true", help="Also time a compiled UNet (--synthetic)."
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    if not args.synthetic and args.data is None:
        parser.error("give --data SET or --synthetic")
    torch.manual_seed(0)
    figures = synthetic_speed(args) if args.synthetic else compare(args)
    figures["machine"] = {
        "device": device_name(resolve_device(args.device)),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
