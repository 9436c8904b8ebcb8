"""The visual Turing test's tables: tests, raters, items and answers (migration 0003).

These are the only tables the web app writes. A rater is known to the catalog by the SHA-256 of a
secret token (the token itself is shown once, when the rater is added); items are known to raters
by an opaque random id, never by their catalog id or file. Every function takes an open
:class:`~pathsynth.catalog.db.Catalog`; the facade (:mod:`pathsynth.catalog.api`) opens it.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from dataclasses import dataclass
from hashlib import sha256

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from pathsynth.catalog.db import Catalog
from pathsynth.catalog.models import (
    TURING_TRUTHS,
    Image,
    TuringAnswer,
    TuringItem,
    TuringRater,
    TuringTest,
)
from pathsynth.errors import TuringError

MAX_CONFIDENCE = 5


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


def create_test(
    catalog: Catalog,
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
        with catalog.session() as session:
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
                TuringItem(test_id=test.id, public_id=item.public_id, image_id=item.image_id,
                           truth=item.truth, label=item.label)
                for item in items
            )  # fmt: skip
            return test.id
    except IntegrityError:  # the same form posted twice at once (a double click)
        raise taken from None


def delete_test(catalog: Catalog, test_id: int) -> None:
    """Remove a test with its raters, items and answers (used when making its files failed)."""
    with catalog.session() as session:
        item_ids = select(TuringItem.id).where(TuringItem.test_id == test_id)
        session.execute(delete(TuringAnswer).where(TuringAnswer.item_id.in_(item_ids)))
        session.execute(delete(TuringItem).where(TuringItem.test_id == test_id))
        session.execute(delete(TuringRater).where(TuringRater.test_id == test_id))
        session.execute(delete(TuringTest).where(TuringTest.id == test_id))


def add_rater(catalog: Catalog, test_id: int, name: str) -> str:
    """Add a rater to a test; returns their secret token (stored only as its hash).

    Raises:
        TuringError: no such test, an empty or too long name, or a name the test already has.
    """
    if not name or len(name) > 64:
        raise TuringError(f"a rater name must have 1 to 64 characters, got {len(name)}")
    token = secrets.token_urlsafe(24)
    try:
        with catalog.session() as session:
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
                TuringRater(test_id=test_id, name=name, token_sha256=token_digest(token),
                            order_seed=secrets.randbelow(2**31))
            )  # fmt: skip
    except IntegrityError:  # a concurrent add of the same name
        raise TuringError(f"the test already has a rater named {name!r}") from None
    return token


def find_test(catalog: Catalog, name_or_id: str) -> TestSummary | None:
    """A test by name, or by id when ``name_or_id`` is all digits and no test has that name."""
    with catalog.session() as session:
        test = session.scalar(select(TuringTest).where(TuringTest.name == name_or_id))
        if test is None and name_or_id.isdigit():
            test = session.get(TuringTest, int(name_or_id))
        if test is None:
            return None
        return _summaries(session, [test])[0]


def list_tests(catalog: Catalog) -> list[TestSummary]:
    """Every test, newest first."""
    with catalog.session() as session:
        tests = list(session.scalars(select(TuringTest).order_by(TuringTest.id.desc())))
        return _summaries(session, tests)


def _summaries(session: object, tests: list[TuringTest]) -> list[TestSummary]:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
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


def rater_for_token(catalog: Catalog, token: str) -> Rater | None:
    """The rater a token belongs to, or None for an unknown token."""
    if not token or len(token) > 128:
        return None
    with catalog.session() as session:
        row = session.execute(
            select(TuringRater, TuringTest.name)
            .join(TuringTest, TuringTest.id == TuringRater.test_id)
            .where(TuringRater.token_sha256 == token_digest(token))
        ).first()
    if row is None:
        return None
    rater, test_name = row
    return Rater(rater.id, rater.name, rater.test_id, test_name, rater.order_seed)


def rater_items(catalog: Catalog, rater: Rater) -> list[RaterItem]:
    """The test's items in the rater's own shuffled order, with their answers so far."""
    with catalog.session() as session:
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


def item_image(catalog: Catalog, test_id: int, public_id: str) -> bool:
    """Whether ``public_id`` is an item of test ``test_id``."""
    with catalog.session() as session:
        found = session.scalar(
            select(TuringItem.id).where(
                TuringItem.public_id == public_id, TuringItem.test_id == test_id
            )
        )
    return found is not None


def record_answer(
    catalog: Catalog,
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
    """
    if called not in TURING_TRUTHS:
        raise TuringError("answer 'real' or 'synthetic'")
    if label is not None and label not in class_names:
        raise TuringError("that class is not one of this test's")
    if confidence is not None and not 1 <= confidence <= MAX_CONFIDENCE:
        raise TuringError(f"confidence must be 1 to {MAX_CONFIDENCE}")
    with catalog.session() as session:
        item_id = session.scalar(
            select(TuringItem.id).where(
                TuringItem.public_id == public_id, TuringItem.test_id == rater.test_id
            )
        )
    if item_id is None:
        raise TuringError("no such item in this test")
    values: dict[str, object] = {"called": called, "label": label, "confidence": confidence}
    try:
        _put_answer(catalog, rater.rater_id, item_id, values)
    except IntegrityError:  # the same form posted twice at once (a double click): replace it
        _put_answer(catalog, rater.rater_id, item_id, values)


def _put_answer(catalog: Catalog, rater_id: int, item_id: int, values: dict[str, object]) -> None:
    """Insert a rater's answer on an item, or replace the one stored."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with catalog.session() as session:
        answer = session.get(TuringAnswer, (rater_id, item_id))
        if answer is None:
            session.add(TuringAnswer(rater_id=rater_id, item_id=item_id, answered_at=now, **values))
        else:
            for name, value in values.items():
                setattr(answer, name, value)
            answer.answered_at = now


def answers_of_test(catalog: Catalog, test_id: int) -> tuple[list[str], list[AnswerRecord]]:
    """The names of a test's raters and every stored answer with its truth, by rater and item."""
    with catalog.session() as session:
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
        AnswerRecord(r, i, t, lab, c, cl, conf, str(at)) for r, i, t, lab, c, cl, conf, at in rows
    ]


class TuringBook:
    """The Turing-test tables of one open catalog, for a long-lived process (the web app).

    Args:
        catalog: an open catalog; closed by :meth:`close`.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def close(self) -> None:
        """Release the connections."""
        self.catalog.close()

    def tests(self) -> list[TestSummary]:
        """See :func:`list_tests`."""
        return list_tests(self.catalog)

    def test(self, name_or_id: str) -> TestSummary | None:
        """See :func:`find_test`."""
        return find_test(self.catalog, name_or_id)

    def test_by_id(self, test_id: int) -> TestSummary | None:
        """A test by id, or None."""
        with self.catalog.session() as session:
            test = session.get(TuringTest, test_id)
            return _summaries(session, [test])[0] if test is not None else None

    def add_rater(self, test_id: int, name: str) -> str:
        """See :func:`add_rater`."""
        return add_rater(self.catalog, test_id, name)

    def rater(self, token: str) -> Rater | None:
        """See :func:`rater_for_token`."""
        return rater_for_token(self.catalog, token)

    def items_for(self, rater: Rater) -> list[RaterItem]:
        """See :func:`rater_items`."""
        return rater_items(self.catalog, rater)

    def has_item(self, test_id: int, public_id: str) -> bool:
        """See :func:`item_image`."""
        return item_image(self.catalog, test_id, public_id)

    def answer(
        self,
        rater: Rater,
        public_id: str,
        called: str,
        label: str | None,
        confidence: int | None,
        class_names: list[str],
    ) -> None:
        """See :func:`record_answer`."""
        record_answer(self.catalog, rater, public_id, called, label, confidence, class_names)

    def answers(self, test_id: int) -> tuple[list[str], list[AnswerRecord]]:
        """See :func:`answers_of_test`."""
        return answers_of_test(self.catalog, test_id)
