"""Benchmark the GAN: train images/s of the tuned step vs a plain eager fp32 reference loop of the
same networks, and generation to PNG files on disk, in one run.

    python bench/gan.py                      # paper preset, batch 64, 128x128, CPU or GPU
    python bench/gan.py --steps 20 --gen 2000  # longer (GPU)
    python bench/gan.py --compile            # also time the torch.compile'd step

Data are random uint8 images (no licensed data needed: speed does not depend on content).
The loops run interleaved, step by step, and their medians are compared, so that load from other
processes on a shared machine hits both alike. The reference is the PyTorch DCGAN example's loop:
NCHW fp32, no autocast, separate D passes on real and fake, D weight gradients also in the G
step, default Adam. The tuned step is :meth:`GanTrainer.train_step` with the preset's
speed options (bf16 autocast where native, channels_last, one D pass on real+fake, no D weight
gradients in the G step, fused Adam). Prints a table; ``--json FILE`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pathsynth.devices import device_name, resolve_device
from pathsynth.gan.architectures import build_discriminator, build_generator
from pathsynth.gan.config import TrainConfig
from pathsynth.gan.losses import discriminator_loss, generator_loss
from pathsynth.gan.presets import GAN
from pathsynth.gan.trainer import GanTrainer
from pathsynth.generators.sampling import generate_images, write_class_folders
from pathsynth.imaging.tensorset import TensorImageSet, to_signed_float

PAPER_STEPS = 3000 * 1000 // 64  # 46,875
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a known card (first matching name), else None."""
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in device_name:
            return value
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_step(
    config: TrainConfig, data: TensorImageSet, device: torch.device
) -> Callable[[], object]:
    """One step of the plain eager fp32 loop (the PyTorch DCGAN example's order; for
    ``model.arch`` fastgan: its networks, without the reconstruction loss)."""
    torch.manual_seed(0)
    n_classes = len(data.class_names)
    G = build_generator(config.model, config.data.resolution, n_classes).to(device)
    D = build_discriminator(config.model, config.data.resolution, n_classes).to(device)
    betas = (config.optim.beta1, config.optim.beta2)
    decay = config.optim.weight_decay
    opt_g = torch.optim.Adam(G.parameters(), lr=config.optim.g_lr, betas=betas, weight_decay=decay)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.optim.d_lr, betas=betas, weight_decay=decay)
    gen = torch.Generator().manual_seed(0)
    kind = config.loss.kind
    state = {"batches": data.batches(config.optim.batch_size, gen)}

    def step() -> None:
        try:
            images, labels = next(state["batches"])
        except StopIteration:
            state["batches"] = data.batches(config.optim.batch_size, gen)
            images, labels = next(state["batches"])
        real = to_signed_float(images)
        noise = torch.randn(real.shape[0], config.model.noise_dim, device=device)
        fake = G(noise, labels)
        loss_d = discriminator_loss(kind, D(real, labels), D(fake.detach(), labels))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = generator_loss(kind, D(fake, labels))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    return step


def timed(step: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``step`` takes (device synchronised)."""
    sync(device)
    start = time.perf_counter()
    step()
    sync(device)
    return time.perf_counter() - start


def measure(
    steps: dict[str, Callable[[], object]], device: torch.device, count: int, warmup: int
) -> dict[str, float]:
    """Median seconds per step of each loop, the loops *interleaved* step by step so that load
    from other processes on a shared machine hits them alike."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(count):
        for name, step in steps.items():
            times[name].append(timed(step, device))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--gen", type=int, default=256, help="images to generate (total)")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--images", type=int, default=256, help="random training images")
    parser.add_argument("--compile", action="store_true", help="also time the compiled step")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--set", action="append", default=[], help="config key=value overrides")
    parser.add_argument("--flops", action="store_true", help="count model FLOPs of one step")
    parser.add_argument("--peak-tflops", type=float, default=None, help="card's bf16 dense peak")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    overrides: dict[str, object] = dict(item.split("=", 1) for item in args.set)
    overrides["optim.batch_size"] = args.batch
    config = GAN.resolve(args.preset, overrides)
    device = resolve_device(config.run.device)
    size = config.data.resolution
    gen = torch.Generator().manual_seed(0)
    data = TensorImageSet(
        torch.randint(0, 256, (args.images, 3, size, size), dtype=torch.uint8, generator=gen),
        torch.arange(args.images) % args.classes,
        [f"class{i}" for i in range(args.classes)],
    ).to(device)
    results: dict[str, object] = {
        "preset": args.preset,
        "batch": args.batch,
        "resolution": size,
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        trainer = GanTrainer(config, data, Path(tmp))
        loops: dict[str, Callable[[], object]] = {"tuned": trainer.train_step}
        if not args.skip_reference:
            loops["reference"] = reference_step(config, data, device)
        if args.compile:
            compiled = GanTrainer(
                GAN.resolve(args.preset, {**overrides, "run.compile": True}), data, Path(tmp)
            )
            results["compile_first_step_s"] = timed(compiled.train_step, device)
            loops["compiled"] = compiled.train_step
        seconds = measure(loops, device, args.steps, args.warmup)
        tuned = seconds["tuned"]
        results["tuned_s_per_step"] = tuned
        results["tuned_images_per_s"] = args.batch / tuned
        results["bf16"] = trainer.bf16
        results["channels_last"] = config.run.channels_last
        if "reference" in seconds:
            results["reference_s_per_step"] = seconds["reference"]
            results["reference_images_per_s"] = args.batch / seconds["reference"]
            results["speedup"] = seconds["reference"] / tuned
        if "compiled" in seconds:
            results["compiled_s_per_step"] = seconds["compiled"]
            results["compiled_images_per_s"] = args.batch / seconds["compiled"]
        # The paper's schedule: 3000 epochs of 1000 images at batch 64.
        results["paper_schedule_minutes"] = PAPER_STEPS * tuned / 60
        if "compiled" in seconds:
            results["paper_schedule_minutes_compiled"] = PAPER_STEPS * seconds["compiled"] / 60
        if args.flops:
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter:
                trainer.train_step()
            flops = counter.get_total_flops()
            results["model_gflop_per_step"] = flops / 1e9
            results["model_tflops_per_s"] = flops / tuned / 1e12
            peak = args.peak_tflops or peak_tflops(str(results["device"]))
            if peak:
                results["peak_fraction"] = flops / tuned / 1e12 / peak
        per_class = max(1, args.gen // args.classes)
        out = Path(tmp) / "generated"
        if args.gen <= 0:
            per_class = 0
        generator = trainer.G_ema.eval()
        if per_class:
            warm = generate_images(generator, data.class_names, 8, 1, 0, amp=trainer.bf16)  # type: ignore[arg-type]
            write_class_folders(warm, Path(tmp) / "warm")
            sync(device)
            start = time.perf_counter()
            count = write_class_folders(
                generate_images(
                    generator,  # type: ignore[arg-type]
                    data.class_names,
                    per_class,
                    0,
                    0,
                    batch_size=min(256, per_class),
                    amp=trainer.bf16,
                ),
                out,
            )
            elapsed = time.perf_counter() - start
            results["generate_images"] = count
            results["generate_images_per_s"] = count / elapsed

    print(
        f"GAN bench: preset {args.preset}, batch {args.batch}, {size}x{size}, {results['device']}, "
        f"torch {results['torch']}"
    )
    print(f"{'measure':<40}{'value':>14}")
    rows = [
        ("reference eager fp32 s/step", "reference_s_per_step"),
        ("reference images/s", "reference_images_per_s"),
        ("tuned s/step", "tuned_s_per_step"),
        ("tuned images/s", "tuned_images_per_s"),
        ("speed-up tuned / reference", "speedup"),
        ("compiled s/step", "compiled_s_per_step"),
        ("compiled images/s", "compiled_images_per_s"),
        ("compile: first step incl. compile (s)", "compile_first_step_s"),
        ("paper schedule (46,875 steps), minutes", "paper_schedule_minutes"),
        ("model GFLOP per step", "model_gflop_per_step"),
        ("achieved model TFLOP/s", "model_tflops_per_s"),
        ("fraction of bf16 peak", "peak_fraction"),
        ("generation to PNG files, images/s", "generate_images_per_s"),
    ]
    for label, key in rows:
        if key in results:
            print(f"{label:<40}{float(results[key]):>14.3f}")  # type: ignore[arg-type]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
