"""Sampling: byte-identical for a seed and batch size, guidance recorded, the null-label path."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from pathsynth.diffusion.config import SamplingConfig
from pathsynth.diffusion.networks import build_unet
from pathsynth.diffusion.run import train_run
from pathsynth.diffusion.sampling import GuidedSampler, denoise
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
        expected = {
            "sampler": sampler,
            "sampling_steps": 3,
            "guidance": 1.5,
            "guidance_interval": [0.0, 1.0],
            "compiled": False,
        }
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


class _Counting(torch.nn.Module):
    """A UNet that counts the images it is asked to denoise."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet, self.images = unet, 0

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor) -> object:
        self.images += x.shape[0]
        return self.unet(x, t, class_labels=class_labels)


def test_guidance_interval_guides_inside_it_and_runs_one_pass_outside() -> None:
    config = smoke_config()
    torch.manual_seed(0)
    unet = _Counting(build_unet(config.model, 32, 3).eval())
    start, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    # 4 trailing steps of 1,000 levels: t = 999, 749, 499, 249, i.e. t / 999 = 1, .75, .5, .25
    sampling = dataclasses.replace(SamplingConfig(), steps=4, guidance=2.0)

    def run(**changes: Any) -> torch.Tensor:
        unet.images = 0
        return denoise(
            unet, start, labels, 3, config.schedule, dataclasses.replace(sampling, **changes)
        )

    everywhere = run()
    assert unet.images == 4 * 2 * 2  # two passes (conditional, null) at every step
    nowhere = run(guidance_interval=(0.0, 0.1))
    assert unet.images == 4 * 2
    assert torch.equal(nowhere, run(guidance=1.0))  # no step guided: the conditional sampler
    middle = run(guidance_interval=(0.4, 0.8))
    assert unet.images == (2 + 2 * 2) * 2  # guided at .75 and .5 only
    assert not torch.allclose(middle, everywhere) and not torch.allclose(middle, nowhere)
    assert torch.equal(run(guidance_interval=(0.0, 1.0)), everywhere)


@pytest.mark.parametrize("interval", ["0.5", "0.8,0.2", "-0.1,0.5", "0.1,1.5"])
def test_a_guidance_interval_that_is_not_lo_hi_within_0_1_is_refused(interval: str) -> None:
    from pathsynth.config import with_overrides
    from pathsynth.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sampling\.guidance_interval must be lo,hi"):
        with_overrides(smoke_config(), {"sampling.guidance_interval": interval})


def test_a_gan_run_is_not_read_as_a_diffusion_run(tmp_path: Path) -> None:
    from pathsynth.training.checkpoint import save_checkpoint

    run = tmp_path / "00000-gan"
    run.mkdir()
    save_checkpoint(run, "last", {"format": 1, "step": 1, "generator": {}, "generator_ema": {},
                                  "class_names": ["a"], "config": {}})  # fmt: skip
    with pytest.raises(CheckpointError, match="is not a diffusion run's"):
        DiffusionGenerator().sample(run, 1, 0, device="cpu")


@pytest.mark.slow
def test_a_compiled_sampler_draws_what_the_eager_one_draws() -> None:
    config = smoke_config()
    torch.manual_seed(0)
    unet = build_unet(config.model, 32, 3).eval().requires_grad_(False)
    noise, labels = torch.randn(4, 3 * 32 * 32), torch.tensor([0, 1, 2, 0])
    sampling = dataclasses.replace(config.sampling, steps=3)  # one batch shape: one compile
    eager = GuidedSampler(unet, config, 3, sampling)(noise, labels)
    compiled = GuidedSampler(unet, config, 3, dataclasses.replace(sampling, compile=True))
    assert torch.allclose(compiled(noise, labels), eager, atol=1e-3)
