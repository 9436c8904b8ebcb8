"""A workspace: one folder holding a small config file, the image store and (by default) the
embedded SQLite catalog.

``pathsynth init DIR`` creates it; every other command finds it by ``--workspace``. The config
file ``pathsynth.json`` holds the database URL (absent for the embedded default) and the secret
salt that makes patient codes pseudonymous. Keep the salt with the workspace: the same patient
identifier maps to the same code only under the same salt.

The database password need not be stored there: ``PATHSYNTH_DB_URL`` replaces the configured URL
and ``PATHSYNTH_DB_PASSWORD`` supplies its password (see :func:`~pathsynth.catalog.db.resolve_url`).
A workspace whose folder cannot be written (a read-only mount, another user's files) is opened
read-only: ``stats`` and ``export`` work, writing commands refuse with one line.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path

from pathsynth.catalog.db import (
    DB_PASSWORD_ENV,
    DB_URL_ENV,
    Catalog,
    resolve_url,
    without_password,
)
from pathsynth.catalog.lock import write_lock
from pathsynth.errors import WorkspaceError
from pathsynth.files import write_text_atomic
from pathsynth.imaging.decode import DEFAULT_PIXEL_LIMIT

CONFIG_NAME = "pathsynth.json"
SQLITE_NAME = "catalog.sqlite"
STORE_NAME = "store"
CONFIG_VERSION = 1
# Prefix of each kind of pseudonymous code, so a code says what it names.
_CODE_PREFIX = {"patient": "P", "study": "S", "source": "D", "image": "I"}


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
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"{root} is a file, not a folder for a workspace")
        if (root / CONFIG_NAME).exists():
            raise WorkspaceError(f"{root} is already a pathsynth workspace")
        if root.exists() and any(root.iterdir()):
            raise WorkspaceError(f"{root} exists and is not empty")
        url = resolve_url(db_url or f"sqlite:///{(root / SQLITE_NAME).resolve()}")
        # A password from the environment stays there; one typed into the URL is kept (0600).
        stored = os.environ.get(DB_URL_ENV) or db_url
        if stored is not None and os.environ.get(DB_PASSWORD_ENV):
            stored = without_password(stored)
        config = WorkspaceConfig(db_url=stored)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WorkspaceError(f"cannot create workspace {root}: {error.strerror}") from None
        try:
            Catalog(url).close()  # refuses an unreachable database before anything is written
        except BaseException:
            if not any(root.iterdir()):
                root.rmdir()
            raise
        (root / STORE_NAME).mkdir(exist_ok=True)
        write_text_atomic(root / CONFIG_NAME, json.dumps(asdict(config), indent=2) + "\n")
        (root / CONFIG_NAME).chmod(0o600)  # it holds the salt, and may hold a password
        return cls(root)

    @property
    def db_url(self) -> str:
        """The catalog URL: ``$PATHSYNTH_DB_URL``, else the config's, else the embedded SQLite
        file; with ``$PATHSYNTH_DB_PASSWORD`` as its password when set."""
        configured = os.environ.get(DB_URL_ENV) or self.config.db_url
        return resolve_url(configured or f"sqlite:///{self.root / SQLITE_NAME}")

    @property
    def writable(self) -> bool:
        """Whether this user can write the workspace folder and its store."""
        return all(os.access(path, os.W_OK) for path in (self.root, self.store) if path.exists())

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

        The embedded SQLite catalog of a workspace that cannot be written is opened read-only
        and not migrated.

        Raises:
            CatalogUnavailable: the database cannot be reached, or a read-only catalog's schema is
                older than this version of pathsynth.
        """
        if self.config.db_url is None and DB_URL_ENV not in os.environ and not self.writable:
            return Catalog(self.db_url, read_only=True)
        return Catalog(self.db_url)

    @contextmanager
    def write_lock(self, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the workspace's write lock (see :mod:`pathsynth.catalog.lock`) for the block.

        Args:
            on_wait: called with the holder's description when this run must wait; None prints
                one line to stderr.

        Raises:
            WorkspaceError: the workspace cannot be written.
        """
        if not self.writable:
            raise WorkspaceError(f"workspace {self.root} is read-only; it can be read, not written")
        if on_wait is None:
            with write_lock(self.root):
                yield
        else:
            with write_lock(self.root, on_wait):
                yield

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
        prefix = _CODE_PREFIX.get(kind, kind[:1].upper())
        return f"{prefix}{digest[:15]}"
