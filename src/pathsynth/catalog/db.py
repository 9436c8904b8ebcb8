"""Connecting to the catalog database and bringing its schema to the current migration.

The URL alone selects the backend: ``sqlite:///path`` (the embedded default, in WAL mode),
``mysql+pymysql://user:pass@host/db`` for MariaDB/MySQL, ``postgresql+psycopg://...`` for
PostgreSQL. The same code serves all three. Servers get connect and read timeouts
(``$PATHSYNTH_DB_TIMEOUT`` seconds, default 15; it is also how long a locked SQLite file is waited
for, default 30), so a frozen server is one line naming it, not a hang; a password can come from
``$PATHSYNTH_DB_PASSWORD`` instead of the URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from pathsynth.errors import CatalogUnavailable

DB_URL_ENV = "PATHSYNTH_DB_URL"
DB_PASSWORD_ENV = "PATHSYNTH_DB_PASSWORD"
TIMEOUT_ENV = "PATHSYNTH_DB_TIMEOUT"
DEFAULT_TIMEOUT_S = 15
SQLITE_BUSY_TIMEOUT_S = 30
_SECRET_QUERY = re.compile(r"((?:password|passwd|pwd)=)[^&]*", re.IGNORECASE)


def masked_url(url: str) -> str:
    """The URL with every password replaced by ``***``, for messages and logs.

    Masks the ``user:password@`` part up to the last ``@`` (a password may hold ``@``) and any
    ``password=``/``passwd=``/``pwd=`` query parameter; works on URLs SQLAlchemy cannot parse.
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        last_at = rest.rfind("@")  # the password may hold "@", "/" or "?"; the host cannot
        ends = [i for i in (rest.find("/", last_at + 1), rest.find("?", last_at + 1)) if i >= 0]
        authority_end = min(ends, default=len(rest))
        authority, tail = rest[:authority_end], rest[authority_end:]
        credentials, at, host = authority.rpartition("@")
        if at and ":" in credentials:
            credentials = credentials.split(":", 1)[0] + ":***"
        rest = f"{credentials}{at}{host}{tail}"
    return _SECRET_QUERY.sub(r"\1***", f"{scheme}{sep}{rest}")


def without_password(url: str) -> str:
    """The URL with its password removed (for storing it where others may read it)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    query = {k: v for k, v in parsed.query.items() if k.lower() not in ("password", "passwd")}
    # URL.set(password=None) keeps the password; the URL is a named tuple, so replace the field.
    bare = parsed.set(query=query)._replace(password=None)
    return bare.render_as_string(hide_password=False)


def resolve_url(url: str) -> str:
    """``url`` with the password from ``$PATHSYNTH_DB_PASSWORD`` when that is set (servers only)."""
    password = os.environ.get(DB_PASSWORD_ENV)
    if not password or url.startswith("sqlite"):
        return url
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


def _timeout_s(default: int = DEFAULT_TIMEOUT_S) -> int:
    raw = os.environ.get(TIMEOUT_ENV, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


def _engine_options(backend: str, read_only: bool) -> dict[str, Any]:
    """Connect/read timeouts per backend: a frozen server must not hang a command."""
    timeout = _timeout_s()
    if backend == "sqlite":
        return {"connect_args": {"timeout": _timeout_s(SQLITE_BUSY_TIMEOUT_S)}}
    if backend in ("mysql", "mariadb"):
        connect_args = {
            "connect_timeout": timeout,
            "read_timeout": 4 * timeout,
            "write_timeout": 4 * timeout,
            "charset": "utf8mb4",
        }
        return {"pool_pre_ping": True, "connect_args": connect_args}
    if backend == "postgresql":
        # libpq has no read timeout; keepalives find a dead server, connect_timeout a frozen one.
        connect_args = {
            "connect_timeout": timeout,
            "keepalives_idle": timeout,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        return {"pool_pre_ping": True, "connect_args": connect_args}
    return {"pool_pre_ping": True}


def server_of(url: str) -> str:
    """``host:port`` of a server URL, or the file of a SQLite one, for messages."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<unparseable database URL>"
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database)
    return f"{parsed.host or 'localhost'}{f':{parsed.port}' if parsed.port else ''}"


def create_catalog_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for ``url``, checked by one round trip to the server.

    Args:
        url: the database URL.
        read_only: open a SQLite file read-only (for a workspace that cannot be written).

    Raises:
        CatalogUnavailable: the URL is malformed (a raw ``@`` in its password included), its
            driver is not installed, or the database cannot be reached in time; the message
            names the URL with its password masked.
    """
    shown = masked_url(url)
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if parsed.host and "@" in parsed.host:  # the driver's errors would print what follows
            raise CatalogUnavailable(  # the first "@", part of the password
                f"cannot use catalog database {shown}: its user or password holds a raw '@'; "
                f"write it as %40, or leave the password out and set ${DB_PASSWORD_ENV}"
            )
        if backend == "sqlite" and read_only:
            # immutable: the folder cannot be written, so no other process can change the file
            parsed = parsed.set(
                database=f"file:{parsed.database}",
                query={"mode": "ro", "immutable": "1", "uri": "true"},
            )
        engine = create_engine(parsed, **_engine_options(backend, read_only))
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise CatalogUnavailable(f"cannot use catalog database {shown}: {error}") from None
    if engine.dialect.name == "sqlite" and not read_only:
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (OperationalError, DBAPIError) as error:
        engine.dispose()
        raise CatalogUnavailable(
            f"cannot reach catalog database {shown}: {_reason(error)}"
        ) from None
    return engine


_SERVER_GONE = re.compile(
    r"can't connect|connection refused|could not connect|lost connection|server has gone away"
    r"|server closed the connection|connection reset",
    re.IGNORECASE,
)
# SQLite's SQLITE_FULL and I/O errors, MariaDB's and PostgreSQL's full disk
_DISK_FULL = re.compile(r"disk is full|disk i/o error|no space left|disk full", re.IGNORECASE)


def _reason(error: DBAPIError) -> str:
    return str(error.orig if error.orig is not None else error).strip().splitlines()[0]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _migrations_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("pathsynth.catalog").joinpath("migrations"))
    )
    return config


def upgrade_schema(engine: Engine) -> None:
    """Apply every Alembic migration the database does not have yet."""
    from alembic import command

    config = _migrations_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def head_revision() -> str:
    """The newest schema revision this version of pathsynth knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_migrations_config()).get_current_head()
    assert head is not None, "the package ships its migrations"
    return head


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
        read_only: open a SQLite file read-only, without migrating it.

    Raises:
        CatalogUnavailable: the database cannot be reached, or a read-only one is at an older
            schema revision than this version of pathsynth.
    """

    def __init__(self, url: str, migrate: bool = True, read_only: bool = False) -> None:
        self.url = url
        self.engine = create_catalog_engine(url, read_only)
        if read_only:
            found, head = schema_revision(self.engine), head_revision()
            if found != head:
                self.engine.dispose()
                raise CatalogUnavailable(
                    f"read-only catalog {server_of(url)} is at schema {found}, not {head}; "
                    "open it once where it can be written"
                )
        elif migrate:
            with self.translated_errors():
                upgrade_schema(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def translated_errors(self) -> Iterator[None]:
        """Turn a lost server, a locked or read-only SQLite file into one-line errors.

        Raises:
            CatalogUnavailable: the connection was lost, the server timed out, the SQLite file
                stayed locked by another process or cannot be written, or the disk is full.
        """
        try:
            yield
        except OperationalError as error:
            reason = _reason(error)
            where = server_of(self.url)
            if "locked" in reason:
                raise CatalogUnavailable(
                    f"catalog {where} stayed locked by another process for "
                    f"{_timeout_s(SQLITE_BUSY_TIMEOUT_S)} s; try again when it has finished"
                ) from None
            if (
                error.connection_invalidated
                or "readonly" in reason
                or "timed out" in reason
                or _DISK_FULL.search(reason)
                or _SERVER_GONE.search(reason)  # a reconnect after a restart, refused
            ):
                raise CatalogUnavailable(f"catalog database {where}: {reason}") from None
            raise

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any error.

        Raises:
            CatalogUnavailable: see :meth:`translated_errors`.
        """
        with self.translated_errors(), self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
