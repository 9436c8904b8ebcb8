"""The visual Turing test's tables: tests, raters, items and answers (migration 0003).

These are the only tables the web app writes, and :class:`TuringBook` is the only code that reads
or writes them (the CLI, the web app and :mod:`pathsynth.turing.design` all go through it). A
rater is known to the catalog by the SHA-256 of a secret token (the token itself is shown once,
when the rater is added); items are known to raters by an opaque random id, never by their
catalog id or file. A test's re-encoded image files live in ``<workspace>/turing/<test id>/``.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import secrets
import shutil
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from types import TracebackType

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pathsynth.catalog.db import Catalog
from pathsynth.catalog.models import (
    TURING_TRUTHS,
    Image,
    TuringAnswer,
    TuringItem,
    TuringRater,
    TuringTest,
)
from pathsynth.catalog.workspace import Workspace
from pathsynth.errors import AnswerNotStored, CatalogUnavailable, TuringError

MAX_CONFIDENCE = 5

_log = logging.getLogger("pathsynth.serve")


def token_digest(token: str) -> str:
    """The stored form of a rater token (hex SHA-256; tokens are 192-bit random, so unsalted)."""
    return sha256(token.encode("utf-8")).hexdigest()


def new_public_id() -> str:
    """An opaque, unguessable id for an item (128 random bits, URL-safe)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class PlannedItem:
    """One image chosen for a test: its catalog id, truth, class and the opaque id it goes by."""

    image_id: int
    truth: str
    label: str
    public_id: str


@dataclass(frozen=True)
class TestSummary:
    """A stored test, its items per truth, its raters and their answers."""

    test_id: int
    name: str
    params: dict[str, object]
    class_names: list[str]
    items: int
    raters: int
    answers: int
    created_at: str


@dataclass(frozen=True)
class Rater:
    """A rater of one test, as their token identifies them."""

    rater_id: int
    name: str
    test_id: int
    test_name: str
    order_seed: int


@dataclass(frozen=True)
class RaterItem:
    """One item in the order a rater sees it, and their answer so far (None if unanswered)."""

    public_id: str
    position: int
    called: str | None


@dataclass(frozen=True)
class AnswerRecord:
    """One stored answer with the truth beside it (for results and the CSV export)."""

    rater: str
    item: str
    truth: str
    label: str
    called: str
    called_label: str | None
    confidence: int | None
    answered_at: str


class TuringBook:
    """The Turing-test tables of a workspace's catalog, and its tests' image folders.

    Open one with :meth:`open` per process that uses it (the web app keeps one for its lifetime)
    and close it, or use it as a context manager.

    Args:
        catalog: an open catalog; closed by :meth:`close`.
        root: the workspace folder, under which ``turing/<test id>/`` holds the tests' images.
    """

    def __init__(self, catalog: Catalog, root: Path) -> None:
        self.catalog = catalog
        self.root = root

    @classmethod
    def open(cls, space: Workspace) -> TuringBook:
        """The Turing tables of a workspace's catalog (migrated to the newest schema first).

        Raises:
            CatalogUnavailable: the database cannot be reached.
        """
        return cls(space.open_catalog(), space.root)

    def __enter__(self) -> TuringBook:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the connections."""
        self.catalog.close()

    def folder(self, test_id: int) -> Path:
        """Where a test's re-encoded item files live (``<workspace>/turing/<test id>``)."""
        return self.root / "turing" / str(int(test_id))

    def test_by_id(self, test_id: int) -> TestSummary | None:
        """A test by id, or None."""
        with self.catalog.session() as session:
            test = session.get(TuringTest, test_id)
            return self._summaries(session, [test])[0] if test is not None else None

    def create(
        self,
        name: str,
        class_names: list[str],
        items: list[PlannedItem],
        params: dict[str, object],
    ) -> int:
        """Store a new test and its items; returns its id.

        Raises:
            TuringError: an empty or too long name, a name already used, no items, or an item whose
                truth is not ``real``/``synthetic`` or whose image is not in the catalog.
        """
        if not name or len(name) > 64:
            raise TuringError(f"a test name must have 1 to 64 characters, got {len(name)}")
        if not items:
            raise TuringError("a test needs at least one image")
        if any(item.truth not in TURING_TRUTHS for item in items):
            raise TuringError("an item's truth must be 'real' or 'synthetic'")
        taken = TuringError(f"a Turing test named {name!r} already exists")
        try:
            with self.catalog.session() as session:
                if session.scalar(select(TuringTest.id).where(TuringTest.name == name)) is not None:
                    raise taken
                ids = {item.image_id for item in items}
                found = set(session.scalars(select(Image.id).where(Image.id.in_(ids))))
                if found != ids:
                    raise TuringError(f"images {sorted(ids - found)[:5]} are not in the catalog")
                test = TuringTest(name=name, params=params, classes={"names": list(class_names)})
                session.add(test)
                session.flush()
                session.add_all(
                    TuringItem(
                        test_id=test.id,
                        public_id=item.public_id,
                        image_id=item.image_id,
                        truth=item.truth,
                        label=item.label,
                    )
                    for item in items
                )
                return test.id
        except IntegrityError:  # the same form posted twice at once (a double click)
            raise taken from None

    def drop(self, test_id: int) -> None:
        """Remove a test with its raters, items, answers and image folder (used when making its
        files failed)."""
        shutil.rmtree(self.folder(test_id), ignore_errors=True)
        with self.catalog.session() as session:
            item_ids = select(TuringItem.id).where(TuringItem.test_id == test_id)
            session.execute(delete(TuringAnswer).where(TuringAnswer.item_id.in_(item_ids)))
            session.execute(delete(TuringItem).where(TuringItem.test_id == test_id))
            session.execute(delete(TuringRater).where(TuringRater.test_id == test_id))
            session.execute(delete(TuringTest).where(TuringTest.id == test_id))

    def add_rater(self, test_id: int, name: str) -> str:
        """Add a rater to a test; returns their secret token (stored only as its hash).

        Raises:
            TuringError: no such test, an empty or too long name, or a name the test already has.
        """
        if not name or len(name) > 64:
            raise TuringError(f"a rater name must have 1 to 64 characters, got {len(name)}")
        token = secrets.token_urlsafe(24)
        try:
            with self.catalog.session() as session:
                if session.get(TuringTest, test_id) is None:
                    raise TuringError(f"no Turing test with id {test_id}")
                taken = session.scalar(
                    select(TuringRater.id).where(
                        TuringRater.test_id == test_id, TuringRater.name == name
                    )
                )
                if taken is not None:
                    raise TuringError(f"the test already has a rater named {name!r}")
                session.add(
                    TuringRater(
                        test_id=test_id,
                        name=name,
                        token_sha256=token_digest(token),
                        order_seed=secrets.randbelow(2**31),
                    )
                )
        except IntegrityError:  # a concurrent add of the same name
            raise TuringError(f"the test already has a rater named {name!r}") from None
        return token

    def test(self, name_or_id: str) -> TestSummary | None:
        """A test by name, or by id when ``name_or_id`` is all digits and no test has that name."""
        with self.catalog.session() as session:
            test = session.scalar(select(TuringTest).where(TuringTest.name == name_or_id))
            if test is None and name_or_id.isdigit():
                test = session.get(TuringTest, int(name_or_id))
            if test is None:
                return None
            return self._summaries(session, [test])[0]

    def tests(self) -> list[TestSummary]:
        """Every test, newest first."""
        with self.catalog.session() as session:
            tests = list(session.scalars(select(TuringTest).order_by(TuringTest.id.desc())))
            return self._summaries(session, tests)

    @staticmethod
    def _summaries(session: Session, tests: list[TuringTest]) -> list[TestSummary]:
        out = []
        for test in tests:
            items = session.scalar(select(func.count()).where(TuringItem.test_id == test.id)) or 0
            raters = session.scalar(select(func.count()).where(TuringRater.test_id == test.id)) or 0
            answers = (
                session.scalar(
                    select(func.count())
                    .select_from(TuringAnswer)
                    .join(TuringItem, TuringItem.id == TuringAnswer.item_id)
                    .where(TuringItem.test_id == test.id)
                )
                or 0
            )
            out.append(
                TestSummary(
                    test.id,
                    test.name,
                    dict(test.params),
                    list(test.classes.get("names", [])),
                    int(items),
                    int(raters),
                    int(answers),
                    str(test.created_at),
                )
            )
        return out

    def rater(self, token: str) -> Rater | None:
        """The rater a token belongs to, or None for an unknown token."""
        if not token or len(token) > 128:
            return None
        with self.catalog.session() as session:
            row = session.execute(
                select(TuringRater, TuringTest.name)
                .join(TuringTest, TuringTest.id == TuringRater.test_id)
                .where(TuringRater.token_sha256 == token_digest(token))
            ).first()
        if row is None:
            return None
        rater, test_name = row
        return Rater(rater.id, rater.name, rater.test_id, test_name, rater.order_seed)

    def items_for(self, rater: Rater) -> list[RaterItem]:
        """The test's items in the rater's own shuffled order, with their answers so far."""
        with self.catalog.session() as session:
            items = session.execute(
                select(TuringItem.id, TuringItem.public_id)
                .where(TuringItem.test_id == rater.test_id)
                .order_by(TuringItem.id)
            ).all()
            answered = dict(
                session.execute(
                    select(TuringAnswer.item_id, TuringAnswer.called).where(
                        TuringAnswer.rater_id == rater.rater_id
                    )
                ).all()
            )
        order = list(items)
        random.Random(rater.order_seed).shuffle(order)
        return [
            RaterItem(public_id, position, answered.get(item_id))
            for position, (item_id, public_id) in enumerate(order)
        ]

    def has_item(self, test_id: int, public_id: str) -> bool:
        """Whether ``public_id`` is an item of test ``test_id``."""
        with self.catalog.session() as session:
            found = session.scalar(
                select(TuringItem.id).where(
                    TuringItem.public_id == public_id, TuringItem.test_id == test_id
                )
            )
        return found is not None

    def answer(
        self,
        rater: Rater,
        public_id: str,
        called: str,
        label: str | None,
        confidence: int | None,
        class_names: list[str],
    ) -> None:
        """Store (or replace) a rater's answer on one item of their test.

        Raises:
            TuringError: the item is not in the rater's test, the call is not ``real``/``synthetic``,
                the class is not one the test offers, or the confidence is outside 1-5.
            AnswerNotStored: a valid answer the catalog cannot store now (read-only, disk full,
                server gone); the cause goes to the server's log, not to the rater.
        """
        if called not in TURING_TRUTHS:
            raise TuringError("answer 'real' or 'synthetic'")
        if label is not None and label not in class_names:
            raise TuringError("that class is not one of this test's")
        if confidence is not None and not 1 <= confidence <= MAX_CONFIDENCE:
            raise TuringError(f"confidence must be 1 to {MAX_CONFIDENCE}")
        with self.catalog.session() as session:
            item_id = session.scalar(
                select(TuringItem.id).where(
                    TuringItem.public_id == public_id, TuringItem.test_id == rater.test_id
                )
            )
        if item_id is None:
            raise TuringError("no such item in this test")
        values: dict[str, object] = {"called": called, "label": label, "confidence": confidence}
        try:
            try:
                self._put_answer(rater.rater_id, item_id, values)
            except IntegrityError:  # the same form posted twice at once (a double click)
                self._put_answer(rater.rater_id, item_id, values)
        except CatalogUnavailable as error:
            _log.warning("a rater's answer was not stored: %s", error)
            raise AnswerNotStored(
                "your answer was not stored: the server cannot save answers at the moment. It "
                "is still chosen below; send it again in a minute"
            ) from None

    def _put_answer(self, rater_id: int, item_id: int, values: dict[str, object]) -> None:
        """Insert a rater's answer on an item, or replace the one stored."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with self.catalog.session() as session:
            answer = session.get(TuringAnswer, (rater_id, item_id))
            if answer is None:
                session.add(
                    TuringAnswer(rater_id=rater_id, item_id=item_id, answered_at=now, **values)
                )
            else:
                for name, value in values.items():
                    setattr(answer, name, value)
                answer.answered_at = now

    def answers(self, test_id: int) -> tuple[list[str], list[AnswerRecord]]:
        """The names of a test's raters and every stored answer with its truth, by rater and item."""
        with self.catalog.session() as session:
            raters = list(
                session.scalars(
                    select(TuringRater.name)
                    .where(TuringRater.test_id == test_id)
                    .order_by(TuringRater.name)
                )
            )
            rows = session.execute(
                select(
                    TuringRater.name,
                    TuringItem.public_id,
                    TuringItem.truth,
                    TuringItem.label,
                    TuringAnswer.called,
                    TuringAnswer.label,
                    TuringAnswer.confidence,
                    TuringAnswer.answered_at,
                )
                .join(TuringRater, TuringRater.id == TuringAnswer.rater_id)
                .join(TuringItem, TuringItem.id == TuringAnswer.item_id)
                .where(TuringItem.test_id == test_id)
                .order_by(TuringRater.name, TuringItem.public_id)
            ).all()
        return raters, [
            AnswerRecord(r, i, t, lab, c, cl, conf, str(at))
            for r, i, t, lab, c, cl, conf, at in rows
        ]
