"""Embedding throughput of issue 9: a ResNet-18 at 224 px on the CPU (float32 and bf16), or any
timm backbone on a GPU.

    python bench/embed.py [--images 64] [--bf16-images 8] [--batch 32] [--backbone resnet18]
        [--threads 2] [--json bench/out/embed.jsonl]
    python bench/embed.py --device cuda --synthetic --backbone vit_large_patch16_224 \
        --images 4096 --bf16-images 4096 --batch 256 --precisions bf16

``--synthetic`` embeds random uint8 images of the backbone's input size instead of BACH fields
(the time of a forward pass does not depend on the pixels; used where the licensed data are not
available, such as the lent GPU machine); decoding is then not timed.

Real BACH fields (``$PATHSYNTH_DATA/bach``, default ``../shared/data``) are read in place, decoded
and resized whole to the backbone's input side (timed apart: "decode+resize"), then embedded by
:func:`pathsynth.backbones.embed_inputs` (normalisation and forward pass: "embed") with random-init
weights (the weights do not change the time). Each precision is warmed up on a few images, then
timed. bf16 runs on ``--bf16-images`` only: on a CPU without native bf16 (no AVX512-BF16 or AMX,
as on the 2-core AMD EPYC VM) PyTorch emulates it, about ten times slower than float32, and the
whole set would not fit the two-minute budget. Prints a Markdown row per precision and appends
JSON lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import torch

from pathsynth.backbones import Backbone, embed_inputs, load_backbone
from pathsynth.devices import device_name
from pathsynth.imaging.decode import load_rgb
from pathsynth.imaging.patches import PreprocessConfig, preprocess_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--bf16-images", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default="bench/out/embed.jsonl")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--precisions", default="float32,float32-nhwc,bf16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backbone = load_backbone(args.backbone)
    if args.synthetic:
        side = backbone.spec.size
        generator = torch.Generator().manual_seed(0)
        batch = torch.randint(0, 256, (args.images, 3, side, side), dtype=torch.uint8,
                              generator=generator)  # fmt: skip
        decode_s = 0.0
    else:
        batch, decode_s = _bach_inputs(args.images, backbone.spec.size)
    _time_precisions(args, backbone, batch, decode_s)


def _bach_inputs(count: int, side: int) -> tuple[torch.Tensor, float]:
    """The first ``count`` BACH fields resized whole to ``side``, and the seconds that took."""
    data = Path(
        os.environ.get("PATHSYNTH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    files = sorted((data / "bach" / "images").rglob("*.jpg"))[:count]
    if not files:
        raise SystemExit(f"no BACH images under {data / 'bach' / 'images'}")
    inputs = PreprocessConfig(mode="resize", size=side)
    start = time.perf_counter()
    batch = torch.cat([preprocess_image(load_rgb(path), inputs) for path in files])
    return batch, time.perf_counter() - start


PRECISIONS = {"float32": (False, False), "float32-nhwc": (False, True), "bf16": (True, True)}


def _time_precisions(
    args: argparse.Namespace, backbone: Backbone, batch: torch.Tensor, decode_s: float
) -> None:
    """Time each precision of ``--precisions`` on ``batch``; print rows, append JSON lines."""
    load = os.getloadavg()[0]
    device = torch.device(args.device)
    name = device_name(device)
    rows = []
    for precision in args.precisions.split(","):
        bf16, channels_last = PRECISIONS[precision]
        timed = batch[: args.bf16_images] if bf16 else batch
        warm = batch[: min(len(batch), args.batch)]
        embed_inputs(backbone, warm, batch_size=args.batch, bf16=bf16, device=device,
                     channels_last=channels_last)  # fmt: skip  # warm-up
        start = time.perf_counter()
        vectors = embed_inputs(
            backbone, timed, batch_size=args.batch, bf16=bf16, device=device,
            channels_last=channels_last,
        )  # fmt: skip
        embed_s = time.perf_counter() - start
        count = len(timed)
        row = {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "backbone": backbone.name, "size": backbone.spec.size, "images": count,
            "batch": args.batch, "precision": "bf16" if bf16 else "float32",
            "layout": "NHWC" if channels_last else "NCHW",
            "threads": args.threads, "embed_images_per_s": round(count / embed_s, 1),
            "decode_resize_images_per_s": round(len(batch) / decode_s, 1) if decode_s else None,
            "end_to_end_images_per_s": round(
                1 / (embed_s / count + decode_s / len(batch)), 1
            ),
            "dim": int(vectors.shape[1]), "load_average_1min": round(load, 2),
            "device": name or platform.machine(), "torch": torch.__version__,
        }  # fmt: skip
        rows.append(row)
        print(
            f"| {row['backbone']} {row['size']} px | {row['precision']} {row['layout']} | "
            f"{row['images']} | "
            f"{row['embed_images_per_s']} | {row['decode_resize_images_per_s']} | "
            f"{row['end_to_end_images_per_s']} | {row['load_average_1min']} |"
        )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
