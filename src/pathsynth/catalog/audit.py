"""How much a split's test images resemble its training images: a leakage audit.

A held-out figure is honest when its test images come from patients the classifier never saw.
When a split is by image, or the patient key is too fine or wrong, images of one patient sit on
both sides and the figure reads high (BACH split by image: about 25 points above new patients).
The audit reads the split and the features the catalog computed at ingest (colour moments in RGB
and H&E optical density, texture, nuclei), never a classifier, and reports per feature block:

- ``shared_units``: patients/groups with images on both sides (0 for a patient-level split);
- ``near_duplicates``: test images with a training image of the same bytes or features;
- ``close_share``: the share of test images whose nearest training image is as close as images of
  one patient are to each other (the median nearest-neighbour distance within a training patient),
  against ``new_patient_share``, the same share among training images measured against other
  patients only (what images of a new patient look like): an excess means the test images look
  like the training patients' own images;
- ``probe_split`` against ``probe_leak_free``: a 1-nearest-neighbour classifier's balanced
  accuracy on the test fold, and the same with each test image's own patient left out of the
  training fold; the difference is how much the patients on both sides lift a figure on this
  split (0 for a patient-level split). The test fold's labels are read for this figure only.
- ``look_alike``: test/training pairs of patients (groups) whose feature centroids lie nearer
  than half the smaller spread of the two: pairs to look at.

Without any patient key (every image its own unit) the within-patient distances, and so the
comparison with new patients, cannot be measured: the audit says so instead of guessing. Nor can
it see a key that cuts one patient into several groups: the training fold's "other patients" are
then partly the same patient, and the comparison is blind (BACH in blocks of 10 numbers, which
leaks by about 26 points, audits as clean: excess -6%).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.metrics import balanced_accuracy_score
from sqlalchemy import select

from pathsynth.catalog.db import Catalog
from pathsynth.catalog.models import Image, Patient, Split, SplitMember, Study, image_features
from pathsynth.errors import SplitError
from pathsynth.imaging.features import COLOUR_FEATURES, FEATURE_NAMES

# the feature blocks compared: stain/colour statistics alone, and every ingest feature
FEATURE_BLOCKS: dict[str, tuple[str, ...]] = {"colour": COLOUR_FEATURES, "all": FEATURE_NAMES}
# a test image this close to a training image (in units of the median within-patient
# nearest-neighbour distance) is reported as a near-duplicate
NEAR_DUPLICATE_RATIO = 0.05
# the audit calls a figure likely optimistic past these: probe gap (balanced accuracy) and excess
# share of test images as close to training as a patient's own images are (BACH split by group:
# +0.02 and -0.03; by image: +0.07 and +0.12 on the colour and all-feature blocks)
OPTIMISTIC_PROBE_GAP = 0.03
OPTIMISTIC_CLOSE_EXCESS = 0.05
# a test/training pair of patients "looks alike" when their centroids lie nearer than this share
# of the smaller of their spreads; the five closest pairs are listed (to look at, not a verdict:
# on these features the patients of one class overlap widely)
LOOK_ALIKE_RATIO = 0.5
LOOK_ALIKE_SHOWN = 5


@dataclass(frozen=True)
class BlockAudit:
    """The audit of one feature block (see the module docstring for each figure)."""

    block: str
    features: int
    close_share: float
    new_patient_share: float | None
    close_noise: float | None  # the excess that chance gives with this few test patients
    probe_split: float
    probe_leak_free: float | None
    near_duplicates: int
    look_alike: list[dict[str, Any]] = field(default_factory=list)

    @property
    def probe_gap(self) -> float | None:
        """How much higher the 1-NN probe reads with the test images' own patients in training
        than without them (0 for a patient-level split; None without patient keys)."""
        if self.probe_leak_free is None:
            return None
        return self.probe_split - self.probe_leak_free

    @property
    def close_excess(self) -> float | None:
        """How many more test images than new patients' images lie as close to a training image
        as one patient's own images do (a share; None without patient keys)."""
        if self.new_patient_share is None:
            return None
        return self.close_share - self.new_patient_share

    @property
    def too_close(self) -> bool:
        """True when the excess is larger than :data:`OPTIMISTIC_CLOSE_EXCESS` and than chance
        gives with this few test patients."""
        excess = self.close_excess
        return excess is not None and excess > max(OPTIMISTIC_CLOSE_EXCESS, self.close_noise or 0.0)


@dataclass(frozen=True)
class SplitAudit:
    """A split's leakage audit: what it keeps whole, what crosses it, and the verdict."""

    split: str
    unit: str
    image_level: bool
    train_images: int
    test_images: int
    train_units: int
    test_units: int
    shared_units: int
    identical_files: int
    blocks: list[BlockAudit]
    likely_optimistic: bool
    optimism: float | None  # the audit's estimate in balanced-accuracy points, where measurable
    verdict: str


@dataclass(frozen=True)
class _Rows:
    """The real images of two folds: features, labels, patient units and hashes."""

    features: dict[str, np.ndarray]
    labels: np.ndarray
    units: np.ndarray
    sha256: list[str]
    keyed: bool  # some image has a patient/group key (not only its own pseudo-patient)


def audit_split(catalog: Catalog, split: str, fold: str = "test") -> SplitAudit:
    """Audit how much ``fold`` of ``split`` resembles its ``train`` fold.

    Raises:
        SplitError: no such split, a fold with no images, or images without ingest features.
    """
    with catalog.session() as session:
        found = session.execute(
            select(Split.id, Split.unit, Split.params).where(Split.name == split)
        ).first()
        if found is None:
            raise SplitError(f"no split named {split!r}")
        columns = [image_features.c[name] for name in FEATURE_NAMES]
        rows = session.execute(
            select(
                SplitMember.fold,
                Image.label,
                Study.patient_id,
                Patient.key_kind,
                Image.sha256,
                *columns,
            )
            .join(Image, Image.id == SplitMember.image_id)
            .join(Study, Study.id == Image.study_id)
            .join(Patient, Patient.id == Study.patient_id)
            .outerjoin(image_features, image_features.c.image_id == Image.id)
            .where(SplitMember.split_id == found.id, Image.origin == "real")
            .order_by(Image.id)
        ).all()
    train = _rows([r for r in rows if r[0] == "train"], split, "train")
    test = _rows([r for r in rows if r[0] == fold], split, fold)
    image_level = bool((found.params or {}).get("image_level")) or found.unit == "image"
    return audit_rows(split, found.unit, image_level, train, test)


def _rows(rows: list[Any], split: str, fold: str) -> _Rows:
    if not rows:
        raise SplitError(f"split {split!r} has no real images in its {fold} fold")
    values = np.array([row[5:] for row in rows], dtype=object)
    if any(value is None for value in values.ravel()):
        raise SplitError(
            f"split {split!r} has {fold} images without ingest features; "
            "run `pathsynth check --repair` or ingest them again"
        )
    matrix = values.astype(np.float64)
    index = {name: i for i, name in enumerate(FEATURE_NAMES)}
    return _Rows(
        features={
            block: matrix[:, [index[name] for name in names]]
            for block, names in FEATURE_BLOCKS.items()
        },
        labels=np.array([row[1] for row in rows]),
        units=np.array([row[2] for row in rows]),
        sha256=[row[4] for row in rows],
        keyed=any(row[3] != "image" for row in rows),
    )


def audit_rows(split: str, unit: str, image_level: bool, train: _Rows, test: _Rows) -> SplitAudit:
    """The audit of a test part against a training part (see the module docstring)."""
    shared = set(train.units.tolist()) & set(test.units.tolist())
    identical = len(set(train.sha256) & set(test.sha256))
    keyed = train.keyed or test.keyed
    blocks = [_block(name, train, test, keyed) for name in FEATURE_BLOCKS]
    gaps = [b.probe_gap for b in blocks if b.probe_gap is not None]
    optimism = max(gaps) if gaps else None
    likely = bool(
        image_level
        or shared
        or identical
        or (optimism is not None and optimism > OPTIMISTIC_PROBE_GAP)
        or any(b.too_close for b in blocks)
    )
    audit = SplitAudit(
        split=split,
        unit=unit,
        image_level=image_level,
        train_images=len(train.labels),
        test_images=len(test.labels),
        train_units=len(set(train.units.tolist())),
        test_units=len(set(test.units.tolist())),
        shared_units=len(shared),
        identical_files=identical,
        blocks=blocks,
        likely_optimistic=likely,
        optimism=optimism,
        verdict="",
    )
    return dataclasses.replace(audit, verdict=verdict(audit, keyed))


def _block(name: str, train_rows: _Rows, test_rows: _Rows, keyed: bool) -> BlockAudit:
    train, test = train_rows.features[name], test_rows.features[name]
    centre = train.mean(axis=0)
    scale = train.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    a, b = (train - centre) / scale, (test - centre) / scale
    to_train = cdist(b, a)  # (test, train)
    nearest_distance = to_train.min(axis=1)
    probe_split = _probe(test_rows.labels, train_rows.labels[to_train.argmin(axis=1)])
    # the same probe with each test image's own patient left out of the training fold
    own = test_rows.units[:, None] == train_rows.units[None, :]
    leak_free = np.where(own, np.inf, to_train)
    probe_leak_free = _probe(test_rows.labels, train_rows.labels[leak_free.argmin(axis=1)])
    within = cdist(a, a)
    np.fill_diagonal(within, np.inf)
    same_unit = train_rows.units[:, None] == train_rows.units[None, :]
    within_patient = np.where(same_unit, within, np.inf).min(axis=1)
    noise: float | None = None
    if keyed and np.isfinite(within_patient).any():
        threshold = float(np.median(within_patient[np.isfinite(within_patient)]))
        new_patient = np.where(same_unit, np.inf, within).min(axis=1) <= threshold
        new_patient_share: float | None = float(np.mean(new_patient))
        # how far the share moves by chance with this few test patients: twice the spread of
        # the training patients' own shares over the square root of the test patients' number
        per_patient = [new_patient[train_rows.units == u].mean() for u in set(train_rows.units)]
        test_units = len(set(test_rows.units.tolist()))
        if len(per_patient) > 1:
            noise = float(2.0 * np.std(per_patient, ddof=1) / np.sqrt(test_units))
        look_alike = _look_alike(a, b, train_rows.units, test_rows.units)
    else:  # no patient known: the image-level reference is the nearest other training image
        threshold = float(np.median(within.min(axis=1)))
        new_patient_share, look_alike = None, []
    return BlockAudit(
        block=name,
        features=train.shape[1],
        close_share=float(np.mean(nearest_distance <= threshold)),
        new_patient_share=new_patient_share,
        close_noise=noise,
        probe_split=probe_split,
        probe_leak_free=probe_leak_free if keyed else None,
        near_duplicates=int(np.sum(nearest_distance <= NEAR_DUPLICATE_RATIO * threshold)),
        look_alike=look_alike,
    )


def _probe(truth: np.ndarray, guesses: np.ndarray) -> float:
    """Balanced accuracy of nearest-neighbour guesses (NaN for no images)."""
    if not len(truth):
        return float("nan")
    with warnings.catch_warnings():  # a guess of a class the test part lacks is just wrong
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(truth, guesses))


def _look_alike(
    train: np.ndarray, test: np.ndarray, train_units: np.ndarray, test_units: np.ndarray
) -> list[dict[str, Any]]:
    """Test/training unit pairs whose centroids lie nearer than either unit's own spread."""

    def centroids(x: np.ndarray, units: np.ndarray) -> dict[Any, tuple[np.ndarray, float]]:
        out = {}
        for unit in np.unique(units):
            members = x[units == unit]
            if len(members) < 2:
                continue
            centre = members.mean(axis=0)
            out[unit] = (centre, float(np.linalg.norm(members - centre, axis=1).mean()))
        return out

    pairs = []
    test_groups, train_groups = centroids(test, test_units), centroids(train, train_units)
    for t, (t_centre, t_spread) in test_groups.items():
        for r, (r_centre, r_spread) in train_groups.items():
            distance = float(np.linalg.norm(t_centre - r_centre))
            ratio = distance / max(min(t_spread, r_spread), 1e-12)
            if ratio < LOOK_ALIKE_RATIO:
                pairs.append({"test_unit": int(t), "train_unit": int(r), "ratio": round(ratio, 3)})
    pairs.sort(key=lambda pair: pair["ratio"])
    return pairs[:LOOK_ALIKE_SHOWN]


def verdict(audit: SplitAudit, keyed: bool) -> str:
    """The audit in plain words, ending with what it means for a figure on this split."""
    parts = []
    if audit.image_level and not keyed:
        parts.append(
            "the split is by image and no patient is known: images of one patient are probably "
            "on both sides, so a figure on it is likely optimistic, by an amount this audit "
            "cannot measure without patient keys"
        )
    elif audit.image_level:
        parts.append("the split is by image although patients are known")
    if audit.shared_units:
        parts.append(
            f"{audit.shared_units} of {audit.test_units} test patient(s)/group(s) also have "
            f"training images; a nearest-neighbour probe reads {audit.optimism or 0.0:+.2f} "
            "balanced accuracy higher with them than without: a figure on this split is likely "
            f"optimistic by about that much or more"
        )
    if audit.identical_files:
        parts.append(f"{audit.identical_files} test image(s) are byte-identical to training ones")
    measured = [b for b in audit.blocks if b.close_excess is not None]
    if measured and not audit.shared_units:
        flagged = [b for b in measured if b.too_close]
        worst = max(flagged or measured, key=lambda b: b.close_excess or 0.0)
        excess, noise = worst.close_excess or 0.0, worst.close_noise or 0.0
        if flagged:
            parts.append(
                f"{excess:.0%} more test images than images of new patients lie as close to a "
                "training image as one patient's own images do, more than chance gives with "
                f"{audit.test_units} test patient(s)/group(s) (up to {noise:.0%}): the patient "
                "key may be too fine (one patient in several groups), so a figure on this split "
                "may be optimistic"
            )
        else:
            parts.append(
                "no sign of leakage: test images lie about as far from the training images as "
                f"images of new patients do (excess {excess:+.0%}; chance gives up to "
                f"{noise:.0%} with {audit.test_units} test patient(s)/group(s))"
            )
    sentence = "; ".join(parts)
    return sentence[:1].upper() + sentence[1:] + "."


def audit_to_plain(audit: SplitAudit) -> dict[str, Any]:
    """JSON-able form (stored with the experiment's results)."""
    plain = dataclasses.asdict(audit)
    for block, audited in zip(plain["blocks"], audit.blocks, strict=True):
        block.update(probe_gap=audited.probe_gap, close_excess=audited.close_excess)
    return plain
