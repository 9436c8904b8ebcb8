"""FastGAN's networks: sizes, skip-layer excitation, the reconstruction loss on real images only,
the presets, bf16 training, and colour augmentation of the real images D sees."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pathsynth.errors import ConfigError
from pathsynth.gan.architectures import build_discriminator, build_generator, check_architecture
from pathsynth.gan.fastgan import FastGanDiscriminator, FastGanGenerator, SkipLayerExcitation
from pathsynth.gan.presets import GAN
from pathsynth.gan.trainer import GanTrainer
from pathsynth.imaging.folders import folder_files, load_image_set
from pathsynth.imaging.patches import PreprocessConfig

from .conftest import smoke_config

TINY = {"model.arch": "fastgan", "model.noise_dim": 8, "model.class_embed_dim": 4}


def _tiny(**overrides: object) -> tuple[FastGanGenerator, FastGanDiscriminator, int]:
    config = GAN.resolve("smoke", {**TINY, **overrides})
    resolution = config.data.resolution
    torch.manual_seed(0)
    G = build_generator(config.model, resolution, 3)
    D = build_discriminator(config.model, resolution, 3)
    assert isinstance(G, FastGanGenerator) and isinstance(D, FastGanDiscriminator)
    return G, D, resolution


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_generator_makes_class_conditional_images_in_range_at_each_size(resolution: int) -> None:
    G, D, _ = _tiny(**{"data.preprocess.size": resolution})  # batch statistics: untrained
    # running ones would shrink the signal to nothing
    noise = torch.randn(1, 8).repeat(3, 1)
    images = G(noise, torch.arange(3))
    assert images.shape == (3, 3, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1
    # same noise, other class: another image
    assert not torch.allclose(images[0], images[1], atol=1e-4)
    assert D(images, torch.arange(3)).shape == (3,)


def test_skip_layer_excitation_follows_the_paper_pairs() -> None:
    assert _tiny(**{"data.preprocess.size": 32})[0].excitation_sources == {}
    assert _tiny(**{"data.preprocess.size": 64})[0].excitation_sources == {64: 4}
    assert _tiny(**{"data.preprocess.size": 128})[0].excitation_sources == {64: 4, 128: 8}


def test_skip_layer_excitation_gates_each_channel_of_the_large_map_by_the_small_one() -> None:
    torch.manual_seed(0)
    sle = SkipLayerExcitation(6, 5)
    small, large = torch.randn(2, 6, 8, 8), torch.randn(2, 5, 32, 32)
    out = sle(small, large)
    gate = out / large
    # one gate in (0, 1) per image and channel, constant over the map
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-5)
    assert gate.min() > 0 and gate.max() < 1
    assert not torch.allclose(gate[0], gate[1])  # it depends on the small map


def test_the_64px_layer_of_the_generator_listens_to_the_4px_map() -> None:
    G, _, _ = _tiny(**{"data.preprocess.size": 64})
    noise, labels = torch.randn(2, 8), torch.tensor([0, 1])
    before = G(noise, labels)
    with torch.no_grad():  # a gate of exactly 1/2 everywhere, whatever the 4x4 map says
        last = G.excite["64"].gate[3]
        last.weight.zero_()
        last.bias.zero_()
    after = G(noise, labels)
    assert not torch.allclose(before, after, atol=1e-4)


@pytest.mark.parametrize("resolution", [16, 48, 2048])
def test_sizes_fastgan_cannot_make_are_refused_in_one_line(resolution: int) -> None:
    config = GAN.resolve("fastgan", {"data.preprocess.size": resolution})
    with pytest.raises(ConfigError, match=f"image size {resolution} cannot be made by model.arch"):
        check_architecture(config)


def test_reconstruction_loss_needs_the_fastgan_discriminator() -> None:
    config = GAN.resolve("modern", {"loss.reconstruction_weight": 1.0})
    with pytest.raises(ConfigError, match=r"loss\.reconstruction_weight needs model\.arch fastgan"):
        check_architecture(config)


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"model\.arch 'stylegan' is not one of dcgan, fastgan"):
        GAN.resolve("smoke", {"model.arch": "stylegan"})


def test_reconstruction_loss_is_the_l1_of_both_decoders_on_the_real_images_only() -> None:
    _, D, resolution = _tiny(**{"data.preprocess.size": 64})
    real, fake = torch.rand(4, 3, 64, 64) * 2 - 1, torch.rand(4, 3, 64, 64) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 0, 1, 2, 0])
    torch.manual_seed(5)
    logits, loss = D(torch.cat([real, fake]), labels, reconstruct=4)
    assert torch.equal(logits, D(torch.cat([real, fake]), labels))

    # by hand: the quarter torch's RNG draws, the decoders on D's maps, L1 against the targets
    torch.manual_seed(5)
    row, col = divmod(int(torch.randint(4, (1,)).item()), 2)
    stem = D.stem(real)
    map16 = D.down[0](stem)
    map8 = D.excite(stem, D.down[1](map16))
    half = resolution // 2
    expected = F.l1_loss(D.decode_whole(map8), F.avg_pool2d(real, 2)) + F.l1_loss(
        D.decode_quarter(map16[:, :, row * 8 : row * 8 + 8, col * 8 : col * 8 + 8]),
        real[:, :, row * half : (row + 1) * half, col * half : (col + 1) * half],
    )
    assert torch.allclose(loss, expected, atol=1e-6)

    # the generated half of the batch never enters it
    torch.manual_seed(5)
    _, other = D(torch.cat([real, torch.zeros_like(fake)]), labels, reconstruct=4)
    assert torch.allclose(loss, other, atol=1e-6)


def test_the_decoders_learn_to_reconstruct() -> None:
    _, D, _ = _tiny()
    # smooth images, as tissue is at this scale next to pixel noise (which no decoder can rebuild)
    real = F.interpolate(torch.rand(8, 3, 4, 4) * 2 - 1, size=32, mode="bilinear")
    labels = torch.zeros(8, dtype=torch.long)
    optimiser = torch.optim.Adam(D.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        torch.manual_seed(0)  # the same quarter each time: the loss is comparable
        _, loss = D(real, labels, reconstruct=8)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_presets_set_the_architecture_and_size() -> None:
    for name, size, widest in (("fastgan-64", 64, 128), ("fastgan-128", 128, 512)):
        config = GAN.resolve(name)
        assert config.model.arch == "fastgan" and config.data.resolution == size
        assert config.loss.kind == "hinge" and config.loss.reconstruction_weight == 1.0
        assert config.model.spectral_norm and config.augment.policy == "color,translation"
        G = build_generator(config.model, size, 4)
        assert isinstance(G, FastGanGenerator)
        assert G.up[0][1].out_channels == 2 * widest  # GLU halves the 8x8 convolution's output
    assert GAN.resolve("fastgan").data.resolution == GAN.resolve("paper").data.resolution


@pytest.fixture(scope="module")
def data(class_folders: Path):
    return load_image_set(folder_files(class_folders), PreprocessConfig(mode="fit", size=32))


def test_fastgan_trains_in_bf16_with_finite_losses_and_writes_a_grid(data, tmp_path: Path) -> None:
    config = smoke_config(
        model__arch="fastgan",
        loss__reconstruction_weight=1.0,
        loss__kind="hinge",
        run__amp="bf16",
        run__sample_every=2,
        optim__steps=4,
    )
    trainer = GanTrainer(config, data, tmp_path)
    assert trainer.bf16
    losses = [trainer.train_step() for _ in range(2)]
    assert all(torch.isfinite(pair).all() and pair.shape == (2,) for pair in losses)
    result = trainer.train()  # on from step 2
    assert result.status == "finished" and result.step == 4
    assert (tmp_path / "samples" / "grid-step=00000004.png").is_file()


def test_colour_augmentation_changes_the_real_images_d_sees_not_the_fakes(data, tmp_path) -> None:
    plain = GanTrainer(smoke_config(), data, tmp_path / "plain")
    coloured = GanTrainer(
        smoke_config(augment__colour__hed_p=1.0, augment__colour__brightness_p=1.0),
        data,
        tmp_path / "coloured",
    )
    torch.manual_seed(3)
    real_plain, labels_plain = plain._real_batch()
    torch.manual_seed(3)
    real_coloured, labels_coloured = coloured._real_batch()
    assert torch.equal(labels_plain, labels_coloured)  # the same images, drawn alike
    assert real_coloured.min() >= -1 and real_coloured.max() <= 1
    changed = (real_plain - real_coloured).abs().flatten(1).amax(dim=1)
    assert (changed > 2 / 255).all()  # every image's colours moved
    # its draws come from a generator of its own: torch's RNG (noise, DiffAugment) is left alone
    torch.manual_seed(3)
    plain._real_batch()
    expected = torch.get_rng_state()
    torch.manual_seed(3)
    coloured._real_batch()
    assert torch.equal(torch.get_rng_state(), expected)
