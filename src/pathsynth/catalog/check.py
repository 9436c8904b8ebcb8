"""``pathsynth check``: does the catalog agree with the store, and is its schema current?

Finds rows whose file is missing, store files without a row, files whose content no longer matches
the hash their row records, temporary files left by a killed run, and a schema older than this
version of pathsynth. ``--repair`` (under the workspace's write lock) removes stray and temporary
files, deletes the rows of missing files (with their features, lineage and split membership) and
migrates the schema; a file whose hash does not match is only reported, since neither the file nor
the row can be trusted to be the right one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from sqlalchemy import delete, select

from pathsynth.catalog.db import Catalog, head_revision, schema_revision, upgrade_schema
from pathsynth.catalog.lock import read_lock
from pathsynth.catalog.models import Image
from pathsynth.catalog.store import remove_files
from pathsynth.catalog.workspace import Workspace
from pathsynth.files import TMP_MARK


@dataclass
class CheckReport:
    """What ``check`` found (and, with repair, what it fixed).

    Attributes:
        missing_files: store paths of rows whose file is not in the store.
        stray_files: store files without a catalog row.
        hash_mismatches: store paths whose content differs from the recorded sha256.
        temp_files: temporary files left by an interrupted write.
        schema: (revision found, newest revision) when they differ, else None.
        repaired: whether the problems above (but hash mismatches) were repaired.
    """

    missing_files: list[str] = field(default_factory=list)
    stray_files: list[str] = field(default_factory=list)
    hash_mismatches: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    schema: tuple[str | None, str] | None = None
    repaired: bool = False

    @property
    def problems(self) -> list[tuple[str, str]]:
        """Every problem as (kind, what), in a stable order."""
        found = [("row without file", p) for p in self.missing_files]
        found += [("file without row", p) for p in self.stray_files]
        found += [("hash mismatch", p) for p in self.hash_mismatches]
        found += [("temporary file", p) for p in self.temp_files]
        if self.schema is not None:
            found.append(("schema", f"at {self.schema[0]}, newest is {self.schema[1]}"))
        return found


def check_workspace(workspace: Workspace, repair: bool = False) -> CheckReport:
    """Compare the catalog with the store file by file, hashing every file.

    Args:
        workspace: the workspace to check.
        repair: fix what can be fixed (see the module docstring), holding the write lock.

    Returns:
        The report; its ``problems`` are empty when all is well.

    Raises:
        CatalogUnavailable: the catalog cannot be reached.
        WorkspaceError: ``repair`` on a read-only workspace.
    """
    if not repair:
        with read_lock(workspace.root):  # a writer's files before their rows are no problem
            return _inspect(workspace)
    with workspace.write_lock():
        report = _inspect(workspace)
        _repair(workspace, report)
    return report


def _inspect(workspace: Workspace) -> CheckReport:
    report = CheckReport()
    read_only = workspace.config.db_url is None and not workspace.writable
    with Catalog(workspace.db_url, migrate=False, read_only=read_only) as catalog:
        found, head = schema_revision(catalog.engine), head_revision()
        if found != head:
            report.schema = (found, head)
        if found is None:
            return report
        with catalog.session() as session:
            rows = {
                path: digest
                for path, digest in session.execute(select(Image.store_path, Image.sha256))
            }
    files = _store_files(workspace.store)
    report.temp_files = sorted(p for p in files if TMP_MARK in Path(p).name)
    report.stray_files = sorted(p for p in files if p not in rows and p not in report.temp_files)
    report.missing_files = sorted(p for p in rows if p not in files)
    report.hash_mismatches = [
        path for path in sorted(set(rows) & files) if _sha256(workspace.store / path) != rows[path]
    ]
    return report


def _repair(workspace: Workspace, report: CheckReport) -> None:
    remove_files(workspace.store, report.stray_files + report.temp_files)
    with Catalog(workspace.db_url, migrate=False) as catalog:
        if report.schema is not None:
            upgrade_schema(catalog.engine)
        if report.missing_files:
            with catalog.session() as session:
                session.execute(delete(Image).where(Image.store_path.in_(report.missing_files)))
    report.repaired = True


def _store_files(store: Path) -> set[str]:
    if not store.is_dir():
        return set()
    return {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}


def _sha256(path: Path) -> str:
    digest = sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
