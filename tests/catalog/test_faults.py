"""Faults of the environment are one line naming the thing, never a traceback or a hang: frozen
servers, locked or read-only catalogs, a full disk, passwords in every form."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest
from helpers import assert_consistent, catalog_files, run_pathsynth, write_image
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pathsynth.catalog.db import Catalog, masked_url
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.workspace import CONFIG_NAME, Workspace
from pathsynth.errors import CatalogUnavailable, StoreUnwritable, WorkspaceError


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql+pymysql://ps:p@ssW0rd@127.0.0.1/db", "mysql+pymysql://ps:***@127.0.0.1/db"),
        ("postgresql+psycopg://u@h/db?password=s3cret", "postgresql+psycopg://u@h/db?password=***"),
        ("mysql+pymysql://u:a/b?c@h:3306/d?charset=utf8mb4&passwd=x",
         "mysql+pymysql://u:***@h:3306/d?charset=utf8mb4&passwd=***"),
        ("sqlite:////ws/catalog.sqlite", "sqlite:////ws/catalog.sqlite"),
    ],
)  # fmt: skip
def test_every_form_of_password_is_masked(url, shown):
    assert masked_url(url) == shown


@pytest.fixture
def frozen_server():
    """A TCP port that accepts connections and never says a word (a stopped server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.mark.parametrize("scheme", ["mysql+pymysql", "postgresql+psycopg"])
def test_a_frozen_server_is_named_within_the_timeout(frozen_server, scheme, monkeypatch):
    monkeypatch.setenv("PATHSYNTH_DB_TIMEOUT", "2")
    started = time.monotonic()
    with pytest.raises(CatalogUnavailable) as caught:
        Catalog(f"{scheme}://lab:pw@127.0.0.1:{frozen_server}/catalog")
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert f"127.0.0.1:{frozen_server}" in message and "pw@" not in message
    assert "\n" not in message


def test_password_from_the_environment_is_used_and_never_stored(mariadb_url, tmp_path):
    url = make_url(mariadb_url)
    password = url.password
    bare = url._replace(password=None).render_as_string(hide_password=False)
    assert str(password) not in bare
    env = {"PATHSYNTH_DB_PASSWORD": str(password)}
    done = run_pathsynth("init", str(tmp_path / "ws"), "--db-url", bare, env=env)
    assert done.returncode == 0, done.stderr
    config = (tmp_path / "ws" / CONFIG_NAME).read_text()
    assert (
        str(password) not in config
        and oct((tmp_path / "ws" / CONFIG_NAME).stat().st_mode)[-3:] == "600"
    )
    assert run_pathsynth("stats", "-w", str(tmp_path / "ws"), env=env).returncode == 0
    without = run_pathsynth("stats", "-w", str(tmp_path / "ws"), env={"PATHSYNTH_DB_PASSWORD": ""})
    assert without.returncode == 1 and len(without.stderr.strip().splitlines()) == 1
    assert "cannot reach catalog database" in without.stderr


def test_the_url_from_the_environment_replaces_the_configured_one(tmp_path, monkeypatch):
    space = Workspace.create(tmp_path / "ws")
    other = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    monkeypatch.setenv("PATHSYNTH_DB_URL", other)
    assert space.db_url == other
    space.open_catalog().close()
    assert (tmp_path / "elsewhere.sqlite").exists()


def test_init_on_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(WorkspaceError, match="is a file, not a folder"):
        Workspace.create(tmp_path / "afile")
    done = run_pathsynth("init", str(tmp_path / "afile"))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1


def test_a_locked_sqlite_catalog_is_one_line_after_the_timeout(tmp_path, class_source, monkeypatch):
    space = Workspace.create(tmp_path / "ws")
    monkeypatch.setenv("PATHSYNTH_DB_TIMEOUT", "1")
    blocker = create_engine(space.db_url, connect_args={"timeout": 0})
    with blocker.connect() as connection:
        connection.exec_driver_sql("BEGIN EXCLUSIVE")
        with pytest.raises(CatalogUnavailable, match="stayed locked by another process for 1 s"):
            ingest_source(space, class_source, IngestOptions(modality="histology", workers=0))
        connection.exec_driver_sql("ROLLBACK")
    blocker.dispose()
    assert catalog_files(space) == (set(), set())


def test_a_full_disk_stops_ingest_with_one_line_and_leaves_nothing(
    workspace, class_source, monkeypatch
):
    from pathsynth.catalog import store

    written = 0
    real_write = store.files.write_atomic

    def fill_up(destination, data, durable=False):
        nonlocal written
        written += 1
        if written > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(destination, data, durable)

    monkeypatch.setattr(store.files, "write_atomic", fill_up)
    options = IngestOptions(modality="histology", workers=0, batch_size=4)
    with pytest.raises(StoreUnwritable, match=r"cannot write to the image store .*No space left"):
        ingest_source(workspace, class_source, options)
    assert assert_consistent(workspace) == 4  # the first batch committed, the second removed


def _read_only_prefix(path) -> tuple[str, ...] | None:
    """A command prefix that runs a command with ``path`` mounted read-only, or None."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return None
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{path}' '{path}'"],
        capture_output=True,
    )
    if probe.returncode != 0:
        return None
    return (
        "unshare",
        "-m",
        "sh",
        "-c",
        f"mount --bind -o ro '{path}' '{path}' && exec \"$@\"",
        "-",
    )


def test_a_read_only_workspace_can_be_read_and_refuses_writes_in_one_line(tmp_path, class_source):
    space = Workspace.create(tmp_path / "ws")
    ingest_source(space, class_source, IngestOptions(modality="histology", workers=0))
    assert (
        run_pathsynth("split", "-w", str(space.root), "--name", "s", "--by", "image").returncode
        == 0
    )
    prefix = _read_only_prefix(space.root)
    if prefix is None:
        if os.geteuid() == 0:
            pytest.skip("needs unshare and a read-only bind mount to make a workspace read-only")
        space.root.chmod(0o555)
        space.store.chmod(0o555)
        prefix = ()
    try:
        stats = run_pathsynth("stats", "-w", str(space.root), prefix=prefix)
        assert stats.returncode == 0, stats.stderr
        assert "12 images" in stats.stdout
        out = tmp_path / "out"
        export = run_pathsynth(
            "export", "-w", str(space.root), "--split", "s", "--out", str(out), prefix=prefix
        )
        assert export.returncode == 0, export.stderr
        assert len(list(out.rglob("*.png"))) == 9
        write_image(tmp_path / "more" / "a" / "x.png", seed=99)
        ingest = run_pathsynth(
            "ingest",
            str(tmp_path / "more"),
            "-m",
            "histology",
            "-w",
            str(space.root),
            prefix=prefix,
        )
        assert ingest.returncode == 1
        assert (
            ingest.stderr.strip().splitlines()[-1]
            == f"error: workspace {space.root} is read-only; it can be read, not written"
        )
    finally:
        space.root.chmod(0o755)
        space.store.chmod(0o755)


def test_a_connection_lost_mid_session_is_one_line_naming_the_server(mariadb_url):
    catalog = Catalog(mariadb_url)
    admin = create_engine(mariadb_url)
    try:
        with pytest.raises(CatalogUnavailable) as caught, catalog.session() as session:
            own_id = session.execute(text("SELECT CONNECTION_ID()")).scalar()
            with admin.begin() as connection:
                connection.execute(text(f"KILL {int(own_id or 0)}"))
            session.execute(text("SELECT 1"))
    finally:
        admin.dispose()
        catalog.close()
    url = make_url(mariadb_url)
    message = str(caught.value)
    assert message.startswith(f"catalog database {url.host}:{url.port}: ")
    assert "\n" not in message and str(url.password) not in message


@pytest.mark.parametrize(
    "reason",
    [
        "(2003, \"Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)\")",
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection '
        "refused",
    ],
)
def test_a_server_down_when_a_run_reconnects_is_one_line(tmp_path, reason):
    # What an ingest met when its MariaDB server restarted between two batches (bench/faults.py):
    # the pool reconnects, the connection is refused, and the error is not marked invalidated.
    from sqlalchemy.exc import OperationalError

    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    try:
        with pytest.raises(CatalogUnavailable) as caught, catalog.translated_errors():
            raise OperationalError("SELECT 1", {}, Exception(reason))
    finally:
        catalog.close()
    assert "refused" in str(caught.value) and "\n" not in str(caught.value)


def test_a_full_disk_under_the_catalog_is_one_line_catalog_error(tmp_path):
    """SQLite's own SQLITE_FULL (the database may grow no more pages, as on a full disk) becomes
    CatalogUnavailable, which the pages that write (a rater's answer) turn into "kept, send it
    again"; the row that did not fit is not there."""
    from sqlalchemy import event

    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    with catalog.session() as session:
        session.execute(text("CREATE TABLE scratch (x BLOB)"))

    def no_room(connection, _record):
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages}")

    catalog.engine.dispose()
    event.listen(catalog.engine, "connect", no_room)
    with (
        pytest.raises(CatalogUnavailable, match="database or disk is full"),
        catalog.session() as session,
    ):
        session.execute(text("INSERT INTO scratch VALUES (:x)"), {"x": b"\0" * 200_000})
    event.remove(catalog.engine, "connect", no_room)
    catalog.engine.dispose()
    with catalog.session() as session:
        assert session.execute(text("SELECT count(*) FROM scratch")).scalar() == 0
    catalog.close()
