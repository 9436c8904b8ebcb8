"""The paper's networks: layer structure, output shape and range, sizes refused up front."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pathsynth.errors import ConfigError
from pathsynth.gan.networks import Discriminator, Generator, minibatch_std
from pathsynth.gan.presets import GAN


@pytest.fixture(scope="module")
def paper_networks() -> tuple[Generator, Discriminator]:
    config = GAN.resolve("paper")
    torch.manual_seed(0)
    return Generator(config.model, 128, 4), Discriminator(config.model, 128, 4)


def test_paper_generator_has_seven_5x5_transposed_convs_with_dropout_and_batchnorm(
    paper_networks,
) -> None:
    generator, _ = paper_networks
    layers = list(generator.body)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, nn.ConvTranspose2d)]
    assert len(convs) == 7
    for i in convs:
        assert layers[i].kernel_size == (5, 5)
    for i in convs[:-1]:
        assert isinstance(layers[i + 1], nn.Dropout)
        assert isinstance(layers[i + 2], nn.BatchNorm2d)
        assert isinstance(layers[i + 3], nn.LeakyReLU) and layers[i + 3].negative_slope == 0.2
    assert isinstance(layers[convs[-1] + 1], nn.Tanh)
    assert layers[-1].__class__ is nn.Tanh
    assert [layers[i].stride[0] for i in convs] == [1, 1, 2, 2, 2, 2, 2]


def test_paper_generator_takes_64_noise_numbers_through_one_fully_connected_layer(
    paper_networks,
) -> None:
    generator, _ = paper_networks
    linears = [m for m in generator.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1
    assert generator.noise_dim == 64
    assert linears[0].in_features == 64 + generator.class_embed.embedding_dim
    post = list(generator.fc_post)
    assert isinstance(post[0], nn.Dropout) and isinstance(post[1], nn.BatchNorm2d)
    assert isinstance(post[2], nn.LeakyReLU) and post[2].negative_slope == 0.2


def test_paper_discriminator_has_six_5x5_convs_five_of_stride_two_and_one_logit(
    paper_networks,
) -> None:
    _, discriminator = paper_networks
    layers = list(discriminator.body)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
    assert len(convs) == 6
    assert [layers[i].kernel_size for i in convs] == [(5, 5)] * 6
    assert [layers[i].stride[0] for i in convs] == [2, 2, 2, 2, 2, 1]
    for i in convs:
        assert isinstance(layers[i + 1], nn.LeakyReLU) and layers[i + 1].negative_slope == 0.2
        assert isinstance(layers[i + 2], nn.Dropout)
    assert discriminator.head.out_features == 1
    assert not any(isinstance(m, nn.Sigmoid) for m in discriminator.modules())


def test_paper_generator_makes_128x128x3_images_in_minus_one_to_one(paper_networks) -> None:
    generator, discriminator = paper_networks
    generator.eval()
    with torch.no_grad():
        noise = torch.randn(2, 64) * 50  # far outside N(0, 1): tanh still bounds the output
        images = generator(noise, torch.tensor([0, 3]))
        logits = discriminator.eval()(images, torch.tensor([0, 3]))
    assert images.shape == (2, 3, 128, 128)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.min() < 0 < images.max()
    assert logits.shape == (2,)


def test_class_changes_the_generated_image() -> None:
    config = GAN.resolve("smoke")
    torch.manual_seed(0)
    generator = Generator(config.model, 32, 3).eval()
    noise = torch.randn(1, 64).repeat(2, 1)
    with torch.no_grad():
        images = generator(noise, torch.tensor([0, 1]))
    assert not torch.equal(images[0], images[1])


@pytest.mark.parametrize("size", [48, 100, 2, 1024])
def test_sizes_the_architecture_cannot_make_are_refused(size: int) -> None:
    config = GAN.resolve("paper")
    with pytest.raises(ConfigError, match=f"image size {size}"):
        Generator(config.model, size, 3)


def test_spectral_norm_wraps_every_discriminator_layer() -> None:
    config = GAN.resolve("smoke", {"model.spectral_norm": True})
    discriminator = Discriminator(config.model, 32, 3)
    weighted = [
        m for m in discriminator.modules() if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding)
    ]
    assert weighted and all(hasattr(m, "weight_orig") for m in weighted)


def test_minibatch_std_lets_an_image_see_only_its_own_group() -> None:
    config = GAN.resolve("smoke", {"model.d_minibatch_std_group": 4, "model.d_dropout": 0.0})
    torch.manual_seed(0)
    discriminator = Discriminator(config.model, 32, 3).eval()
    images, labels = torch.rand(8, 3, 32, 32) * 2 - 1, torch.zeros(8, dtype=torch.long)
    with torch.no_grad():
        before = discriminator(images, labels)
        changed = images.clone()
        changed[1] = 0.0  # a group mate of image 0, not of images 4-7
        after = discriminator(changed, labels)
    assert not torch.isclose(before[0], after[0])
    assert torch.equal(before[4:], after[4:])


def test_minibatch_std_is_zero_for_identical_images() -> None:
    features = torch.rand(1, 5, 2, 2).repeat(4, 1, 1, 1)
    out = minibatch_std(features, 4)
    assert out.shape == (4, 6, 2, 2)
    assert out[:, -1].max() < 1e-3
