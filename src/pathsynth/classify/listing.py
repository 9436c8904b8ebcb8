"""What a listing of classifier bundles shows, kept beside each bundle as JSON: the web app and
``pathsynth runs`` list a workspace's bundles without importing torch to open them.

``<bundle>.listing.json`` is written right after its bundle, with the bundle's size; a listing
whose size no longer matches (the bundle was replaced by hand) is not used, nor is a missing or
damaged one: the reader then opens the bundle itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pathsynth.config import from_plain, sanitise
from pathsynth.errors import ConfigError
from pathsynth.files import write_text_atomic

LISTING_SUFFIX = ".listing.json"


@dataclass(frozen=True)
class BundleListing:
    """A bundle's provenance, classes and test metrics, and the size of the bundle it describes."""

    experiment: str | None
    protocol: str | None
    condition: str | None
    seed: int | None
    classes: list[str]
    metrics: dict[str, float | None] = field(default_factory=dict)
    bundle_bytes: int = 0


def listing_path(bundle: Path) -> Path:
    """Where a bundle's listing lives."""
    return bundle.with_name(bundle.name + LISTING_SUFFIX)


def write_listing(bundle: Path, listing: BundleListing) -> None:
    """Write ``listing`` beside ``bundle`` (atomically), recording the bundle's size."""
    record = sanitise({**asdict(listing), "bundle_bytes": bundle.stat().st_size})  # NaN: null
    write_text_atomic(listing_path(bundle), json.dumps(record, allow_nan=False) + "\n")


def read_listing(bundle: Path) -> BundleListing | None:
    """The listing beside ``bundle``, or None when it is missing, damaged or describes another
    file (another size)."""
    try:
        plain = json.loads(listing_path(bundle).read_text(encoding="utf-8"))
        listing = from_plain(BundleListing, plain, "bundle listing")
        size = bundle.stat().st_size
    except (OSError, ValueError, ConfigError):
        return None
    return listing if listing.bundle_bytes == size else None
