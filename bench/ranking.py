"""Do the synthesis-quality metrics on SSL features rank held-out real < GAN < degraded (issue 9)?

    python bench/ranking.py [--ssl-steps 40] [--gan-steps 100] [--side 32] [--per-set 120]

The comparison of ``tests/metrics/test_ssl_gan_ranking.py`` at any budget, with every metric
printed: Herlev's cells (``$PATHSYNTH_DATA/herlev``, default ``../shared/data``, read in place)
dealt by slide group into three disjoint parts; SimCLR (``pathsynth pretrain``'s ``quick``
preset, views at ``--side``) and FastGAN (``fastgan-64``'s widths at ``--side``) trained on the
reference part only; the held-out real, GAN and degraded sets (``--per-set`` images each) measured
against the reference part with FD, KID and precision/recall/density/coverage, on the SSL
backbone and, for comparison, on a random-init ResNet-18 (seed 0). The sets and the training are
``tests/herlev_ranking.py``'s, so the test's figures are this script's at the test's budget.

Besides the three sets it measures each degradation alone on the same cells of the third part
(``--components``): undegraded with every class, one class dropped, blur only, colour cast only,
to show which part of the degradation the metrics react to.

Run folders (with generated images' checkpoints) go to ``--out`` (default ``/tmp/ranking``): they
derive from licensed data and must never be committed. Prints a Markdown table and one JSON line;
``--json`` appends the figures to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from herlev_ranking import (  # the shared sets live beside the test
    DROPPED,
    SETS,
    blur,
    class_quota,
    colour_cast,
    compared_sets,
    gan_images,
    load_parts,
    pick,
    pretrain_backbone,
    scores,
    train_gan,
    without_class,
)

from pathsynth.backbones import load_backbone
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.metrics.features import BackboneFeatures

METRICS = ("frechet_distance", "kid_mean", "kid_std", "precision", "recall", "density", "coverage")


def component_sets(degraded_source: TensorImageSet, per_set: int) -> dict[str, torch.Tensor]:
    """Each degradation alone, on cells of the degraded set's part (the same draw as it)."""
    every_class = pick(degraded_source.images, per_set, 2)
    return {
        "part 3 as it is": every_class,
        f"{DROPPED} dropped only": pick(without_class(degraded_source), per_set, 2),
        "blur only": blur(every_class),
        "colour cast only": colour_cast(every_class),
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The figures as a Markdown table."""
    keys = ["features", "set", *METRICS]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=32, help="image side of every set, pixels")
    parser.add_argument("--per-set", type=int, default=120, help="images in each compared set")
    parser.add_argument("--ssl-steps", type=int, default=40, help="SimCLR steps (batch 64)")
    parser.add_argument("--gan-steps", type=int, default=100, help="GAN steps (batch 32)")
    parser.add_argument("--gan-preset", default="fastgan-64")
    parser.add_argument(
        "--gan-set", action="append", default=[], help="more GAN config keys: key=value"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds pretraining, GAN and sampling")
    parser.add_argument("--components", action="store_true", help="each degradation alone too")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ranking"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    herlev = Path(os.environ.get("PATHSYNTH_DATA", "../shared/data")) / "herlev"
    overrides = dict(item.split("=", 1) for item in args.gan_set)
    timings: dict[str, float] = {}
    parts = load_parts(herlev, args.side)

    def gan(reference: TensorImageSet) -> torch.Tensor:
        started = time.perf_counter()
        run_dir = train_gan(reference, args.out / "gan", args.gan_steps, args.seed,
                            args.gan_preset, overrides)  # fmt: skip
        timings["gan_s"] = time.perf_counter() - started
        return gan_images(run_dir, class_quota(reference.class_counts(), args.per_set), args.seed)

    sets = compared_sets(parts, args.per_set, gan)
    if args.components:
        sets.update(component_sets(parts[2], args.per_set))
    started = time.perf_counter()
    weights = pretrain_backbone(parts[0], args.out / "pretrain", args.ssl_steps, args.seed)
    timings["ssl_s"] = time.perf_counter() - started
    backbones = {
        "SSL": load_backbone("resnet18", weights=weights, input_size=args.side),
        "random init": load_backbone("resnet18", seed=0, input_size=args.side),
    }
    rows = []
    for label, backbone in backbones.items():
        measured = scores(BackboneFeatures(backbone), parts[0].images, sets)
        rows += [{"features": label, "set": name, **numbers} for name, numbers in measured.items()]
    print(table(rows))
    ssl = {row["set"]: row for row in rows if row["features"] == "SSL"}
    ranked = (
        all(
            ssl[SETS[0]][key] < ssl[SETS[1]][key] < ssl[SETS[2]][key]
            for key in ("frechet_distance", "kid_mean")
        )
        and ssl[SETS[0]]["coverage"] > ssl[SETS[1]]["coverage"] > ssl[SETS[2]]["coverage"]
    )
    record = {
        **{k: v for k, v in vars(args).items() if k not in ("out", "json")},
        **{k: round(v, 1) for k, v in timings.items()},
        "reference_images": len(parts[0]),
        "ssl_ranks_real_gan_degraded": ranked,
        "load": [round(x, 2) for x in os.getloadavg()],
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    print(json.dumps(record))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with args.json.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({**record, "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
