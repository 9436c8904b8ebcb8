"""A workspace: one folder holding a small config file, the image store and (by default) the
embedded SQLite catalog.

``pathsynth init DIR`` creates it; every other command finds it by ``--workspace``. The config
file ``pathsynth.json`` holds the database URL (absent for the embedded default) and the secret
salt that makes patient codes pseudonymous. Keep the salt with the workspace: the same patient
identifier maps to the same code only under the same salt.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path

from pathsynth.catalog.db import Catalog
from pathsynth.errors import WorkspaceError
from pathsynth.files import write_text_atomic
from pathsynth.imaging.decode import DEFAULT_PIXEL_LIMIT

CONFIG_NAME = "pathsynth.json"
SQLITE_NAME = "catalog.sqlite"
STORE_NAME = "store"
CONFIG_VERSION = 1


@dataclass
class WorkspaceConfig:
    """What ``pathsynth.json`` holds.

    Attributes:
        db_url: SQLAlchemy URL of the catalog; None means the embedded SQLite file.
        salt: hex secret mixed into every patient and study code.
        pixel_limit: largest width x height accepted at ingest.
        version: config format version.
    """

    salt: str = field(default_factory=lambda: secrets.token_hex(16))
    db_url: str | None = None
    pixel_limit: int = DEFAULT_PIXEL_LIMIT
    version: int = CONFIG_VERSION


class Workspace:
    """An existing workspace folder.

    Args:
        root: the workspace folder.

    Raises:
        WorkspaceError: the folder or its config file is missing or malformed.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        config_path = self.root / CONFIG_NAME
        if not config_path.is_file():
            raise WorkspaceError(
                f"{root} is not a pathsynth workspace (no {CONFIG_NAME}); "
                f"create one with `pathsynth init {root}`"
            )
        try:
            raw = json.loads(config_path.read_text())
            self.config = WorkspaceConfig(**raw)
        except (json.JSONDecodeError, TypeError) as error:
            raise WorkspaceError(f"{config_path} is malformed: {error}") from None

    @classmethod
    def create(cls, root: Path, db_url: str | None = None) -> Workspace:
        """Create a workspace folder, its store and its catalog schema.

        Args:
            root: a folder that does not exist yet or is empty.
            db_url: catalog database URL; None for the embedded SQLite file.

        Raises:
            WorkspaceError: ``root`` already holds a workspace or other files.
            CatalogUnavailable: the database cannot be reached.
        """
        root = Path(root)
        if (root / CONFIG_NAME).exists():
            raise WorkspaceError(f"{root} is already a pathsynth workspace")
        if root.exists() and any(root.iterdir()):
            raise WorkspaceError(f"{root} exists and is not empty")
        config = WorkspaceConfig(db_url=db_url)
        url = db_url or f"sqlite:///{(root / SQLITE_NAME).resolve()}"
        root.mkdir(parents=True, exist_ok=True)
        try:
            Catalog(url).close()  # refuses an unreachable database before anything is written
        except BaseException:
            if not any(root.iterdir()):
                root.rmdir()
            raise
        (root / STORE_NAME).mkdir(exist_ok=True)
        write_text_atomic(root / CONFIG_NAME, json.dumps(asdict(config), indent=2) + "\n")
        return cls(root)

    @property
    def db_url(self) -> str:
        """The catalog URL (the embedded SQLite file unless the config names another)."""
        return self.config.db_url or f"sqlite:///{self.root / SQLITE_NAME}"

    @property
    def store(self) -> Path:
        """The image store folder."""
        return self.root / STORE_NAME

    @property
    def runs(self) -> Path:
        """The folder holding this workspace's run directories."""
        return self.root / "runs"

    def open_catalog(self) -> Catalog:
        """Connect to the catalog, migrating its schema to the newest version.

        Raises:
            CatalogUnavailable: the database cannot be reached.
        """
        return Catalog(self.db_url)

    def pseudonym(self, kind: str, identifier: str) -> str:
        """A stable pseudonymous code for a source identifier: a salted hash, never the raw value.

        Args:
            kind: what the identifier names (``patient``, ``study``), so equal strings of different
                kinds get different codes.
            identifier: the identifier as found in the source.
        """
        digest = hmac.new(
            bytes.fromhex(self.config.salt), f"{kind}\0{identifier}".encode(), sha256
        ).hexdigest()
        prefix = {"patient": "P", "study": "S"}.get(kind, kind[:1].upper())
        return f"{prefix}{digest[:15]}"
