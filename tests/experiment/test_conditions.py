"""Condition names are parsed in one place: what each known name says, and unknown ones refused."""

from __future__ import annotations

import pytest

from pathsynth.errors import DataError
from pathsynth.records.conditions import (
    ALL_CONDITIONS,
    Condition,
    check_condition,
    labelled_condition,
    run_label,
)


@pytest.mark.parametrize(
    ("name", "base", "origins", "generator", "selected"),
    [
        ("original", "original", ("original",), None, False),
        ("affine", "affine", ("affine",), None, False),
        ("synthetic", "synthetic", ("synthetic",), "synthetic", False),
        (
            "affine+synthetic:selected",
            "affine+synthetic",
            ("affine", "synthetic"),
            "synthetic",
            True,
        ),
        ("original+diffusion", "original+diffusion", ("original", "diffusion"), "diffusion", False),
        ("affine+gan:selected", "affine+gan", ("affine", "gan"), "gan", True),
    ],
)
def test_a_name_says_its_origins_generator_and_selection(
    name: str, base: str, origins: tuple[str, ...], generator: str | None, selected: bool
) -> None:
    parsed = Condition.of(check_condition(name))
    assert (parsed.name, parsed.base, parsed.origins) == (name, base, origins)
    assert (parsed.generator, parsed.selected) == (generator, selected)
    assert parsed.adds_every_generated_image == (generator is not None and not selected)


@pytest.mark.parametrize("name", ["gan", "affine:selected", "original:selected", "affine+vae", ""])
def test_unknown_names_and_selection_without_generated_images_are_refused(name: str) -> None:
    with pytest.raises(DataError, match="unknown condition"):
        check_condition(name)


def test_run_labels_name_the_classifier_kind_and_parse_back() -> None:
    for condition in ALL_CONDITIONS:
        assert run_label(condition, "fine-tune", "fine-tune") == condition
        label = run_label(condition, "probe", "fine-tune")
        assert label == f"{condition}@probe"
        assert labelled_condition(label) == Condition.of(condition)
