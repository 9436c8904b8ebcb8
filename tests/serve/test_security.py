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


def test_only_loopback_addresses_count_as_loopback_not_names_that_start_with_127():
    from pathsynth.serve.app import ServeSettings
    from pathsynth.serve.security import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1"))
    for host in ("127.0.0.1.nip.example", "127.evil.example", "0.0.0.0", "10.0.0.5", ""):
        assert not is_loopback(host), host
        with pytest.raises(ServeError, match="needs an operator token"):
            ServeSettings(host=host).check()


def test_another_loopback_address_answers_requests_addressed_to_it(lab):
    with app_for(lab, host="127.0.0.2", open_operator=True) as client:
        assert client.get("/", headers={"Host": "127.0.0.2:8000"}).status_code == 200
        assert client.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_cli_refuses_to_serve_elsewhere_without_a_token_in_one_line(lab):
    from helpers import run_pathsynth

    done = run_pathsynth("serve", "-w", str(lab), "--host", "0.0.0.0", "--port", "1",
                         "--no-operator-token", env={"PATHSYNTH_OPERATOR_TOKEN": ""})  # fmt: skip
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "needs an operator token" in done.stderr


def test_a_token_of_spaces_or_a_token_with_an_open_operator_is_refused():
    from pathsynth.serve.app import ServeSettings

    with pytest.raises(ServeError, match="16 characters other than spaces"):
        ServeSettings(operator_token=" " * 16).check()
    with pytest.raises(ServeError, match="exclude each other"):
        ServeSettings(operator_token="x" * 16, open_operator=True).check()


def test_without_a_token_or_an_open_operator_no_request_is_the_operator(lab):
    """The default of the app itself: nobody is the operator, however local the request."""
    with app_for(lab) as client:
        response = client.get("/images", follow_redirects=False)
        assert response.status_code == 403 and "no operator sign-in" in response.text
        assert client.get("/turing/1/answers.csv").status_code == 403


def test_a_plain_reverse_proxy_or_forwarder_reaches_no_operator_page_with_a_token(lab):
    """nginx's bare ``proxy_pass`` or socat adds no forwarding header and may set Host to
    localhost: a request through it looks local. With the token every serve now has, it still
    gets no operator page, the answer key included, until it signs in."""
    secret = "t" * 24
    with app_for(lab, operator_token=secret) as client:
        for headers in ({}, {"Host": "localhost"}, {"Host": "127.0.0.1:8000"}):
            for page in ("/", "/images", "/experiments", "/turing"):
                response = client.get(page, headers=headers, follow_redirects=False)
                assert response.status_code == 303, (page, headers)
                assert response.headers["location"] == "/login"
            assert client.get("/turing/1/answers.csv", headers=headers).status_code == 403


def test_the_printed_sign_in_link_signs_in_and_drops_the_token_from_the_address(lab):
    secret = "link-token-" + "x" * 16
    with app_for(lab, operator_token=secret) as client:
        wrong = client.get("/login?token=nope", follow_redirects=False)
        assert wrong.status_code == 403
        signed = client.get(f"/login?token={secret}", follow_redirects=False)
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        assert client.get("/images").status_code == 200  # the cookie it set


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


@pytest.mark.parametrize(
    "header", [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
               {"X-Real-IP": "203.0.113.9"}, {"X-Forwarded-Host": "lab.example"}],
)  # fmt: skip
def test_a_request_forwarded_by_a_proxy_gets_no_operator_page_without_a_token(client, header):
    # nginx forwards to 127.0.0.1:8000 with "Host: 127.0.0.1:8000" by default, so the Host check
    # passes and only the forwarding headers tell that the browser is somewhere else
    for path in ("/", "/images", "/images/1/thumb.jpg", "/turing", "/turing/1/results"):
        response = client.get(path, headers=header, follow_redirects=False)
        assert response.status_code == 403, path
        assert "PATHSYNTH_OPERATOR_TOKEN" in response.text
    assert client.get("/images").status_code == 200  # the operator on this machine, unproxied


def test_behind_a_proxy_the_signed_in_operator_and_a_rater_still_get_their_pages(lab):
    from lab import EXPERIMENT

    from pathsynth.catalog.workspace import Workspace
    from pathsynth.turing.design import make_test_from_experiment

    made = make_test_from_experiment(Workspace(lab), EXPERIMENT, "proxied", 1, ["ann"])
    secret = "s3cret-operator-token"
    proxy = {"X-Forwarded-For": "203.0.113.9"}
    with app_for(lab, operator_token=secret) as client:
        client.headers.update(proxy)
        client.get(f"/turing/join/{made.tokens['ann']}")
        client.cookies.set("ps_rater", made.tokens["ann"], path="/turing/")
        assert client.get(f"/turing/{made.test_id}/rate").status_code == 200
        # the rater's cookie (sent to every /turing/ page) opens no operator page
        for page in (f"/turing/{made.test_id}", f"/turing/{made.test_id}/results", "/turing"):
            assert client.get(page, follow_redirects=False).headers["location"] == "/login"
        for data in (f"/turing/{made.test_id}/answers.csv", f"/turing/{made.test_id}/summary.csv"):
            assert client.get(data).status_code == 403
        assert client.get("/images", follow_redirects=False).headers["location"] == "/login"
        csrf = re.search(r'name="csrf_token" value="([\w-]+)"', client.get("/login").text)
        client.post("/login", data={"csrf_token": csrf.group(1), "token": secret})
        assert client.get("/images").status_code == 200


def test_a_rater_on_the_default_loopback_server_never_gets_the_answer_key(lab):
    """``serve`` as the README starts it: 127.0.0.1, a token made at start. A rater on the lab's
    machine (no proxy) holds a rater cookie, never the operator's."""
    from lab import EXPERIMENT

    from pathsynth.catalog.workspace import Workspace
    from pathsynth.turing.design import make_test_from_experiment

    made = make_test_from_experiment(Workspace(lab), EXPERIMENT, "local", 1, ["bo"])
    with app_for(lab, operator_token="made-at-start-" + "y" * 16) as client:
        client.get(f"/turing/join/{made.tokens['bo']}")
        client.cookies.set("ps_rater", made.tokens["bo"], path="/turing/")
        assert client.get(f"/turing/{made.test_id}/rate").status_code == 200
        for data in (f"/turing/{made.test_id}/answers.csv", f"/turing/{made.test_id}/summary.csv"):
            assert client.get(data).status_code == 403
        results = client.get(f"/turing/{made.test_id}/results", follow_redirects=False)
        assert results.headers["location"] == "/login"


def test_loopback_refuses_foreign_host_headers_and_sets_security_headers(client):
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
    response = client.get("/")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "ps_csrf=" in response.headers["set-cookie"]
    assert response.headers["cache-control"] == "no-store"  # pages hold links and codes
    thumb = client.get("/images/1/thumb.jpg")
    assert thumb.status_code == 200 and thumb.headers["cache-control"] == "private, max-age=86400"


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
    from pathsynth.turing.store import PlannedItem, TuringBook

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
        assert schema_revision(catalog.engine) == "0007"
        tables = set(inspect(catalog.engine).get_table_names())
        assert {"turing_tests", "turing_raters", "turing_items", "turing_answers"} <= tables
        if backend != "sqlite":
            with catalog.engine.connect() as connection:
                collations = set(connection.execute(text(
                    "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA ="
                    " DATABASE() AND TABLE_NAME LIKE 'turing%'"
                )).scalars())  # fmt: skip
            assert collations == {"utf8mb4_bin"}
        book = TuringBook(catalog, tmp_path)
        test_id = book.create("Prüfung", ["Größe ✓"],
                              [PlannedItem(1, "real", "Größe ✓", "x" * 22)], {})  # fmt: skip
        token = book.add_rater(test_id, "Dr. Ødegård")
        rater = book.rater(token)
        assert rater is not None and rater.name == "Dr. Ødegård"
        book.answer(rater, "x" * 22, "synthetic", "Größe ✓", 5, ["Größe ✓"])
        book.answer(rater, "x" * 22, "real", None, 2, ["Größe ✓"])  # replaces
        assert [i.called for i in book.items_for(rater)] == ["real"]
        _, answers = book.answers(test_id)
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
    """The web app and the Turing test reach the catalog through its facade; the one exception is
    ``turing.store``, the owner of the Turing tables (the only tables the web app writes), which
    reaches them through the catalog's models and sessions and nothing else of the catalog."""
    import ast
    from pathlib import Path

    import pathsynth.serve
    import pathsynth.turing

    tables = {"sqlalchemy", "sqlalchemy.exc", "sqlalchemy.orm", "pathsynth.catalog.db",
              "pathsynth.catalog.models", "pathsynth.catalog.workspace"}  # fmt: skip
    folders = [Path(pathsynth.serve.__file__).parent, Path(pathsynth.turing.__file__).parent]
    for path in (p for folder in folders for p in folder.glob("*.py")):
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        reached = {m for m in modules if m and m.startswith(("sqlalchemy", "pathsynth.catalog"))}
        allowed = tables if path == Path(pathsynth.turing.__file__).parent / "store.py" else set()
        assert reached <= {"pathsynth.catalog.api"} | allowed, (path.name, reached)


def test_ids_past_any_integer_range_are_404_and_odd_digits_are_no_500(lab):
    from starlette.testclient import TestClient

    from pathsynth.catalog.workspace import Workspace
    from pathsynth.serve.app import ServeSettings, create_app

    huge = "9" * 20
    app = create_app(Workspace(lab), ServeSettings(open_operator=True))
    with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as client:
        for path in (f"/images/{huge}", f"/images/{huge}/thumb.jpg", f"/images/{huge}/view.jpg",
                     f"/turing/{huge}", f"/turing/{huge}/results", f"/turing/{huge}/rate",
                     f"/turing/{huge}/summary.csv", "/images/٣", "/images/²"):  # fmt: skip
            assert client.get(path).status_code == 404, path
        for query in ("after=²", "before=٣", f"after={huge}"):
            assert client.get(f"/images?{query}").status_code == 200, query
        csrf = re.search(r'name="csrf_token" value="([\w-]+)"', client.get("/turing").text)
        form = {"csrf_token": csrf.group(1), "name": "n", "experiment": "demo", "raters": "a"}
        for per_class in ("²", "٣"):
            refused = client.post("/turing", data={**form, "per_class": per_class})
            assert refused.status_code == 400 and "must be a whole number" in refused.text


def test_behind_a_proxy_the_base_url_is_an_accepted_host_and_origin_and_no_other(lab):
    from lab import EXPERIMENT

    from pathsynth.catalog.workspace import Workspace
    from pathsynth.turing.design import make_test_from_experiment

    made = make_test_from_experiment(Workspace(lab), EXPERIMENT, "via-proxy", 1, ["ann"])
    with app_for(lab, base_url="https://lab.example") as client:
        client.headers.update({"X-Forwarded-For": "203.0.113.9"})
        assert client.get("/login", headers={"Host": "lab.example"}).status_code == 200
        assert client.get("/login", headers={"Host": "evil.example"}).status_code == 400
        client.get(f"/turing/join/{made.tokens['ann']}")
        client.cookies.set("ps_rater", made.tokens["ann"], path="/turing/")
        page = client.get(f"/turing/{made.test_id}/rate").text
        form = {"csrf_token": re.search(r'name="csrf_token" value="([\w-]+)"', page).group(1),
                "item": re.search(r'name="item" value="([\w-]+)"', page).group(1),
                "called": "real"}  # fmt: skip
        evil = client.post(f"/turing/{made.test_id}/rate", data=form,
                           headers={"Origin": "https://evil.example"})  # fmt: skip
        assert evil.status_code == 403
        # nginx's default: Host is the address it forwards to, Origin the site the rater opened
        ours = client.post(f"/turing/{made.test_id}/rate", data=form, follow_redirects=False,
                           headers={"Origin": "https://lab.example"})  # fmt: skip
        assert ours.status_code == 303


def test_the_thumbnail_cache_of_a_read_only_workspace_is_a_private_folder_of_this_user(
    tmp_path, monkeypatch
):
    import os
    import stat
    import tempfile
    from types import SimpleNamespace

    from pathsynth.serve.app import thumbnail_folder

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    space = SimpleNamespace(writable=False, root=tmp_path / "ws")
    folder = thumbnail_folder(space)
    assert folder.parent == tmp_path and stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o755)  # made by an earlier version: others could read the thumbnails
    assert stat.S_IMODE(thumbnail_folder(space).stat().st_mode) == 0o700
    folder.rmdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", folder)  # planted by someone sharing the temporary folder
    with pytest.raises(ServeError, match="not a folder of this user's; remove it"):
        thumbnail_folder(space)


def test_serve_on_a_busy_port_fails_in_one_line_before_saying_it_serves(lab):
    """Before, ``serve`` printed "serving ..." and the sign-in link, then uvicorn failed."""
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "pathsynth", "serve", "-w", str(lab), "--port", str(port)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1
    assert "serving" not in done.stdout and "sign-in" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot serve on 127.0.0.1:{port}" in lines[0], done.stderr
    assert "--port" in lines[0]


def test_guessing_the_operator_token_is_throttled_and_a_stale_cookie_is_dropped(lab):
    """300 guesses took 2.4 s. Now 10 failures a minute (wrong tokens at /login or wrong
    operator cookies) close sign-in, the right token included, until the window passes; a
    cookie of an earlier server is deleted by the redirect so it is not counted on every page."""
    from pathsynth.serve.security import OPERATOR_COOKIE, SignInGuard

    secret = "throttle-token-" + "x" * 16
    now = [1000.0]
    with app_for(lab, operator_token=secret) as client:
        client.app.state.sign_in_guard = SignInGuard(limit=10, window=60, clock=lambda: now[0])
        for _ in range(9):
            assert client.get("/login?token=nope").status_code == 403
        client.cookies.set(OPERATOR_COOKIE, "an-old-servers-token-xxxxxxxx")
        stale = client.get("/images", follow_redirects=False)  # the 10th failure
        assert stale.status_code == 303 and f"{OPERATOR_COOKIE}=;" in stale.headers["set-cookie"]
        client.cookies.clear()
        refused = client.get(f"/login?token={secret}", follow_redirects=False)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
        assert "Too many failed sign-ins" in refused.text
        now[0] += 61
        signed = client.get(f"/login?token={secret}", follow_redirects=False)
        assert signed.status_code == 303
        assert client.get("/images").status_code == 200
