"""Peak memory of ``pathsynth predict`` on one very large image (issue 23, item 1).

A bundle of the ``quick`` cytology classifier (untrained: memory does not depend on the weights)
and one N-megapixel image as JPEG and as PNG (noise upsampled, so neither compresses to nothing);
each file is predicted by its own ``pathsynth predict`` process, and a 1 MP image gives the
baseline (interpreter, torch, the network). Prints the peak resident memory (``/usr/bin/time``'s
maximum RSS) of each and what the large image adds.

    python bench/predict_memory.py [--megapixels 100]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def peak_mb(command: list[str]) -> float:
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1]}")
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    assert found is not None, done.stderr
    return int(found.group(1)) / 1024


def make_bundle(folder: Path) -> Path:
    from pathsynth.classify.bundle import Provenance, save_bundle
    from pathsynth.classify.networks import build_classifier
    from pathsynth.experiment.config import experiment_presets

    config = experiment_presets("cytology").resolve("quick")
    model = build_classifier(config.classifier, 2)
    provenance = Provenance(experiment=None, protocol="honest", condition="original", seed=0,
                            training_images=0, modality="cytology", source="bench")  # fmt: skip
    return save_bundle(folder / "quick.bundle", model, config.classifier, config.preprocess,
                       ["a", "b"], provenance, {})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=100.0)
    args = parser.parse_args()
    side = int((args.megapixels * 1e6) ** 0.5)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        bundle = make_bundle(folder)
        noise = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
        Image.fromarray(noise).resize((1000, 1000)).save(folder / "small.jpg", quality=90)
        large = Image.fromarray(noise).resize((side, side), Image.Resampling.BILINEAR)
        large.save(folder / "large.jpg", quality=90)
        large.save(folder / "large.png", compress_level=1)
        del large
        predict = [sys.executable, "-m", "pathsynth", "predict", str(bundle)]
        base = peak_mb([*predict, str(folder / "small.jpg"), "--out", str(folder / "s.csv")])
        print(f"| 1 MP JPEG (baseline) | {base:.0f} MB | |")
        for name in ("large.jpg", "large.png"):
            peak = peak_mb([*predict, str(folder / name), "--out", str(folder / "p.csv")])
            print(f"| {side}x{side} {name[-3:].upper()} | {peak:.0f} MB | +{peak - base:.0f} MB |")


if __name__ == "__main__":
    main()
