"""Loading timm backbones from weight files the tests write, and from a local hub cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from pathsynth.backbones import embed_inputs, load_backbone, normalise
from pathsynth.backbones.load import state_sha256
from pathsynth.errors import CheckpointError, ConfigError


def _reference():
    """A resnet18 with ImageNet-style head whose body the files below carry."""
    import timm

    torch.manual_seed(123)
    return timm.create_model("resnet18", num_classes=1000).eval()


def test_a_ddp_state_dict_with_its_head_loads_into_the_headless_backbone(tmp_path):
    reference = _reference()
    path = tmp_path / "ddp.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    backbone = load_backbone("resnet18", path, input_size=32)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    reference.reset_classifier(0)
    with torch.no_grad():
        expected = reference(normalise(images, backbone.spec))
    assert torch.allclose(embed_inputs(backbone, images), expected, atol=1e-5)
    assert backbone.weights_sha256 == state_sha256(reference)
    assert backbone.weights == str(path) and backbone.dim == 512


def test_safetensors_with_a_nested_prefix_load_and_random_init_differs(tmp_path):
    from safetensors.torch import save_file

    reference = _reference()
    reference.reset_classifier(0)
    path = tmp_path / "ssl.safetensors"
    save_file(
        {f"model.backbone.{k}": v.contiguous() for k, v in reference.state_dict().items()}, path
    )
    loaded = load_backbone("resnet18", path)
    assert loaded.weights_sha256 == state_sha256(reference)
    assert load_backbone("resnet18").weights_sha256 != loaded.weights_sha256
    # the pretrained config gives ImageNet normalisation and 224 px
    assert loaded.spec.size == 224 and loaded.spec.mean == pytest.approx((0.485, 0.456, 0.406))


def test_a_file_of_another_architecture_is_refused_naming_tensors(tmp_path):
    import timm

    path = tmp_path / "r34.pt"
    torch.save(timm.create_model("resnet34", num_classes=0).state_dict(), path)
    with pytest.raises(CheckpointError) as caught:
        load_backbone("resnet18", path)
    message = str(caught.value)
    assert "\n" not in message and "does not match resnet18" in message
    assert "unexpected (layer1.2." in message


def test_a_mis_shaped_tensor_is_named_with_both_shapes(tmp_path):
    reference = _reference()
    state = dict(reference.state_dict())
    state["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"conv1.weight \(64, 3, 5, 5\) vs \(64, 3, 7, 7\)"):
        load_backbone("resnet18", path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_truncated_file_is_one_clear_line(tmp_path, suffix):
    from safetensors.torch import save_file

    reference = _reference()
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, whole)
    else:
        torch.save(reference.state_dict(), whole)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CheckpointError) as caught:
        load_backbone("resnet18", cut)
    assert str(cut) in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_architecture_is_a_config_error():
    with pytest.raises(ConfigError, match="timm has no architecture 'resnet19'"):
        load_backbone("resnet19")


def test_a_hub_id_loads_offline_from_a_local_cache(tmp_path):
    """The standard hub cache layout, written here; the loader runs offline in a subprocess
    (huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE when imported)."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(7)
    model = timm.create_model("resnet18", num_classes=0)
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--lab--tiny-resnet"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, snapshot / "model.safetensors"
    )
    pretrained = {"input_size": [3, 96, 96], "mean": [0.7, 0.6, 0.7], "std": [0.2, 0.2, 0.2],
                  "interpolation": "bilinear", "classifier": "fc", "num_classes": 0}  # fmt: skip
    config = {"architecture": "resnet18", "num_classes": 0, "pretrained_cfg": pretrained}
    (snapshot / "config.json").write_text(json.dumps(config))
    script = (
        "from pathsynth.backbones import load_backbone\n"
        "b = load_backbone('hf-hub:lab/tiny-resnet')\n"
        "print(b.weights_sha256, b.spec.size, *b.spec.mean)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "HF_HOME": str(tmp_path / "hf-home")}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    digest, size, *mean = done.stdout.split()
    assert digest == state_sha256(model)
    assert int(size) == 96 and [float(m) for m in mean] == [0.7, 0.6, 0.7]


def test_memory_layout_and_bf16_keep_the_vectors():
    backbone = load_backbone("resnet18", input_size=32)
    images = torch.randint(0, 256, (3, 3, 40, 40), dtype=torch.uint8)  # resized to 32 px
    nchw = embed_inputs(backbone, images, channels_last=False)
    nhwc = embed_inputs(backbone, images, channels_last=True)
    bf16 = embed_inputs(backbone, images, bf16=True)
    assert nchw.shape == (3, 512) and nchw.dtype == torch.float32
    assert torch.allclose(nchw, nhwc, atol=1e-4)
    cosine = torch.nn.functional.cosine_similarity(nchw, bf16)
    assert bf16.dtype == torch.float32 and bool((cosine > 0.99).all())
