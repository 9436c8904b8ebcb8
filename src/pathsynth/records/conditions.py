"""The conditions an experiment compares, by name, and what a name means.

Conditions say what a classifier trains on:

- ``original``: the real images of the training side;
- ``affine``: those plus their affine children;
- ``synthetic``: the real images plus the experiment's generated images (GAN by default);
- ``affine+synthetic``: all three;
- ``original+gan``, ``affine+gan``, ``original+diffusion``, ``affine+diffusion``: the same with
  the named generator's images, for experiments that train both (``--generator both``);
- ``synthetic:selected``, ``affine+synthetic:selected``, ``affine+gan:selected``, ...: the same
  with only the generated images that selective synthesis kept of that generator (criteria from
  the real training fold; see :mod:`pathsynth.experiment.selection`).

A name is parsed once, by :meth:`Condition.of`; nothing else splits condition names.
"""

from __future__ import annotations

from dataclasses import dataclass

from pathsynth.errors import DataError

PROTOCOLS = ("honest", "paper")  # the split the classifiers are tested on: by patient, or the
#   reference study's own (by image after expansion)

CONDITIONS = ("original", "affine", "synthetic", "affine+synthetic")
GENERATOR_KINDS = ("gan", "diffusion")
# conditions that name the generator whose images they add
NAMED_CONDITIONS = tuple(
    f"{base}+{kind}" for kind in GENERATOR_KINDS for base in ("original", "affine")
)
ALL_CONDITIONS = CONDITIONS + NAMED_CONDITIONS
SELECTED = ":selected"  # suffix of a condition that trains on the selected generated images only


@dataclass(frozen=True)
class Condition:
    """What a condition name says.

    Args:
        name: the name (``affine+gan:selected``).
        base: the name without the ``:selected`` suffix (``affine+gan``).
        origins: the image origins it trains on (``("affine", "gan")``; ``original`` is always
            there, named or not).
        generator: the generator whose images it adds: a kind it names, ``"synthetic"`` for the
            experiment's one generator, or ``None``.
        selected: only the generated images that selective synthesis kept.
    """

    name: str
    base: str
    origins: tuple[str, ...]
    generator: str | None
    selected: bool

    @classmethod
    def of(cls, name: str) -> Condition:
        """Parse a condition name (known or not: :func:`check_condition` refuses unknown ones)."""
        selected = name.endswith(SELECTED)
        base = name[: -len(SELECTED)] if selected else name
        origins = tuple(base.split("+"))
        generator = next(
            (part for part in origins if part in GENERATOR_KINDS or part == "synthetic"), None
        )
        return cls(name, base, origins, generator, selected)

    @property
    def adds_every_generated_image(self) -> bool:
        """True for a condition that adds a generator's images without selection."""
        return self.generator is not None and not self.selected


def run_label(condition: str, kind: str, primary: str) -> str:
    """How a run of ``condition`` by a classifier of ``kind`` is named in paths and results:
    the bare condition for the experiment's own kind ``primary``, else ``<condition>@<kind>``."""
    return condition if kind == primary else f"{condition}@{kind}"


def labelled_condition(label: str) -> Condition:
    """The condition of a run label (:func:`run_label`)."""
    return Condition.of(label.partition("@")[0])


def check_condition(condition: str) -> str:
    """``condition`` when it is one of :data:`ALL_CONDITIONS`, or one of those that adds a
    generator's images with the ``:selected`` suffix (whether the experiment trains that
    generator is the experiment config's check).

    Raises:
        DataError: any other name (the message lists the known ones).
    """
    parsed = Condition.of(condition)
    if parsed.base not in ALL_CONDITIONS or (parsed.selected and parsed.generator is None):
        adding = [c for c in ALL_CONDITIONS if Condition.of(c).generator is not None]
        known = [*ALL_CONDITIONS, *(f"{c}{SELECTED}" for c in adding)]
        raise DataError(f"unknown condition {condition!r}; choose from {', '.join(known)}")
    return condition
