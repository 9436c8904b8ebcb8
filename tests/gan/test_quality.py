"""The cheap quality signal ranks closer image sets lower."""

from __future__ import annotations

import torch

from pathsynth.gan.quality import CheapFeatures, kid


def test_kid_is_near_zero_for_the_same_distribution_and_larger_for_a_different_one() -> None:
    torch.manual_seed(0)
    features = CheapFeatures()
    real = torch.rand(64, 3, 32, 32) * 2 - 1
    same = torch.rand(64, 3, 32, 32) * 2 - 1
    shifted = (torch.rand(64, 3, 32, 32) * 2 - 1) * 0.3 + 0.5
    near = kid(features(real), features(same))
    far = kid(features(real), features(shifted))
    assert abs(near) < far / 20
    assert far > 0


def test_features_are_fixed_by_the_seed() -> None:
    images = torch.rand(4, 3, 32, 32)
    assert torch.equal(CheapFeatures(seed=5)(images), CheapFeatures(seed=5)(images))


def test_the_backbone_signal_sees_images_as_the_embeddings_do():
    """The GAN's checkpoint signal on a backbone computes the same features as the stored
    embeddings of the same images (resize and normalisation from the backbone's config)."""
    from pathsynth.backbones import embed_inputs, load_backbone
    from pathsynth.gan.quality import BackboneSignal, signal_features

    images = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    signal = signal_features("resnet18", None, 32)
    assert isinstance(signal, BackboneSignal)
    expected = embed_inputs(load_backbone("resnet18", input_size=32), images, channels_last=False)
    got = signal(images.float() / 127.5 - 1.0)
    assert torch.allclose(got, expected, atol=1e-4)
    assert isinstance(signal_features(), CheapFeatures)
