"""The catalog browser through the app: filters, keyset pages, image pages, thumbnails, charts,
experiments and runs, on the lab workspace (unit tests with Starlette's test client)."""

from __future__ import annotations

import io
import re

import pytest
from lab import CLASSES, GENERATED_PER_CLASS, REAL_PER_CLASS, RUN_NAME
from PIL import Image

TILE = re.compile(r'data-id="(\d+)"')


def tile_ids(html: str) -> list[int]:
    return [int(i) for i in TILE.findall(html)]


def test_overview_charts_count_images_per_class_and_origin(client):
    page = client.get("/").text
    total = 3 * REAL_PER_CLASS + 1 + 3 * GENERATED_PER_CLASS
    assert f"{total} images" in page
    assert "<svg" in page and "Images per origin" in page
    for origin, n in (("real", 3 * REAL_PER_CLASS), ("affine", 1), ("synthetic", 18)):
        assert re.search(rf">{origin}</text>.*?<text[^>]*>{n}</text>", page, re.S)


def test_filters_narrow_the_list_by_class_origin_split_and_fold(client):
    synthetic = tile_ids(client.get("/images?origin=synthetic&label=insitu").text)
    assert len(synthetic) == GENERATED_PER_CLASS
    test_fold = client.get("/images?split=demo-real&fold=test&label=benign")
    assert "4 images" in test_fold.text  # half of 8, image-level split
    train_ids = set(tile_ids(client.get("/images?split=demo-real&fold=train").text))
    test_ids = set(tile_ids(client.get("/images?split=demo-real&fold=test").text))
    assert train_ids and test_ids and not train_ids & test_ids
    assert len(train_ids | test_ids) == 3 * REAL_PER_CLASS
    assert tile_ids(client.get("/images?label=no-such-class").text) == []


def test_keyset_pages_visit_every_image_once_forwards_and_back(client):
    from pathsynth.catalog.browse import ImageFilter

    reader = client.app.state.reader
    seen, after, pages = [], None, []
    while True:
        page = reader.images(ImageFilter(), after=after, limit=7)
        pages.append(page)
        seen += [i.image_id for i in page.images]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == pages[0].total
    back = reader.images(ImageFilter(), before=pages[2].prev_before, limit=7)
    assert [i.image_id for i in back.images] == [i.image_id for i in pages[1].images]
    html = client.get(f"/images?origin=real&after={pages[0].next_after}").text
    assert 'rel="prev"' in html and "origin=real" in html


def test_image_page_shows_features_and_lineage(client):
    affine = tile_ids(client.get("/images?origin=affine").text)[0]
    page = client.get(f"/images/{affine}").text
    assert 'href="/images/1"' in page  # its parent
    assert "angle=12.5000" in page and "hflip=True" in page
    assert "nuclei_count" in page and "glcm_contrast" in page
    parent = client.get("/images/1").text
    assert f'href="/images/{affine}"' in parent  # its child
    generated = tile_ids(client.get("/images?origin=synthetic").text)[0]
    page = client.get(f"/images/{generated}").text
    assert f"{RUN_NAME}-cdcdcdcdcdcd" in page
    assert re.search(r"checkpoint step</th><td>40<", page) and re.search(r"seed</th><td>3<", page)


def test_image_page_shows_selection_scores_where_the_catalog_has_them(client, lab):
    from pathsynth.catalog.api import SelectionRow, store_selection
    from pathsynth.catalog.workspace import Workspace

    generated = tile_ids(client.get("/images?origin=synthetic").text)[:2]
    assert 'id="selection"' not in client.get(f"/images/{generated[0]}").text
    rows = [
        SelectionRow(generated[0], 0.8125, 0.5, 1.25, 2.0, 0.9, False, True, "kept"),
        SelectionRow(generated[1], 0.125, 0.5, 3.5, 2.0, 0.1, True, False, "near-copy+confidence"),
    ]
    store_selection(Workspace(lab), "demo", rows, {"preset": "default"})
    kept = client.get(f"/images/{generated[0]}").text
    assert 'id="selection"' in kept and "kept (kept)" in kept
    assert "0.812 (0.500)" in kept and "1.250 (2.000)" in kept
    rejected = client.get(f"/images/{generated[1]}").text
    assert "rejected (near-copy+confidence)" in rejected and "near-copy</td>" in rejected


def test_thumbnails_are_made_once_cached_on_disk_and_carry_no_metadata(client, lab):
    first = client.get("/images/2/thumb.jpg")
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    cached = list((lab / "cache" / "thumbnails").glob("*.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == first.content
    assert not list((lab / "cache" / "thumbnails").glob(".*"))  # no temporary file left
    with Image.open(io.BytesIO(first.content)) as image:
        assert max(image.size) <= 256 and not image.info.get("exif")
    again = client.get("/images/2/thumb.jpg", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(
    "url",
    [
        "/images/999999", "/images/999999/thumb.jpg", "/images/-1", "/images/abc",
        "/images/..%2F..%2Fpathsynth.json", "/images/1/..%2F..%2Fcatalog.sqlite",
        "/experiments/..%2F..", "/experiments/demo/report/..%2Fstate.json",
        "/experiments/demo/report/%2Fetc%2Fpasswd", "/runs/..%2Fexperiments", "/runs/x/grids/9.png",
        f"/runs/{RUN_NAME}/grids/7.png", "/patients/P000", "/studies/..%2F..",
        "/static/..%2F..%2Fserve%2Fapp.py", "/turing/1/items/..%2F..%2Fpathsynth.json.png",
    ],
)  # fmt: skip
def test_traversal_and_guessed_ids_get_404(client, url):
    response = client.get(url)
    assert response.status_code == 404, url
    assert "salt" not in response.text


def test_patients_are_codes_only_with_studies_and_images(client):
    page = client.get("/patients").text
    codes = re.findall(r'href="/patients/(P[0-9a-f]{15})"', page)
    assert len(codes) == 3 * REAL_PER_CLASS  # class folders: one pseudo-patient per image
    assert "img0" not in page
    pages = {code: client.get(f"/patients/{code}").text for code in codes}
    counts = {
        code: int(re.search(r"· (\d+) images ·", text).group(1)) for code, text in pages.items()
    }
    # class folders: one pseudo-patient per image; the lab's one affine child joins its parent's
    # study (patient codes are random, so which patient that is changes from run to run)
    assert sorted(counts.values()) == [1] * (len(codes) - 1) + [2]
    person = next(pages[code] for code, n in counts.items() if n == 1)
    study = re.search(r'href="/studies/(S[0-9a-f]{15})"', person)
    assert study is not None
    assert re.search(r"<th>images</th><td>1 ", client.get(f"/studies/{study.group(1)}").text)
    assert tile_ids(client.get(f"/images?study={study.group(1)}").text) != []


def test_no_page_names_a_source_file(client):
    """Only the source folder's own name is kept (README, privacy); never a file name."""
    pages = ["/", "/images", "/images/1", "/patients", "/experiments", "/experiments/demo"]
    for url in pages:
        text = client.get(url).text
        assert "img0" not in text and "img1" not in text, url  # file names of the source


def test_experiments_list_headline_report_grids_and_side_by_side(client):
    listing = client.get("/experiments").text
    assert 'href="/experiments/demo"' in listing and RUN_NAME in listing
    page = client.get("/experiments/demo").text
    assert page.count(f"/runs/{RUN_NAME}/grids/") == 2
    for label in CLASSES:
        assert f"<th>{label}</th>" in page
    # real images as the generator saw them, generated ones as made, at one scale
    assert page.count("/experiments/demo/real/") == 3 * 8
    assert page.count("/view.jpg") == 3 * GENERATED_PER_CLASS
    report = client.get("/experiments/demo/report/")
    assert (
        "Report of demo" in report.text and "sandbox" in report.headers["content-security-policy"]
    )
    grid = client.get(f"/runs/{RUN_NAME}/grids/1.png")
    assert grid.status_code == 200 and grid.content.startswith(b"\x89PNG")


def test_real_images_are_shown_at_the_generated_images_scale(client):
    """A real image beside the generated ones is the generator's view of it (the experiment's
    inputs, cropped to the generated side), not the whole 72x56 field; a generated or unknown
    image has no such view, and a rater or a stranger gets none."""
    page = client.get("/experiments/demo").text
    real_id = int(re.search(r"/experiments/demo/real/(\d+)\.png", page).group(1))
    generated_id = int(re.search(r"/images/(\d+)/view\.jpg", page).group(1))
    shown = client.get(f"/experiments/demo/real/{real_id}.png")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(shown.content)) as image:
        assert image.size == (32, 32) and not image.info  # the demo's inputs: 32 px, no metadata
    with Image.open(io.BytesIO(client.get(f"/images/{generated_id}/view.jpg").content)) as made:
        assert made.size == (32, 32)
    assert client.get(f"/experiments/demo/real/{generated_id}.png").status_code == 404
    assert client.get("/experiments/demo/real/999999.png").status_code == 404
    assert client.get(f"/experiments/nosuch/real/{real_id}.png").status_code == 404


def test_reader_connections_refuse_writes(client):
    from sqlalchemy import text

    from pathsynth.errors import CatalogUnavailable

    reader = client.app.state.reader
    with (
        pytest.raises(CatalogUnavailable, match="readonly database"),
        reader.catalog.session() as session,
    ):
        session.execute(text("DELETE FROM images"))
    assert reader.counts().by_class_origin  # nothing was deleted


def test_no_page_shows_the_patient_or_study_identifiers_of_a_source(tmp_path):
    """A patient -> study tree named by real identifiers: every page a link reaches shows codes."""
    from helpers import write_image
    from starlette.testclient import TestClient

    from pathsynth.catalog.ingest import IngestOptions, ingest_source
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.serve.app import ServeSettings, create_app

    secrets = ("DOE-JANE-19570312", "ROE-RICH-19601101", "ACC778812", "ACC778813", "slide-7")
    source = tmp_path / "cards"
    for p, patient in enumerate(secrets[:2]):
        for s, study in enumerate(secrets[2:4]):
            write_image(source / patient / study / f"{secrets[4]}.png", seed=10 * p + s)
    rows = [f"{p},{s},benign,54,F" for p in secrets[:2] for s in secrets[2:4]]
    (source / "meta.csv").write_text("patient,study,label,age,sex\n" + "\n".join(rows) + "\n")
    space = Workspace.create(tmp_path / "ws")
    options = IngestOptions(modality="histology", workers=0, layout="patient-study",
                            labels_csv=source / "meta.csv")  # fmt: skip
    assert ingest_source(space, source, options).added_total == 4
    with TestClient(
        create_app(space, ServeSettings(open_operator=True)), base_url="http://127.0.0.1:8000"
    ) as client:
        seen, queue = set(), ["/"]
        while queue:  # every page of this server a link leads to
            url = queue.pop()
            if url in seen:
                continue
            seen.add(url)
            page = client.get(url)
            assert page.status_code == 200, url
            if not page.headers["content-type"].startswith("text/html"):
                continue
            for identifier in secrets:
                assert identifier.lower() not in page.text.lower(), (url, identifier)
            links = re.findall(r'href="(/(?:images|patients|studies)[^"#]*)"', page.text)
            queue += [link.replace("&amp;", "&") for link in links]
    assert sum(url.startswith("/studies/") for url in seen) == 4 and len(seen) > 12


def test_unlabelled_images_are_called_so_and_offer_no_empty_class_to_choose(lab, tmp_path):
    from helpers import write_image
    from starlette.testclient import TestClient

    from pathsynth.catalog.ingest import IngestOptions, ingest_source
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.serve.app import ServeSettings, create_app

    for i in range(2):
        write_image(tmp_path / "spare" / "box" / f"u{i}.png", seed=700 + i)
    space = Workspace(lab)
    ingest_source(
        space, tmp_path / "spare", IngestOptions(modality="histology", workers=0, unlabelled=True)
    )
    with TestClient(
        create_app(space, ServeSettings(open_operator=True)), base_url="http://127.0.0.1:8000"
    ) as client:
        page = client.get("/images?origin=unlabelled").text
        ids = tile_ids(page)
        assert len(ids) == 2
        assert page.count("<b>unlabelled</b>") == 2
        options = re.findall(r'<select name="label">(.*?)</select>', page, re.S)[0]
        assert re.findall(r'<option value="([^"]*)"', options) == ["", *sorted(CLASSES)]
        image = client.get(f"/images/{ids[0]}").text
        assert '<td id="label">none (unlabelled)</td>' in image
        overview = client.get("/").text
        by_class = overview[
            overview.index("Images per class") : overview.index("Images per origin")
        ]
        assert re.search(r">unlabelled</text>.*?<text[^>]*>2</text>", by_class, re.S)
        assert "></text>" not in by_class  # no bar without a name


def test_browsing_a_catalog_never_loads_torch(tmp_path) -> None:
    """The web app reads a catalog; torch (about 700 MB of memory) is loaded only for a page that
    lists classifier bundles, never to browse images, patients or the Turing test."""
    import subprocess
    import sys

    script = f"""
import sys
from pathlib import Path
from starlette.testclient import TestClient
from pathsynth.catalog.workspace import Workspace
from pathsynth.serve.app import ServeSettings, create_app
space = Workspace.create(Path({str(tmp_path / "ws")!r}))
with TestClient(create_app(space, ServeSettings(open_operator=True)), base_url="http://127.0.0.1:8000") as client:
    for url in ("/", "/images", "/patients", "/turing"):
        assert client.get(url).status_code == 200, url
print("torch" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_an_experiment_s_page_and_its_real_images_at_scale_never_load_torch(lab) -> None:
    """The experiments list, an experiment's page (its config read, its bundles' listings) and
    its real images prepared at the generator's scale: numpy and Pillow only (the first such
    page took 3.4 s, most of it importing torch)."""
    import subprocess
    import sys

    script = f"""
import re, sys
from pathlib import Path
from starlette.testclient import TestClient
from pathsynth.catalog.workspace import Workspace
from pathsynth.serve.app import ServeSettings, create_app
space = Workspace(Path({str(lab)!r}))
with TestClient(create_app(space, ServeSettings(open_operator=True)), base_url="http://127.0.0.1:8000") as client:
    assert client.get("/experiments").status_code == 200
    page = client.get("/experiments/demo").text
    real = re.search(r"/experiments/demo/real/(\\d+)\\.png", page).group(0)
    shown = client.get(real)
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png", real
print("torch" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_a_thumbnail_asked_for_by_many_at_once_is_made_once_and_large_ones_one_at_a_time(
    tmp_path, monkeypatch
):
    """Eight browsers asking for an 81 MP image's thumbnail decoded it eight times at once (7.7
    GB); now one request makes each file while the others wait and read it, and large images
    are decoded one at a time (bench/big_image.py: 14.2 GB -> 1.1 GB at 8 + 8 requests)."""
    import threading
    import time

    from pathsynth.serve import thumbnails
    from pathsynth.serve.thumbnails import ThumbnailCache

    Image.new("RGB", (10, 10), (1, 2, 3)).save(tmp_path / "a.png")
    Image.new("RGB", (10, 10), (4, 5, 6)).save(tmp_path / "b.png")

    class Reader:
        def image_file(self, image_id):
            return tmp_path / f"{'ab'[image_id]}.png", f"sha{image_id}"

    decoding, most, calls = [0], [0], []
    lock = threading.Lock()

    def slow_downsized(image, side):
        with lock:
            decoding[0] += 1
            most[0] = max(most[0], decoding[0])
            calls.append(side)
        time.sleep(0.2)
        with lock:
            decoding[0] -= 1
        return b"jpeg"

    monkeypatch.setattr(thumbnails, "_downsized", slow_downsized)
    monkeypatch.setattr(thumbnails, "LARGE_PIXELS", 50)  # both 100-pixel images count as large
    cache = ThumbnailCache(Reader(), tmp_path / "cache")
    jobs = [(0, 256)] * 8 + [(0, 1024)] * 4 + [(1, 256)] * 4
    threads = [threading.Thread(target=cache.path, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(calls) == [256, 256, 1024]  # one decode per (file, size)
    assert most[0] == 1  # large images one at a time
    assert (tmp_path / "cache" / "sha0-256.jpg").read_bytes() == b"jpeg"
