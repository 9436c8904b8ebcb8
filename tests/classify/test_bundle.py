"""A classifier bundle holds everything needed to predict, loads anywhere, and refuses other files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bundles import (
    CLASS_NAMES,
    CONFIG,
    METRICS,
    PREPROCESS,
    PROVENANCE,
    image_folder,
    make_bundle,
    trained_model,
)
from helpers import write_image
from torchvision.models import resnet18

from pathsynth.classify.bundle import (
    BUNDLE_MARK,
    load_bundle,
    load_bundles,
    read_manifest,
    save_bundle,
)
from pathsynth.classify.config import ClassifierConfig
from pathsynth.classify.evaluate import predict_probabilities
from pathsynth.classify.networks import build_classifier
from pathsynth.classify.predict import image_files, predict_files
from pathsynth.errors import CheckpointError, ConfigError
from pathsynth.imaging.decode import load_rgb
from pathsynth.imaging.patches import preprocess_image

FRESH_PROCESS = """
import json, sys
from pathlib import Path
from pathsynth.classify.bundle import load_bundle
from pathsynth.classify.predict import predict_files
bundle = load_bundle(Path(sys.argv[1]))
result = predict_files(bundle, [Path(p) for p in sys.argv[2:]], batch_size=2)
print(json.dumps({"paths": [str(p) for p in result.paths],
                  "probabilities": result.probabilities.tolist()}))
"""


def reference_probabilities(model: torch.nn.Module, files: list[Path]) -> np.ndarray:
    """Mean patch probability per file, computed without the predict module."""
    rows = []
    for path in files:
        patches = preprocess_image(load_rgb(path), PREPROCESS)
        rows.append(predict_probabilities(model, patches).mean(dim=0).numpy())
    return np.stack(rows)


def test_a_bundle_loads_in_a_fresh_process_and_gives_the_same_probabilities(tmp_path) -> None:
    files = image_folder(tmp_path)
    bundle = make_bundle(tmp_path / "model.bundle")
    expected = reference_probabilities(trained_model(), files)

    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(bundle), *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    fresh = json.loads(done.stdout)

    assert fresh["paths"] == [str(p) for p in files]
    np.testing.assert_allclose(np.array(fresh["probabilities"]), expected, rtol=0, atol=1e-6)
    assert not np.allclose(expected, expected[0])  # the images really get different answers


def test_the_manifest_keeps_config_preprocessing_classes_provenance_and_metrics(tmp_path) -> None:
    manifest = read_manifest(make_bundle(tmp_path / "model.bundle"))

    assert manifest.classifier == CONFIG
    assert manifest.preprocess == PREPROCESS
    assert manifest.class_names == CLASS_NAMES
    assert manifest.metrics == METRICS
    assert manifest.provenance.condition == "affine" and manifest.provenance.seed == 3
    assert manifest.provenance.source_sha256 == PROVENANCE.source_sha256
    assert manifest.provenance.created  # stamped when saved


def test_a_resnet_bundle_loads_without_the_weights_file_it_started_from(tmp_path) -> None:
    start = tmp_path / "imagenet.pt"
    config = ClassifierConfig(network="resnet18", weights_path=str(start))
    torch.save(resnet18(weights=None, num_classes=1000).state_dict(), start)
    model = build_classifier(config, 2)
    bundle = save_bundle(tmp_path / "r.bundle", model, config, PREPROCESS, ["a", "b"], PROVENANCE)
    start.unlink()

    loaded = load_bundle(bundle)

    assert loaded.manifest.classifier.weights_path is None
    probe = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(
        predict_probabilities(loaded.model, probe), predict_probabilities(model, probe)
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "does not exist"),
        (b"class,path\n", "cannot be read (UnpicklingError): it is damaged"),
        ({"conv.weight": torch.zeros(2)}, "not a pathsynth classifier bundle"),
        ("truncated", "): it is damaged or another kind of file"),
        (
            {"format": BUNDLE_MARK, "bundle_version": 99},
            "bundle version 99, this pathsynth reads 1",
        ),
        ({"format": BUNDLE_MARK, "bundle_version": 1, "manifest": "{"}, "damaged manifest"),
    ],
    ids=["missing", "text", "weights-file", "truncated", "other-version", "damaged-manifest"],
)
def test_a_missing_foreign_or_damaged_bundle_is_refused_in_one_line(
    tmp_path, content, reason
) -> None:
    path = tmp_path / "model.bundle"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncated":
        data = make_bundle(tmp_path / "whole.bundle").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content is not None:
        torch.save(content, path)

    with pytest.raises(CheckpointError) as refused:
        load_bundle(path)

    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)


def test_weights_that_do_not_fit_the_recorded_network_are_refused(tmp_path) -> None:
    path = make_bundle(tmp_path / "model.bundle")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"].pop(next(iter(payload["state_dict"])))
    torch.save(payload, path)

    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_bundle(path)


def test_class_names_that_do_not_match_the_outputs_are_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="one distinct class name per output"):
        save_bundle(
            tmp_path / "m.bundle", trained_model(), CONFIG, PREPROCESS, ["a", "b"], PROVENANCE
        )
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_unreadable_images_are_listed_with_their_reason_and_the_rest_predicted(tmp_path) -> None:
    files = image_folder(tmp_path, count=4)
    (tmp_path / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    write_image(tmp_path / "sub" / "tiny.png", seed=1, size=(8, 8))  # smaller than one patch
    (tmp_path / "sub" / "notes.txt").write_text("not an image, not a candidate")
    bundle = load_bundle(make_bundle(tmp_path / "model.bundle"))

    result = predict_files(bundle, image_files([tmp_path / "sub"]).found, batch_size=3)

    assert result.paths == files
    reasons = {path.name: reason for path, reason in result.refused}
    assert set(reasons) == {"broken.png", "tiny.png"}
    assert "corrupt" in reasons["broken.png"] or "not an image" in reasons["broken.png"]
    assert "smaller than one 16 px patch" in reasons["tiny.png"]
    # predict cannot change the classifier's scale: it names what the classifier takes instead
    assert "lower the scale" not in reasons["tiny.png"]
    modality = bundle.manifest.provenance.modality
    assert f"a {modality} classifier takes 16 px inputs" in reasons["tiny.png"]
    assert "another modality or magnification" in reasons["tiny.png"]
    expected = reference_probabilities(bundle.model, files)
    np.testing.assert_allclose(result.probabilities.numpy(), expected, rtol=0, atol=1e-9)
    assert result.predicted() == [CLASS_NAMES[i] for i in expected.argmax(axis=1)]


def test_bundles_predict_and_runs_need_no_sql_scipy_or_torchvision() -> None:
    # The GPU machine has torch, numpy, pillow, typer and rich only.
    code = (
        "import sys\n"
        "import pathsynth.classify.bundle, pathsynth.classify.predict, pathsynth.inventory\n"
        "import pathsynth.cli.predict\n"
        "heavy = ('sqlalchemy', 'alembic', 'scipy', 'sklearn', 'torchvision', 'pathsynth.catalog')\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith(heavy))))\n"
    )

    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()

    assert loaded == ""


def test_a_bundle_with_a_stain_reference_normalises_what_it_predicts(tmp_path) -> None:
    from bundles import CLASS_NAMES, CONFIG, PREPROCESS, PROVENANCE, image_folder, trained_model

    from pathsynth.classify.bundle import load_bundle, save_bundle
    from pathsynth.classify.evaluate import predict_probabilities
    from pathsynth.classify.predict import predict_files, prepare_file
    from pathsynth.imaging.stain import fit_stain_reference, normalise_stain

    files = image_folder(tmp_path / "images", count=3)
    raw = [prepare_file(path, PREPROCESS) for path in files]
    reference = fit_stain_reference(torch.cat(raw), "reinhard")
    path = save_bundle(
        tmp_path / "stain.bundle", trained_model(), CONFIG, PREPROCESS, CLASS_NAMES, PROVENANCE,
        stain=reference,
    )  # fmt: skip
    bundle = load_bundle(path)
    assert bundle.manifest.stain == reference
    predicted = predict_files(bundle, files).probabilities
    expected = torch.stack(
        [
            predict_probabilities(bundle.model, normalise_stain(inputs, reference), 64).mean(0)
            for inputs in raw
        ]
    )
    assert torch.allclose(predicted, expected.double(), atol=1e-6)
    plain = torch.stack([predict_probabilities(bundle.model, x, 64).mean(0) for x in raw])
    assert not torch.allclose(predicted, plain.double(), atol=1e-6)  # normalisation mattered


def test_a_bundle_at_a_magnification_with_crops_predicts_as_it_was_tested(tmp_path) -> None:
    import dataclasses

    from pathsynth.classify.evaluate import evaluate_images
    from pathsynth.errors import DataError
    from pathsynth.imaging.patches import PreprocessConfig
    from pathsynth.imaging.tensorset import TensorImageSet

    # 40x32 images at 0.5 um/px brought to 1 um/px: 20x16, on a 24 px canvas; 16 px grid crops
    preprocess = PreprocessConfig(mode="pad", size=24, pixel_size_um=1.0)
    config = dataclasses.replace(CONFIG, crop_size=16, crop_stride=4, tta=True)
    files = image_folder(tmp_path / "images", count=3)
    path = save_bundle(
        tmp_path / "crops.bundle", trained_model(), config, preprocess, CLASS_NAMES, PROVENANCE
    )
    bundle = load_bundle(path)
    with pytest.raises(DataError, match=r"inputs are at 1\.0 um/px: pass .*--pixel-size"):
        predict_files(bundle, files)

    predicted = predict_files(bundle, files, pixel_size_um=0.5).probabilities

    inputs = torch.cat(
        [preprocess_image(load_rgb(p), preprocess, pixel_size_um=0.5) for p in files]
    )
    assert inputs.shape == (3, 3, 24, 24)
    expected = evaluate_images(
        bundle.model,
        TensorImageSet(inputs, torch.zeros(3, dtype=torch.long), CLASS_NAMES),
        tta=True,
        crop_size=16,
        crop_stride=4,
    ).probabilities
    assert torch.allclose(predicted, expected, atol=1e-9)
    whole = predict_probabilities(bundle.model, inputs, tta=True)  # the network takes any size
    assert not torch.allclose(predicted, whole, atol=1e-6)  # the crops were used


def test_a_folder_of_one_condition_s_bundles_predicts_their_mean(tmp_path) -> None:
    import dataclasses

    files = image_folder(tmp_path, count=3)
    folder = tmp_path / "classify" / "honest" / "affine"
    make_bundle(folder / "seed0.bundle")
    other = trained_model()
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.mul_(-1.0)  # a second seed that disagrees
    save_bundle(folder / "seed1.bundle", other, CONFIG, PREPROCESS, CLASS_NAMES, PROVENANCE)

    bundles = load_bundles(folder)
    assert [b.path.name for b in bundles] == ["seed0.bundle", "seed1.bundle"]
    result = predict_files(bundles, files, batch_size=2)
    expected = (
        reference_probabilities(bundles[0].model, files)
        + reference_probabilities(bundles[1].model, files)
    ) / 2
    np.testing.assert_allclose(result.probabilities.numpy(), expected, rtol=0, atol=1e-9)

    original = dataclasses.replace(PROVENANCE, condition="original")
    save_bundle(
        tmp_path / "classify" / "honest" / "original" / "seed0.bundle",
        trained_model(), CONFIG, PREPROCESS, CLASS_NAMES, original,
    )  # fmt: skip
    with pytest.raises(CheckpointError, match=r"differ in condition .*name one condition's folder"):
        load_bundles(tmp_path / "classify")
    with pytest.raises(CheckpointError, match=r"no \*\.bundle file under"):
        load_bundles(tmp_path / "sub")


def test_a_workspace_lists_its_bundles_without_importing_torch(tmp_path) -> None:
    """The listing beside each bundle lets ``runs`` and the web app's experiments page list
    bundles without torch (``serve`` held 700 MB for it); a listing that describes another file
    (the bundle replaced by hand) is not used, the bundle itself is read."""
    import json
    import subprocess
    import sys

    from bundles import CLASS_NAMES, CONFIG, METRICS, PREPROCESS, PROVENANCE, trained_model

    from pathsynth.classify.bundle import save_bundle
    from pathsynth.classify.listing import listing_path, read_listing
    from pathsynth.inventory import read_bundle_entry

    folder = tmp_path / "ws" / "experiments" / "bach-smoke" / "classify" / "honest" / "affine"
    bundle = save_bundle(folder / "seed3.bundle", trained_model(), CONFIG, PREPROCESS,
                         CLASS_NAMES, PROVENANCE, METRICS)  # fmt: skip
    listed = read_listing(bundle)
    assert listed is not None and listed.classes == CLASS_NAMES and listed.seed == 3
    assert listed.metrics == METRICS and listed.bundle_bytes == bundle.stat().st_size
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from pathsynth.inventory import workspace_inventory\n"
        "found = workspace_inventory(Path(sys.argv[1]))\n"
        "print(json.dumps([[b.experiment, b.condition, b.seed, b.metrics] for b in found.bundles]))\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ws")],
                          capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    rows, torch_loaded = done.stdout.strip().splitlines()
    assert json.loads(rows) == [["bach-smoke", "affine", 3, METRICS]]
    assert torch_loaded == "False"
    stale = json.loads(listing_path(bundle).read_text())
    listing_path(bundle).write_text(json.dumps({**stale, "condition": "lie", "bundle_bytes": 1}))
    assert read_listing(bundle) is None
    assert read_bundle_entry(bundle).condition == "affine"  # from the bundle itself
    # which then writes its listing again (a bundle made before listings existed gets one)
    again = read_listing(bundle)
    assert again is not None and again.condition == "affine" and again.seed == 3
    listing_path(bundle).unlink()
    assert read_bundle_entry(bundle).metrics == METRICS and read_listing(bundle) == again
