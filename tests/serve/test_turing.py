"""The visual Turing test: making one (CLI), its blinded items, raters through the pages,
resuming, isolation between tests, CSRF, and results equal to figures from the stored answers."""

from __future__ import annotations

import csv
import io
import math
import re
from types import SimpleNamespace

import pytest
from helpers import run_pathsynth
from lab import CLASSES, EXPERIMENT
from PIL import Image

LINK = re.compile(r"(\w+): http://127\.0\.0\.1:8000/turing/join/([\w-]+)")
CSRF = re.compile(r'name="csrf_token" value="([\w-]+)"')
ITEM = re.compile(r'name="item" value="([\w-]+)"')


def make(lab, name="t1", raters=("ann", "bob"), per_class=2):
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.turing.design import make_test_from_experiment

    return make_test_from_experiment(Workspace(lab), EXPERIMENT, name, per_class, list(raters))


def answer_all(client, test_id, token, called_for=None, stop_after=None):
    """Answer as one rater through the pages; returns the items answered in order."""
    assert client.get(f"/turing/join/{token}", follow_redirects=False).status_code == 303
    client.cookies.set("ps_rater", token, path="/turing/")
    seen = []
    while True:
        page = client.get(f"/turing/{test_id}/rate").text
        item = ITEM.search(page)
        if item is None or (stop_after is not None and len(seen) == stop_after):
            return seen
        called = called_for(len(seen)) if called_for else "real"
        form = {"csrf_token": CSRF.search(page).group(1), "item": item.group(1),
                "called": called, "label": CLASSES[len(seen) % 3], "confidence": "4"}  # fmt: skip
        response = client.post(f"/turing/{test_id}/rate", data=form, follow_redirects=False)
        assert response.status_code == 303
        seen.append(item.group(1))


def expected_proportion(k: int, n: int) -> str:
    """How the results page shows ``k`` of ``n`` with its 95% Wilson interval (scipy's)."""
    from scipy.stats import binomtest

    if n == 0:
        return 'n/a <span class="ci">[n/a, n/a]</span> <span class="n">0/0</span>'
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return (f'{100 * k / n:.1f}% <span class="ci">[{100 * ci.low:.1f}%, {100 * ci.high:.1f}%]'
            f'</span> <span class="n">{k}/{n}</span>')  # fmt: skip


def test_cli_makes_a_test_and_prints_secret_links_stored_hashed(lab):
    done = run_pathsynth("turing", "create", "-w", str(lab), "--name", "pilot", "--experiment",
                         EXPERIMENT, "--per-class", "2", "--raters", "ann,bob")  # fmt: skip
    assert done.returncode == 0, done.stderr
    links = dict(LINK.findall(done.stdout))
    assert set(links) == {"ann", "bob"} and "12 images of 3 classes" in done.stdout
    catalog_bytes = (lab / "catalog.sqlite").read_bytes()
    assert all(token.encode() not in catalog_bytes for token in links.values())
    again = run_pathsynth("turing", "create", "-w", str(lab), "--name", "pilot", "--experiment",
                          EXPERIMENT, "--per-class", "2", "--raters", "cy")  # fmt: skip
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        "error: a Turing test named 'pilot' already exists"
    ]
    too_many = run_pathsynth("turing", "create", "-w", str(lab), "--name", "big", "--experiment",
                             EXPERIMENT, "--per-class", "5", "--raters", "cy")  # fmt: skip
    assert "has 4 real images, fewer than the 5 asked for" in too_many.stderr


def test_items_are_blinded_same_size_plain_pngs_under_opaque_ids(lab):
    made = make(lab)
    files = sorted((lab / "turing" / str(made.test_id)).glob("*.png"))
    assert len(files) == made.items == 2 * 2 * 3
    for path in files:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            assert image.size == (32, 32) and image.mode == "RGB"
            assert not image.info  # no text, gamma, time or profile chunk
        chunks = re.findall(rb"(tEXt|zTXt|iTXt|tIME|gAMA|iCCP|eXIf|pHYs)", data)
        assert chunks == []
        assert re.fullmatch(r"[\w-]{22}", path.stem)


def test_two_raters_answer_resume_and_results_match_the_stored_answers(client, lab):
    made = make(lab)
    ann, bob = made.tokens["ann"], made.tokens["bob"]
    ann_calls = lambda i: "synthetic" if i % 2 else "real"  # noqa: E731
    first = answer_all(client, made.test_id, ann, called_for=ann_calls, stop_after=5)
    assert len(first) == 5
    client.cookies.clear()
    rest = answer_all(client, made.test_id, ann, called_for=ann_calls)  # resumes
    assert len(rest) == made.items - 5 and not set(first) & set(rest)
    assert "All 12 images answered" in client.get(f"/turing/{made.test_id}/rate").text
    client.cookies.clear()
    bob_order = answer_all(
        client, made.test_id, bob, called_for=lambda i: "synthetic" if i % 3 else "real"
    )
    assert sorted(bob_order) == sorted(first + rest) and bob_order != first + rest  # own order

    from pathsynth.catalog.workspace import Workspace
    from pathsynth.turing.store import TuringBook

    with TuringBook.open(Workspace(lab)) as book:
        raters, stored = book.answers(made.test_id)
    assert raters == ["ann", "bob"] and len(stored) == 24
    page = client.get(f"/turing/{made.test_id}/results").text
    # every row of the figures table, recomputed here from the stored answers, with scipy's
    # Wilson interval
    groups = [("overall", "", "")] + [("rater", r, "") for r in raters]
    groups += [("class", "", c) for c in CLASSES] + [("rater_class", r, c) for r in raters for c in CLASSES]  # fmt: skip
    for group, rater, label in groups:
        mine = [a for a in stored if rater in ("", a.rater) and label in ("", a.label)]
        row = re.search(rf'<tr class="{group}" data-rater="{rater}" data-class="{label}">.*?</tr>',
                        page, re.S).group(0)  # fmt: skip
        assert re.search(rf'class="answers">{len(mine)}<', row), (group, rater, label)
        real = [a for a in mine if a.truth == "real"]
        synthetic = [a for a in mine if a.truth == "synthetic"]
        for cell, k, n in (
            ("accuracy", sum(a.called == a.truth for a in mine), len(mine)),
            ("sensitivity", sum(a.called == "synthetic" for a in synthetic), len(synthetic)),
            ("specificity", sum(a.called == "real" for a in real), len(real)),
        ):
            shown = re.search(rf'<td class="{cell}">(.*?)</td>', row, re.S).group(1)
            assert shown == expected_proportion(k, n), (group, rater, label, cell)
    for label in CLASSES:  # class agreement: class answers on synthetic images naming their class
        named = [
            a for a in stored if a.truth == "synthetic" and a.label == label and a.called_label
        ]
        right = sum(a.called_label == label for a in named)
        row = re.search(rf"<tr><td>{label}</td><td>(.*?)</td>", page, re.S).group(1)
        assert row == expected_proportion(right, len(named))
    # two raters: Fleiss' kappa is Scott's pi, observed agreement against pooled chance
    by_item = {}
    for a in stored:
        by_item.setdefault(a.item, []).append(a.called)
    observed = sum(len(set(calls)) == 1 for calls in by_item.values()) / len(by_item)
    synthetic_share = sum(a.called == "synthetic" for a in stored) / len(stored)
    chance = synthetic_share**2 + (1 - synthetic_share) ** 2
    kappa = (observed - chance) / (1 - chance)
    shown = re.search(r"Fleiss' kappa on real/synthetic: <b>([-\d.na/]+)</b>", page).group(1)
    assert shown == f"{kappa:.3f}" and not math.isnan(kappa)
    answers = list(
        csv.DictReader(io.StringIO(client.get(f"/turing/{made.test_id}/answers.csv").text))
    )
    assert len(answers) == 24
    assert sum(int(r["correct"]) for r in answers) == sum(a.called == a.truth for a in stored)
    summary = client.get(f"/turing/{made.test_id}/summary.csv").text
    assert summary.splitlines()[0].startswith("group,rater,class,answers,accuracy")
    cli = run_pathsynth("turing", "results", "-w", str(lab), "t1")
    assert cli.returncode == 0 and "Fleiss' kappa (real/synthetic)" in cli.stdout


def test_a_rater_token_opens_only_its_own_test(client, lab):
    one, two = make(lab, "one"), make(lab, "two", raters=("cy",))
    client.get(f"/turing/join/{one.tokens['ann']}")
    client.cookies.set("ps_rater", one.tokens["ann"], path="/turing/")
    assert client.get(f"/turing/{one.test_id}/rate").status_code == 200
    assert client.get(f"/turing/{two.test_id}/rate").status_code == 404
    other_item = next((lab / "turing" / str(two.test_id)).glob("*.png")).stem
    assert client.get(f"/turing/{two.test_id}/items/{other_item}.png").status_code == 404
    assert client.get(f"/turing/{one.test_id}/items/{other_item}.png").status_code == 404
    assert client.get("/turing/join/not-a-token").status_code == 404


def test_post_without_or_with_a_wrong_csrf_token_is_refused(client, lab):
    made = make(lab)
    client.get(f"/turing/join/{made.tokens['ann']}")
    client.cookies.set("ps_rater", made.tokens["ann"], path="/turing/")
    page = client.get(f"/turing/{made.test_id}/rate").text
    item = ITEM.search(page).group(1)
    for extra in ({}, {"csrf_token": "forged"}):
        response = client.post(
            f"/turing/{made.test_id}/rate", data={"item": item, "called": "real", **extra}
        )
        assert response.status_code == 403
    refused = client.post("/turing", data={"name": "x", "experiment": EXPERIMENT, "per_class": "1",
                                           "raters": "z"})  # fmt: skip
    assert refused.status_code == 403
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.turing.store import TuringBook

    with TuringBook.open(Workspace(lab)) as book:
        assert book.answers(made.test_id)[1] == []
        assert [t.name for t in book.tests()] == ["t1"]


def test_operator_adds_a_rater_through_the_form(client, lab):
    made = make(lab)
    page = client.get(f"/turing/{made.test_id}").text
    token = CSRF.search(page).group(1)
    added = client.post(f"/turing/{made.test_id}", data={"csrf_token": token, "name": "dee"})
    link = re.search(r"/turing/join/([\w-]+)", added.text)
    assert added.status_code == 200 and link is not None
    assert client.get(f"/turing/join/{link.group(1)}", follow_redirects=False).status_code == 303
    twice = client.post(f"/turing/{made.test_id}", data={"csrf_token": token, "name": "dee"})
    assert twice.status_code == 400 and "already has a rater named" in twice.text


def test_answers_outside_the_offered_choices_are_refused(client, lab):
    made = make(lab)
    client.get(f"/turing/join/{made.tokens['ann']}")
    client.cookies.set("ps_rater", made.tokens["ann"], path="/turing/")
    page = client.get(f"/turing/{made.test_id}/rate").text
    base = {"csrf_token": CSRF.search(page).group(1), "item": ITEM.search(page).group(1)}
    for bad, message in (({"called": "maybe"}, "answer &#39;real&#39; or &#39;synthetic&#39;"),
                         ({"called": "real", "label": "Other"}, "not one of this test"),
                         ({"called": "real", "confidence": "9"}, "confidence must be 1 to 5")):  # fmt: skip
        response = client.post(f"/turing/{made.test_id}/rate", data={**base, **bad})
        assert response.status_code == 400 and message in response.text


@pytest.mark.parametrize("per_class", [0, 501])
def test_impossible_sizes_are_refused(lab, per_class):
    from pathsynth.errors import TuringError

    with pytest.raises(TuringError, match="images per class must be 1 to 500"):
        make(lab, per_class=per_class)


def test_the_operator_makes_a_test_through_the_form(client, lab):
    page = client.get("/turing").text
    form = {"csrf_token": CSRF.search(page).group(1), "name": "from-form",
            "experiment": EXPERIMENT, "per_class": "1", "raters": "ann, bob", "seed": "4"}  # fmt: skip
    made = client.post("/turing", data=form)
    assert made.status_code == 200
    links = re.findall(r"/turing/join/([\w-]+)", made.text)
    assert len(links) == 2
    assert ">from-form</a>" in client.get("/turing").text
    assert "No test yet" not in client.get("/turing").text
    bad = client.post("/turing", data={**form, "name": "other", "experiment": "nope"})
    assert bad.status_code == 400 and "no experiment named &#39;nope&#39;" in bad.text


def test_real_items_are_brought_to_the_configs_pixel_size_from_each_images_own(lab):
    import dataclasses

    import numpy as np

    from pathsynth.catalog.api import generated_images, split_fold
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.imaging.decode import load_rgb
    from pathsynth.imaging.patches import PreprocessConfig, preprocess_image
    from pathsynth.turing.design import make_test

    space = Workspace(lab)
    # the inputs were taken at 1 um/px from fields recorded at 0.4 um/px: shrunk 2.5 times
    preprocess = PreprocessConfig(mode="pad", size=32, pixel_size_um=1.0)
    real = [
        dataclasses.replace(i, pixel_size_um=0.4) for i in split_fold(space, "demo-real", "test")
    ]
    made = make_test(space, "at-1um", real, generated_images(space, "cd" * 16), 1, ["ann"],
                     preprocess, classes=["benign"])  # fmt: skip
    assert made.items == 2
    files = [Image.open(p) for p in (lab / "turing" / str(made.test_id)).glob("*.png")]
    shown = {np.asarray(f.convert("RGB")).tobytes() for f in files}
    by_scale = PreprocessConfig(mode="pad", size=32, scale=2.5)
    expected = [
        preprocess_image(load_rgb(i.path), by_scale, i.sha256)[0].permute(1, 2, 0).numpy().tobytes()
        for i in real
        if i.label == "benign"
    ]
    assert len(shown & set(expected)) == 1  # the real item is one of them, shrunk 2.5 times


def test_the_same_answer_posted_twice_at_once_is_stored_once_not_a_crash(lab, monkeypatch):
    from sqlalchemy.orm import Session

    from pathsynth.catalog.workspace import Workspace
    from pathsynth.turing.store import TuringBook

    made = make(lab)
    with TuringBook.open(Workspace(lab)) as book:
        rater = book.rater(made.tokens["ann"])
        item = next((lab / "turing" / str(made.test_id)).glob("*.png")).stem
        book.answer(rater, item, "real", None, None, list(CLASSES))
        # the second of two simultaneous posts looked before the first had stored its answer
        real_get, looked = Session.get, []

        def stale_get(self, *args, **kwargs):
            if not looked:
                looked.append(True)
                return None
            return real_get(self, *args, **kwargs)

        monkeypatch.setattr(Session, "get", stale_get)
        book.answer(rater, item, "synthetic", "insitu", 2, list(CLASSES))
        _, answers = book.answers(made.test_id)
    assert looked and [(a.called, a.called_label, a.confidence) for a in answers] == [
        ("synthetic", "insitu", 2)
    ]


def test_a_test_made_twice_at_once_under_one_name_is_refused_in_one_line(lab, monkeypatch):
    from sqlalchemy.orm import Session

    from pathsynth.errors import TuringError

    make(lab, name="twice")
    # the second of two simultaneous forms looked for the name before the first had stored it
    real_scalar, looked = Session.scalar, []

    def stale_scalar(self, statement, *args, **kwargs):
        if not looked and "FROM turing_tests" in str(statement):
            looked.append(True)
            return None
        return real_scalar(self, statement, *args, **kwargs)

    monkeypatch.setattr(Session, "scalar", stale_scalar)
    with pytest.raises(TuringError, match="a Turing test named 'twice' already exists"):
        make(lab, name="twice")
    assert looked


def test_a_test_of_an_experiment_named_by_a_path_is_refused(lab):
    """``--experiment ../other`` reached outside the workspace."""
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.errors import DataError
    from pathsynth.turing.design import make_test_from_experiment

    for name in ("../outside", "/etc", "a/b"):
        with pytest.raises(DataError, match="may hold letters, digits"):
            make_test_from_experiment(Workspace(lab), name, "t", 1, ["ann"])


def test_a_real_patch_larger_than_the_generated_images_is_cropped_not_shrunk(tmp_path):
    """Resizing a 128 px real tile to 64 px showed tissue at half the generated images' scale
    (a tell for raters); the generator learnt from crops, so the rater sees a centre crop."""
    import numpy as np
    from PIL import Image

    from pathsynth.imaging.patches import PreprocessConfig
    from pathsynth.turing.design import display_pixels

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    path = tmp_path / "field.png"
    Image.fromarray(pixels).save(path)
    shown = display_pixels(path, "real", PreprocessConfig(mode="resize", size=128), "x", 64)
    assert shown.shape == (64, 64, 3)
    assert np.array_equal(shown, pixels[32:96, 32:96])
    small = display_pixels(path, "real", PreprocessConfig(mode="resize", size=32), "x", 64)
    assert small.shape == (64, 64, 3)  # smaller than the generated side: brought up to it


@pytest.mark.parametrize(
    ("cause", "pragma"),
    [
        ("a read-only catalog", "PRAGMA query_only = ON"),
        ("a full disk", "PRAGMA max_page_count = 1"),
    ],
)
def test_an_answer_the_catalog_cannot_store_is_kept_in_the_page_and_stored_later(
    client, lab, cause, pragma
):
    """The catalog refuses the write for real (SQLite's own read-only and SQLITE_FULL errors): the
    rater gets 503 and the same item with their choices still made, nothing half stored; once the
    catalog can be written again the same form stores it."""
    from sqlalchemy import event

    made = make(lab)
    client.get(f"/turing/join/{made.tokens['ann']}")
    client.cookies.set("ps_rater", made.tokens["ann"], path="/turing/")
    page = client.get(f"/turing/{made.test_id}/rate").text
    item = ITEM.search(page).group(1)
    form = {"csrf_token": CSRF.search(page).group(1), "item": item, "called": "synthetic",
            "label": CLASSES[1], "confidence": "2"}  # fmt: skip
    engine = client.app.state.book.catalog.engine

    def refuse_writes(connection, _record):
        connection.execute("PRAGMA query_only = ON")

    engine.dispose()
    event.listen(engine, "connect", refuse_writes)
    try:
        refused = client.post(f"/turing/{made.test_id}/rate", data=form, follow_redirects=False)
    finally:
        event.remove(engine, "connect", refuse_writes)
        engine.dispose()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "60"
    assert "your answer was not stored" in refused.text and "sqlite" not in refused.text
    assert ITEM.search(refused.text).group(1) == item
    assert 'value="synthetic" checked' in refused.text and 'value="2" checked' in refused.text
    assert f'value="{CLASSES[1]}" selected' in refused.text
    assert client.app.state.book.answers(made.test_id)[1] == []  # nothing half stored
    stored = client.post(f"/turing/{made.test_id}/rate", data=form, follow_redirects=False)
    assert stored.status_code == 303
    answers = client.app.state.book.answers(made.test_id)[1]
    assert [(a.item, a.called, a.confidence) for a in answers] == [(item, "synthetic", 2)]


def test_serve_warns_at_start_when_answers_cannot_be_stored(lab, monkeypatch):
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.serve import app as serve_app

    space = Workspace(lab)
    assert serve_app.answer_warnings(space) == []
    monkeypatch.setattr(Workspace, "writable", property(lambda self: False))
    assert (
        "catalog is read-only, so raters' answers will be refused"
        in serve_app.answer_warnings(space)[0]
    )
    monkeypatch.setattr(Workspace, "writable", property(lambda self: True))
    monkeypatch.setattr(serve_app.shutil, "disk_usage", lambda path: SimpleNamespace(free=10 << 20))
    assert "has 10 MB free" in serve_app.answer_warnings(space)[0]
