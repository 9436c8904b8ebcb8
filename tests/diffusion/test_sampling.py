"""Sampling: byte-identical for a seed and batch size, guidance recorded, the null-label path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pathsynth.diffusion.config import SamplingConfig
from pathsynth.diffusion.networks import build_unet
from pathsynth.diffusion.run import train_run
from pathsynth.diffusion.sampling import denoise
from pathsynth.errors import CheckpointError
from pathsynth.generators.diffusion import DiffusionGenerator

from .conftest import smoke_config, tiny_set


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    result = train_run(smoke_config(**{"optim.steps": 2}), tiny_set(), runs, "s", "t")
    assert result is not None
    return result.run_dir


def _pngs(run_dir: Path, seed: int, batch_size: int, **sampling: object) -> list[bytes]:
    samples = DiffusionGenerator(sampling=sampling).sample(
        run_dir, 3, seed, device="cpu", batch_size=batch_size
    )
    return [image.png for image in samples.images]


def test_a_seed_and_batch_size_give_the_same_bytes_and_another_seed_others(trained: Path) -> None:
    first = _pngs(trained, 5, 2)
    assert first == _pngs(trained, 5, 2)
    assert len(first) == 9 and first != _pngs(trained, 6, 2)


def test_both_samplers_run_and_the_settings_go_with_every_image(trained: Path) -> None:
    for sampler in ("ddim", "dpm++"):
        samples = DiffusionGenerator(
            sampling={"sampler": sampler, "steps": 3, "guidance": 1.5}
        ).sample(trained, 1, 0, device="cpu")
        images = list(samples.images)
        expected = {"sampler": sampler, "sampling_steps": 3, "guidance": 1.5}
        assert samples.provenance["sampling"] == expected
        assert samples.provenance["kind"] == "diffusion"
        assert [dict(image.sampling) for image in images] == [expected] * 3
        assert [image.class_name for image in images] == ["alpha", "beta", "gamma"]


def test_guidance_zero_ignores_the_label_and_one_uses_it() -> None:
    config = smoke_config()
    torch.manual_seed(0)
    unet = build_unet(config.model, 32, 3).eval()
    start = torch.randn(1, 3, 32, 32).repeat(3, 1, 1, 1)
    labels = torch.arange(3)
    sampling = dataclasses.replace(SamplingConfig(), steps=3)
    for scale, same in ((0.0, True), (1.0, False)):
        chosen = dataclasses.replace(sampling, guidance=scale)
        out = denoise(unet, start, labels, 3, config.schedule, chosen)
        assert torch.equal(out[0], out[1]) is same and torch.equal(out[0], out[2]) is same
    # scale 2 mixes the two passes: neither the conditional nor the unconditional result
    mixed = denoise(
        unet, start, labels, 3, config.schedule, dataclasses.replace(sampling, guidance=2.0)
    )
    conditional = denoise(
        unet, start, labels, 3, config.schedule, dataclasses.replace(sampling, guidance=1.0)
    )
    assert not torch.allclose(mixed, conditional)


def test_a_gan_run_is_not_read_as_a_diffusion_run(tmp_path: Path) -> None:
    from pathsynth.gan.checkpoint import save_checkpoint

    run = tmp_path / "00000-gan"
    run.mkdir()
    save_checkpoint(run, "last", {"format": 1, "step": 1, "generator": {}, "generator_ema": {},
                                  "class_names": ["a"], "config": {}})  # fmt: skip
    with pytest.raises(CheckpointError, match="is not a diffusion run's"):
        DiffusionGenerator().sample(run, 1, 0, device="cpu")
