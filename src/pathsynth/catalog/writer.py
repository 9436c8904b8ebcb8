"""Writing files into the store and their rows into the catalog, in batches, never one without the
other.

Each file is written atomically into the store as it arrives; its rows are inserted when the batch
commits. If the commit fails or the process is interrupted, the batch's files are removed again;
a hard kill leaves them as orphans, which the next run's sweep
(:func:`~pathsynth.catalog.store.sweep_orphans`, run under the workspace's write lock) removes.
A batch the database refuses because of one bad row (too long for a column, a character the
server's table cannot hold, a row another writer added meanwhile) is retried row by row: the good
rows are committed, the bad ones reported through ``on_reject`` and their files removed.
Ingest, affine expansion and generation all write through this class.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import exc, select
from sqlalchemy.orm import Session

from pathsynth.catalog.models import Patient, Study
from pathsynth.catalog.store import remove_files, write_atomic

RowMaker = Callable[[Session], None]
# MySQL/MariaDB error numbers of a value a column cannot hold, which its driver reports as an
# OperationalError: incorrect string value (a character outside the table's character set), data
# too long, data truncated, incorrect date/time value.
_MYSQL_VALUE_ERRORS = {1366, 1406, 1265, 1292}


def is_row_error(error: BaseException) -> bool:
    """Whether the database refused one row's values, while its neighbours may be fine.

    A lost connection, a locked database or any other failure of the server is not a row error.
    """
    if isinstance(error, exc.IntegrityError | exc.DataError):
        return True
    if isinstance(error, exc.OperationalError) and not error.connection_invalidated:
        code = error.orig.args[0] if error.orig is not None and error.orig.args else None
        return code in _MYSQL_VALUE_ERRORS
    return False


def row_error_reason(error: exc.DBAPIError) -> str:
    """The database's own one-line reason for refusing a row."""
    return str(error.orig if error.orig is not None else error).splitlines()[0]


class BatchWriter:
    """Stores files now and commits their catalog rows per batch.

    Args:
        store: the store folder.
        sessions: the catalog's session factory (committing on success).
        batch_size: files per transaction.
        on_commit: called with the number of files once a batch is committed.
        on_reject: called with (store path, reason) for each row the database refused; its file
            is removed and the rest of the batch is committed.
    """

    def __init__(
        self,
        store: Path,
        sessions: Callable[[], AbstractContextManager[Session]],
        batch_size: int = 64,
        on_commit: Callable[[int], None] | None = None,
        on_reject: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.batch_size = batch_size
        self.on_commit = on_commit
        self.on_reject = on_reject
        self._batch: list[tuple[str, RowMaker]] = []
        self._ids: dict[tuple[str, str], int] = {}

    def add(self, store_path: str, data: bytes, make_rows: RowMaker) -> None:
        """Write ``data`` to ``store/store_path``; ``make_rows`` inserts its rows at commit.

        Raises:
            StoreUnwritable: the store cannot be written (disk full, read-only); the open batch's
                files are removed.
        """
        try:
            write_atomic(self.store / store_path, data)
        except BaseException:
            self._discard()
            raise
        self._batch.append((store_path, make_rows))
        if len(self._batch) >= self.batch_size:
            self.commit()

    def commit(self) -> None:
        """Commit the open batch, row by row if the database refuses it as a whole."""
        if not self._batch:
            return
        try:
            try:
                self._commit(self._batch)
                count = len(self._batch)
            except exc.DBAPIError as error:
                if not is_row_error(error):
                    raise
                self._ids.clear()  # ids made in the rolled-back transaction are gone
                count = self._commit_one_by_one()
        except BaseException:
            self._discard()
            raise
        self._batch = []
        if self.on_commit is not None:
            self.on_commit(count)

    def _commit(self, items: list[tuple[str, RowMaker]]) -> None:
        with self.sessions() as session:
            for _, make_rows in items:
                make_rows(session)

    def _commit_one_by_one(self) -> int:
        committed = 0
        for store_path, make_rows in self._batch:
            try:
                self._commit([(store_path, make_rows)])
                committed += 1
            except exc.DBAPIError as error:
                if not is_row_error(error):
                    raise
                self._ids.clear()
                remove_files(self.store, [store_path])
                if self.on_reject is not None:
                    self.on_reject(store_path, row_error_reason(error))
        return committed

    def discard(self) -> None:
        """Drop the open batch and its files (after an interruption)."""
        self._discard()

    def _discard(self) -> None:
        remove_files(self.store, [store_path for store_path, _ in self._batch])
        self._batch = []
        self._ids.clear()  # ids created in a rolled-back transaction no longer exist

    def patient_id(self, session: Session, code: str, make: Callable[[], Patient]) -> int:
        """The id of the patient with ``code``, creating it with ``make`` if new."""
        return self._id_of(session, Patient, code, make)

    def study_id(self, session: Session, code: str, make: Callable[[], Study]) -> int:
        """The id of the study with ``code``, creating it with ``make`` if new."""
        return self._id_of(session, Study, code, make)

    def _id_of(
        self, session: Session, model: type[Patient | Study], code: str, make: Callable[[], Any]
    ) -> int:
        key = (model.__tablename__, code)
        if key not in self._ids:
            found = session.scalar(select(model.id).where(model.code == code))
            if found is None:
                row = make()
                session.add(row)
                session.flush()
                found = row.id
            self._ids[key] = found
        return self._ids[key]
