"""Writing files into the store and their rows into the catalog, in batches, never one without the
other.

Each file is written atomically into the store as it arrives; its rows are inserted when the batch
commits. If the commit fails or the process is interrupted, the batch's files are removed again;
a hard kill leaves them as orphans, which the next run's sweep
(:func:`~pathsynth.catalog.store.sweep_orphans`) removes.
Ingest, affine expansion and generation all write through this class.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pathsynth.catalog.models import Patient, Study
from pathsynth.catalog.store import remove_files, write_atomic

RowMaker = Callable[[Session], None]


class BatchWriter:
    """Stores files now and commits their catalog rows per batch.

    Args:
        store: the store folder.
        sessions: the catalog's session factory (committing on success).
        batch_size: files per transaction.
        on_commit: called with the number of files once a batch is committed.
    """

    def __init__(
        self,
        store: Path,
        sessions: Callable[[], AbstractContextManager[Session]],
        batch_size: int = 64,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.batch_size = batch_size
        self.on_commit = on_commit
        self._batch: list[tuple[str, RowMaker]] = []
        self._ids: dict[tuple[str, str], int] = {}

    def add(self, store_path: str, data: bytes, make_rows: RowMaker) -> None:
        """Write ``data`` to ``store/store_path``; ``make_rows`` inserts its rows at commit."""
        try:
            write_atomic(self.store / store_path, data)
        except BaseException:
            self._discard()
            raise
        self._batch.append((store_path, make_rows))
        if len(self._batch) >= self.batch_size:
            self.commit()

    def commit(self) -> None:
        """Commit the open batch."""
        if not self._batch:
            return
        try:
            with self.sessions() as session:
                for _, make_rows in self._batch:
                    make_rows(session)
        except BaseException:
            self._discard()
            raise
        count = len(self._batch)
        self._batch = []
        if self.on_commit is not None:
            self.on_commit(count)

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
