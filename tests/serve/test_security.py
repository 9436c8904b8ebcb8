"""Who may reach what: loopback by default, an operator token elsewhere, host checks, headers,
and the Turing-test migration on SQLite and MariaDB."""

from __future__ import annotations

import re

import pytest

from pathsynth.errors import ServeError


def app_for(lab, **settings):
    from starlette.testclient import TestClient

    from pathsynth.catalog.workspace import Workspace
    from pathsynth.serve.app import ServeSettings, create_app

    app = create_app(Workspace(lab), ServeSettings(**settings))
    return TestClient(app, base_url="http://127.0.0.1:8000")


def test_another_address_without_an_operator_token_is_refused(lab):
    from pathsynth.serve.app import ServeSettings

    with pytest.raises(ServeError, match=r"serving on 0\.0\.0\.0 .* needs an operator token"):
        ServeSettings(host="0.0.0.0").check()
    with pytest.raises(ServeError, match="at least 16 characters"):
        ServeSettings(host="0.0.0.0", operator_token="short").check()
    ServeSettings(host="127.0.0.1").check()


def test_cli_refuses_to_serve_elsewhere_without_a_token_in_one_line(lab):
    from helpers import run_pathsynth

    done = run_pathsynth("serve", "-w", str(lab), "--host", "0.0.0.0", "--port", "1",
                         env={"PATHSYNTH_OPERATOR_TOKEN": ""})  # fmt: skip
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "needs an operator token" in done.stderr


def test_operator_pages_need_sign_in_when_a_token_is_set(lab):
    secret = "s3cret-operator-token"
    with app_for(lab, host="0.0.0.0", operator_token=secret) as client:
        assert client.get("/images", follow_redirects=False).headers["location"] == "/login"
        assert client.get("/images/1/thumb.jpg").status_code == 403
        assert client.get("/turing/1/results", follow_redirects=False).status_code == 303
        page = client.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([\w-]+)"', page).group(1)
        wrong = client.post("/login", data={"csrf_token": csrf, "token": "nope"})
        assert wrong.status_code == 403
        right = client.post("/login", data={"csrf_token": csrf, "token": secret},
                            follow_redirects=False)  # fmt: skip
        assert right.status_code == 303 and "httponly" in right.headers["set-cookie"].lower()
        assert client.get("/images").status_code == 200


def test_loopback_refuses_foreign_host_headers_and_sets_security_headers(client):
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
    response = client.get("/")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "ps_csrf=" in response.headers["set-cookie"]


def test_a_cross_site_origin_is_refused_even_with_the_token(client):
    page = client.get("/turing").text
    csrf = re.search(r'name="csrf_token" value="([\w-]+)"', page).group(1)
    response = client.post("/turing", data={"csrf_token": csrf, "name": "x"},
                           headers={"Origin": "https://evil.example"})  # fmt: skip
    assert response.status_code == 403


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"], indirect=True)
def test_migration_0003_adds_the_turing_tables_from_0002(backend, tmp_path):
    from alembic import command
    from sqlalchemy import inspect, text

    from pathsynth.catalog.db import (
        Catalog,
        _migrations_config,
        create_catalog_engine,
        schema_revision,
    )
    from pathsynth.catalog.turing import (
        PlannedItem,
        add_rater,
        answers_of_test,
        create_test,
        rater_for_token,
        rater_items,
        record_answer,
    )

    url = f"sqlite:///{tmp_path / 'c.sqlite'}" if backend == "sqlite" else backend
    engine = create_catalog_engine(url)
    config = _migrations_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
    assert schema_revision(engine) == "0002"
    assert "turing_tests" not in inspect(engine).get_table_names()
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO patients (code, key_kind) VALUES ('P1', 'image')"))
        connection.execute(text("INSERT INTO studies (code, patient_id, modality) "
                                "VALUES ('S1', 1, 'histology')"))  # fmt: skip
        connection.execute(text(
            "INSERT INTO images (study_id, store_path, sha256, width, height, channels, bit_depth,"
            " original_mode, original_format, label, origin) VALUES (1, 'a/b.png', 'ab', 8, 8, 3,"
            " 8, 'RGB', 'PNG', 'Größe ✓', 'real')"
        ))  # fmt: skip
    engine.dispose()
    with Catalog(url) as catalog:  # migrates to the head
        assert schema_revision(catalog.engine) == "0004"
        tables = set(inspect(catalog.engine).get_table_names())
        assert {"turing_tests", "turing_raters", "turing_items", "turing_answers"} <= tables
        if backend != "sqlite":
            with catalog.engine.connect() as connection:
                collations = set(connection.execute(text(
                    "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA ="
                    " DATABASE() AND TABLE_NAME LIKE 'turing%'"
                )).scalars())  # fmt: skip
            assert collations == {"utf8mb4_bin"}
        test_id = create_test(catalog, "Prüfung", ["Größe ✓"],
                              [PlannedItem(1, "real", "Größe ✓", "x" * 22)], {})  # fmt: skip
        token = add_rater(catalog, test_id, "Dr. Ødegård")
        rater = rater_for_token(catalog, token)
        assert rater is not None and rater.name == "Dr. Ødegård"
        record_answer(catalog, rater, "x" * 22, "synthetic", "Größe ✓", 5, ["Größe ✓"])
        record_answer(catalog, rater, "x" * 22, "real", None, 2, ["Größe ✓"])  # replaces
        assert [i.called for i in rater_items(catalog, rater)] == ["real"]
        _, answers = answers_of_test(catalog, test_id)
        assert [(a.called, a.called_label, a.confidence) for a in answers] == [("real", None, 2)]
        with catalog.engine.connect() as connection:
            stored = connection.execute(text("SELECT token_sha256 FROM turing_raters")).scalar()
        assert stored != token and len(stored) == 64


def test_the_reader_refuses_writes_on_every_backend(workspace, class_source):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from pathsynth.catalog.api import open_reader
    from pathsynth.catalog.browse import ImageFilter
    from pathsynth.catalog.ingest import IngestOptions, ingest_source
    from pathsynth.errors import CatalogUnavailable

    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    reader = open_reader(workspace)
    try:
        assert reader.images(ImageFilter(label="benign")).total == 4
        # SQLite and MariaDB say so through CatalogUnavailable, PostgreSQL by its own error
        with (
            pytest.raises((CatalogUnavailable, DBAPIError), match=r"(?i)read.?only"),
            reader.catalog.session() as session,
        ):
            session.execute(text("DELETE FROM images"))
        assert reader.images(ImageFilter()).total == 12
    finally:
        reader.close()


def test_the_web_app_reaches_the_catalog_through_its_facade_only():
    import ast
    from pathlib import Path

    import pathsynth.serve
    import pathsynth.turing

    folders = [Path(pathsynth.serve.__file__).parent, Path(pathsynth.turing.__file__).parent]
    for path in (p for folder in folders for p in folder.glob("*.py")):
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        reached = {m for m in modules if m and m.startswith(("sqlalchemy", "pathsynth.catalog"))}
        assert reached <= {"pathsynth.catalog.api"}, (path.name, reached)
