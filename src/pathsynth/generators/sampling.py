"""Sampling a generator of any kind to files: noise per class and seed, PNG encoding in threads.

:func:`generate_images` yields :class:`GeneratedImage` records (PNG already encoded) in a fixed
order; the same iterator feeds :func:`write_class_folders` (``--out DIR``) and the catalog's
``store_generated``. Noise for image ``i`` of class ``c`` comes from a generator seeded with
``(seed, c)``, so a seed always gives the same images, byte for byte, on the same machine.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from pathsynth.errors import ConfigError
from pathsynth.files import label_folder, write_atomic
from pathsynth.imaging.png import encode_png
from pathsynth.imaging.tensorset import to_uint8
from pathsynth.progress import advance


@dataclass(frozen=True)
class GeneratedImage:
    """One generated image with its provenance.

    Args:
        class_name: the class it was generated for.
        seed: the generation seed.
        index: its index within its class for that seed (0-based).
        step: training step of the checkpoint that made it.
        png: the encoded PNG file.
        sampling: how it was sampled, where the generator has settings for that (a diffusion
            run's sampler, steps and guidance scale); stored with the image in the catalog.
    """

    class_name: str
    seed: int
    index: int
    step: int
    png: bytes
    sampling: Mapping[str, Any] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        """A file name that says where the image comes from."""
        return f"gen-step={self.step:08d}-seed={self.seed}-{self.index:06d}.png"


def class_noise(seed: int, class_index: int, count: int, noise_dim: int) -> torch.Tensor:
    """The first ``count`` noise vectors for ``class_index`` under ``seed`` (CPU float32)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + class_index)
    return torch.randn(count, noise_dim, generator=generator)


class NoiseToImages(Protocol):
    """Anything that turns ``(N, noise_dim)`` noise and ``(N,)`` labels into images in [-1, 1]:
    the GAN's generator, or a diffusion sampler whose noise is its starting image."""

    noise_dim: int

    def __call__(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...


@torch.no_grad()
def generate_images(
    generator: NoiseToImages,
    class_names: list[str],
    per_class: int,
    seed: int,
    step: int,
    *,
    batch_size: int = 64,
    amp: bool = False,
    threads: int | None = None,
    compress_level: int = 1,
    sampling: Mapping[str, Any] | None = None,
) -> Iterator[GeneratedImage]:
    """Sample ``per_class`` images of every class and yield them PNG-encoded, class by class.

    Generation of the next batch overlaps with PNG encoding of the previous ones (thread pool).

    Args:
        generator: the (EMA) generator, in eval mode, or a diffusion sampler.
        class_names: class name per label index.
        per_class: images per class.
        seed: generation seed (same seed, same batch size: same bytes).
        step: checkpoint step recorded in each record.
        batch_size: images per forward pass.
        amp: run the generator under bf16 autocast.
        threads: PNG encoding threads (default: CPU count).
        compress_level: zlib level, 0-9 (1: fast, files about 10% larger than 6).
        sampling: recorded with every image (a diffusion run's sampler, steps, guidance).

    Raises:
        ConfigError: ``per_class`` or ``batch_size`` below 1.
    """
    if per_class < 1 or batch_size < 1:
        raise ConfigError("per-class count and batch size must be at least 1")
    device = next(generator.parameters()).device
    recorded = dict(sampling or {})
    workers = threads or os.cpu_count() or 2
    pending: deque[tuple[Future[bytes], str, int]] = deque()
    total, made = per_class * len(class_names), 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for class_index, class_name in enumerate(class_names):
            noise = class_noise(seed, class_index, per_class, generator.noise_dim)
            for start in range(0, per_class, batch_size):
                chunk = noise[start : start + batch_size].to(device)
                labels = torch.full((chunk.shape[0],), class_index, dtype=torch.long, device=device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    images = generator(chunk, labels)
                pixels = to_uint8(images.float()).permute(0, 2, 3, 1).contiguous().cpu().numpy()
                for offset in range(pixels.shape[0]):
                    future = pool.submit(encode_png, pixels[offset], compress_level)
                    pending.append((future, class_name, start + offset))
                made += pixels.shape[0]
                advance("generated images", made, total)
                while len(pending) > 4 * workers * max(1, batch_size // 8):
                    future, name, index = pending.popleft()
                    yield GeneratedImage(name, seed, index, step, future.result(), recorded)
        while pending:
            future, name, index = pending.popleft()
            yield GeneratedImage(name, seed, index, step, future.result(), recorded)


def write_class_folders(images: Iterable[GeneratedImage], out_dir: Path) -> int:
    """Write each image to ``out_dir/<class folder>/<file_name>`` atomically (the class label as
    one safe folder name, :func:`pathsynth.files.label_folder`); returns the count.

    Raises:
        ValueError: a label no folder can stand for (empty, or too long).
    """
    count = 0
    made: set[str] = set()
    for image in images:
        folder = out_dir / label_folder(image.class_name)
        if image.class_name not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(image.class_name)
        write_atomic(folder / image.file_name, image.png)
        count += 1
    return count
