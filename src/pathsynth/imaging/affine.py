"""Affine expansion on the device: random shift, zoom, rotation and reflection per sample.

The reference work grew 78-91 originals to 1000 images per modality with affine transforms before
training. Here a batch of ``uint8`` NCHW images is transformed in one ``affine_grid`` /
``grid_sample`` call (bilinear, reflect padding, so no empty corners appear after a rotation or a
shift), on whatever device the images are. Every sample's parameters come back as a JSON-able dict,
so a catalog row can store them and :func:`apply_affine` reproduces the child image from its parent.

Parameters (one dict per sample, see :data:`PARAM_KEYS`):

- ``dx``, ``dy``: shift as a fraction of the width / height; positive moves the content right / down;
- ``zoom``: scale factor, above 1 magnifies the content;
- ``angle``: rotation in degrees, positive turns the content counter-clockwise as seen on screen;
- ``hflip``, ``vflip``: mirror left-right / top-bottom, applied first.

Pure tensors in and out: nothing here knows about the catalog.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from pathsynth.errors import ConfigError, DataError
from pathsynth.imaging.config import AffineConfig

PARAM_KEYS = ("dx", "dy", "zoom", "angle", "hflip", "vflip")

# {"dx": float, "dy": float, "zoom": float, "angle": float, "hflip": bool, "vflip": bool}
AffineParams = dict[str, Any]


def identity_params() -> AffineParams:
    """Parameters that leave an image unchanged."""
    return {"dx": 0.0, "dy": 0.0, "zoom": 1.0, "angle": 0.0, "hflip": False, "vflip": False}


def sample_params(
    count: int, config: AffineConfig, generator: torch.Generator
) -> list[AffineParams]:
    """Draw ``count`` parameter dicts from ``config``'s ranges.

    Args:
        count: number of samples.
        config: the ranges.
        generator: a CPU ``torch.Generator``; the same seed gives the same parameters on any device.

    Returns:
        One dict per sample with the keys in :data:`PARAM_KEYS` (plain floats and bools).

    Raises:
        ConfigError: a negative count.
    """
    if count < 0:
        raise ConfigError(f"cannot draw {count} affine samples")
    uniform = torch.rand((count, 6), generator=generator, dtype=torch.float64)
    params = []
    for u in uniform.tolist():
        params.append(
            {
                "dx": (2.0 * u[0] - 1.0) * config.max_shift,
                "dy": (2.0 * u[1] - 1.0) * config.max_shift,
                "zoom": config.min_zoom + u[2] * (config.max_zoom - config.min_zoom),
                "angle": (2.0 * u[3] - 1.0) * config.max_rotation,
                "hflip": bool(u[4] < config.hflip_probability),
                "vflip": bool(u[5] < config.vflip_probability),
            }
        )
    return params


def random_affine(
    images: torch.Tensor, config: AffineConfig, generator: torch.Generator
) -> tuple[torch.Tensor, list[AffineParams]]:
    """Transform each image with its own random shift, zoom, rotation and reflection.

    Args:
        images: ``uint8`` tensor (N, C, H, W) on any device.
        config: the parameter ranges.
        generator: a seeded CPU ``torch.Generator``.

    Returns:
        The transformed ``uint8`` images (same shape and device) and the parameters of each.

    Raises:
        DataError: ``images`` is not a uint8 NCHW tensor.
    """
    params = sample_params(_check_images(images), config, generator)
    return apply_affine(images, params), params


@dataclass(frozen=True)
class AffineChild:
    """One image made from an original by :func:`expand`.

    Attributes:
        parent: index of the original in the sequence given to :func:`expand`.
        image: ``uint8`` (C, H, W), the size of its parent.
        params: the transform's parameters (store them to reproduce the child).
    """

    parent: int
    image: torch.Tensor
    params: AffineParams


def expand(
    originals: Sequence[torch.Tensor],
    children_per_original: Sequence[int],
    config: AffineConfig,
    generator: torch.Generator,
    batch_size: int = 16,
) -> list[AffineChild]:
    """Make the planned number of children of each original (sizes may differ between originals).

    Each original's children are transformed in one batch; parameters are drawn original by
    original in the order given, so a seed fixes every child. Use with :func:`class_balanced_plan`.

    Args:
        originals: ``uint8`` (C, H, W) images, on any device.
        children_per_original: how many children each original gets.
        config: the parameter ranges.
        generator: a seeded CPU ``torch.Generator``.
        batch_size: most children transformed at once (a 2048x1536 field costs about 90 MB of
            float working memory per child); does not change the result.

    Returns:
        The children, grouped by parent in the order of ``originals``.

    Raises:
        DataError: the two sequences differ in length, a count is negative, or an image is not
            uint8 (C, H, W).
    """
    if len(originals) != len(children_per_original):
        raise DataError(f"{len(children_per_original)} child counts for {len(originals)} originals")
    children: list[AffineChild] = []
    for parent, (image, count) in enumerate(zip(originals, children_per_original, strict=True)):
        if count < 0:
            raise DataError(f"original {parent}: cannot make {count} children")
        if count == 0:
            continue
        if image.dtype != torch.uint8 or image.ndim != 3:
            raise DataError(
                f"original {parent} must be uint8 CHW, got {image.dtype} {tuple(image.shape)}"
            )
        batch = image.unsqueeze(0).expand(count, -1, -1, -1)
        images, params = random_affine(batch, config, generator)
        children.extend(
            AffineChild(parent, child, p) for child, p in zip(images, params, strict=True)
        )
    return children


def apply_affine(images: torch.Tensor, params: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """Apply given parameters, one dict per image (e.g. read back from a catalog row).

    Args:
        images: ``uint8`` tensor (N, C, H, W) on any device.
        params: N dicts with the keys in :data:`PARAM_KEYS`.

    Returns:
        The transformed ``uint8`` images, same shape and device. Identity parameters return the
        input exactly; a pure flip equals ``torch.flip``.

    Raises:
        DataError: ``images`` is not uint8 NCHW, or the number of dicts differs from N.
        ConfigError: a dict lacks a key or has a zoom that is not positive.
    """
    count = _check_images(images)
    if len(params) != count:
        raise DataError(f"{len(params)} affine parameter sets for {count} images")
    if count == 0:
        return images.clone()
    height, width = images.shape[-2:]
    theta = torch.stack([_theta(p, width, height) for p in params]).to(torch.float32)
    theta = theta.to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    pixels = images.to(torch.float32)
    out = F.grid_sample(
        pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _check_images(images: torch.Tensor) -> int:
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError(f"images must be uint8 NCHW, got {images.dtype} {tuple(images.shape)}")
    return int(images.shape[0])


def _theta(params: Mapping[str, Any], width: int, height: int) -> torch.Tensor:
    """The 2x3 matrix ``affine_grid`` wants: output normalised coordinates -> input ones.

    The forward map in pixel units (origin at the centre, y down) is
    ``p_out = zoom * R(angle) @ Flip @ p_in + shift``; the grid needs its inverse, conjugated by
    the pixel half-sizes so that rotations of non-square images do not shear.
    """
    missing = [key for key in PARAM_KEYS if key not in params]
    if missing:
        raise ConfigError(f"affine parameters lack {', '.join(missing)}")
    zoom = float(params["zoom"])
    if not zoom > 0.0:
        raise ConfigError(f"zoom must be positive, got {zoom}")
    radians = math.radians(float(params["angle"]))
    cos, sin = math.cos(radians), math.sin(radians)
    # Counter-clockwise on screen with y pointing down.
    rotation = torch.tensor([[cos, sin], [-sin, cos]], dtype=torch.float64)
    flip = torch.diag(
        torch.tensor(
            [-1.0 if params["hflip"] else 1.0, -1.0 if params["vflip"] else 1.0],
            dtype=torch.float64,
        )
    )
    forward = zoom * rotation @ flip
    inverse = torch.linalg.inv(forward)
    half = torch.diag(torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64))
    shift = torch.tensor(
        [float(params["dx"]) * width, float(params["dy"]) * height], dtype=torch.float64
    )
    linear = torch.linalg.inv(half) @ inverse @ half
    offset = -(torch.linalg.inv(half) @ inverse @ shift)
    return torch.cat([linear, offset[:, None]], dim=1)


def _class_targets(names: list[str], per_class: int | None, total: int | None) -> dict[str, int]:
    """Images each class must reach: ``per_class``, or ``total`` shared out as evenly as possible
    (the first ``total % classes`` classes one more)."""
    if (per_class is None) == (total is None):
        raise ConfigError("give exactly one of per_class and total")
    if not names:
        raise DataError("no classes to expand")
    if per_class is not None:
        return dict.fromkeys(names, per_class)
    assert total is not None
    base, extra = divmod(total, len(names))
    return {name: base + (1 if i < extra else 0) for i, name in enumerate(names)}


def class_balanced_plan(
    counts_per_class: Mapping[str, int],
    per_class: int | None = None,
    total: int | None = None,
    seed: int = 0,
    include_originals: bool = True,
) -> dict[str, list[int]]:
    """How many affine children each original gets so every class reaches the same target.

    Within a class the children are spread as evenly as possible over its originals; which
    originals get the one extra child is drawn with ``seed``. With ``total``, each class targets
    ``total // classes`` and the first ``total % classes`` classes (in the order given) one more,
    so the class targets sum to ``total`` exactly.

    Args:
        counts_per_class: number of original images per class name, in a fixed order.
        per_class: target images per class.
        total: target images over all classes (exactly one of ``per_class`` and ``total``).
        seed: seeds which originals get the remainder.
        include_originals: the target counts the originals too (the paper's 1000 images held
            them); ``False`` counts children only.

    Returns:
        Per class, a list with the number of children of each of its originals, in order; the
        list sums to the class target (less the originals when they are included).

    Raises:
        ConfigError: neither or both of ``per_class``/``total``, a negative target, or a target
            below a class's originals when they count.
        DataError: a class with no originals that must still reach a positive target.
    """
    names = list(counts_per_class)
    targets = _class_targets(names, per_class, total)
    generator = torch.Generator().manual_seed(seed)
    plan: dict[str, list[int]] = {}
    for name in names:
        originals, target = int(counts_per_class[name]), targets[name]
        if target < 0 or originals < 0:
            raise ConfigError(f"class {name}: negative count or target")
        children = target - originals if include_originals else target
        if children < 0:
            raise ConfigError(
                f"class {name} already has {originals} originals, more than the target {target}"
            )
        if originals == 0:
            if children > 0:
                raise DataError(f"class {name} has no originals to expand to {target}")
            plan[name] = []
            continue
        base, extra = divmod(children, originals)
        share = [base] * originals
        for index in torch.randperm(originals, generator=generator)[:extra].tolist():
            share[index] += 1
        plan[name] = share
    return plan
