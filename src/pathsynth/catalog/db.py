"""Connecting to the catalog database and bringing its schema to the current migration.

The URL alone selects the backend: ``sqlite:///path`` (the embedded default, in WAL mode),
``mysql+pymysql://user:pass@host/db`` for MariaDB/MySQL, ``postgresql+psycopg://...`` for
PostgreSQL. The same code serves all three.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from pathsynth.errors import CatalogUnavailable


def masked_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def create_catalog_engine(url: str) -> Engine:
    """An engine for ``url``, checked by one round trip to the server.

    Raises:
        CatalogUnavailable: the URL is malformed, its driver is not installed, or the database
            cannot be reached; the message names the URL with its password masked.
    """
    shown = masked_url(url)
    try:
        parsed = make_url(url)
        options: dict[str, Any] = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "sqlite":
            options = {"connect_args": {"timeout": 30}}
        engine = create_engine(parsed, **options)
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise CatalogUnavailable(f"cannot use catalog database {shown}: {error}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (OperationalError, DBAPIError) as error:
        engine.dispose()
        reason = str(error.orig).splitlines()[0] if error.orig is not None else str(error)
        raise CatalogUnavailable(f"cannot reach catalog database {shown}: {reason}") from None
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def upgrade_schema(engine: Engine) -> None:
    """Apply every Alembic migration the database does not have yet."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("pathsynth.catalog").joinpath("migrations"))
    )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None for an empty database."""
    if not inspect(engine).has_table("alembic_version"):
        return None
    with engine.connect() as connection:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


class Catalog:
    """An open catalog database: an engine and a session factory.

    Args:
        url: the database URL.
        migrate: bring the schema to the newest migration on open.
    """

    def __init__(self, url: str, migrate: bool = True) -> None:
        self.url = url
        self.engine = create_catalog_engine(url)
        if migrate:
            upgrade_schema(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
