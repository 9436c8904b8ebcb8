"""End to end in a real browser: Debian's Chromium driven by Selenium through chromium-driver,
against ``pathsynth serve`` running as a process on 127.0.0.1.

Screenshots land in the test's own output folder (``tmp_path``). Without Chromium these tests are
skipped with the reason shown, and fail under CI=true (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab import EXPERIMENT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _need_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if not missing:
        return
    reason = f"browser tests need {', '.join(missing)}: apt-get install chromium chromium-driver"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; under CI=true they must not be skipped")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(
    lab_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """``pathsynth serve`` on a copy of the lab workspace; yields (base URL, workspace)."""
    _need_chromium()
    workspace = tmp_path_factory.mktemp("served") / "ws"
    shutil.copytree(lab_template, workspace)
    port = _free_port()
    env = {**os.environ, "PATHSYNTH_OPERATOR_TOKEN": ""}  # serve makes one and prints its link
    # its output goes to a file: a pipe nobody reads would stall the server once full
    log = workspace.parent / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "pathsynth", "serve", "-w", str(workspace), "--port", str(port)],
            stdout=output, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"pathsynth serve exited: {log.read_text()}")
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("pathsynth serve did not start listening within 60 s")
    printed = re.search(r"operator sign-in link \(this run only\): (\S+)", log.read_text())
    assert printed is not None, log.read_text()
    OPERATOR_LINK["url"] = printed.group(1)
    yield f"http://127.0.0.1:{port}", workspace
    process.terminate()
    process.wait(timeout=10)


OPERATOR_LINK: dict[str, str] = {}  # the sign-in link the served process printed


@pytest.fixture
def browser(server: tuple[str, Path], tmp_path: Path) -> Iterator[object]:
    """A headless Chromium of its own (own cookies) for one test, signed in as the operator by
    the link ``serve`` printed."""
    _need_chromium()
    driver = new_browser(tmp_path, "profile", width=1280)
    try:
        driver.get(OPERATOR_LINK["url"])
        wait_for(driver, lambda d: "/login" not in d.current_url)
        yield driver
    finally:
        driver.quit()


def new_browser(tmp_path: Path, name: str, width: int = 1100) -> Any:
    """A headless Chromium with a profile (cookies) of its own under ``tmp_path / name``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={width},1000", f"--user-data-dir={tmp_path / name}"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    return driver


def wait_for(driver: Any, condition: Any) -> None:
    """Wait (up to 20 s) until ``condition(driver)``: after a click or a script's submit the old
    page can still be read for a moment."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(condition)


def test_browse_to_an_image_through_the_filters(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, _ = server
    browser.get(base + "/")
    assert browser.save_screenshot(str(tmp_path / "overview.png"))
    assert "Images per class" in browser.page_source
    browser.find_element(By.LINK_TEXT, "Images").click()
    wait_for(browser, lambda d: 'id="filters"' in d.page_source)  # the click's page has come
    Select(browser.find_element(By.NAME, "label")).select_by_visible_text("invasive")
    Select(browser.find_element(By.NAME, "origin")).select_by_visible_text("synthetic")
    browser.find_element(By.CSS_SELECTOR, "#filters button").click()
    wait_for(browser, lambda d: 'id="count">6 images<' in d.page_source)
    tiles = browser.find_elements(By.CSS_SELECTOR, ".tile")
    assert len(tiles) == 6
    # every thumbnail was made and decoded by the browser (they load after the page's HTML)
    wait_for(browser, lambda d: d.execute_script(
        "return [...document.querySelectorAll('.tile img')].every(i => i.complete)"
    ))  # fmt: skip
    assert browser.execute_script(
        "return [...document.querySelectorAll('.tile img')].every(i => i.naturalWidth > 0)"
    )
    assert browser.save_screenshot(str(tmp_path / "images.png"))
    tiles[0].click()
    wait_for(browser, lambda d: 'id="lineage"' in d.page_source)
    assert browser.find_element(By.ID, "label").text == "invasive"
    assert browser.find_element(By.ID, "origin").text == "synthetic"
    assert "checkpoint step" in browser.find_element(By.ID, "lineage").text
    assert browser.save_screenshot(str(tmp_path / "image.png"))


def test_two_raters_run_a_turing_test_and_the_results_page_matches_the_answers(
    server, browser, tmp_path
):
    from selenium.webdriver.common.by import By

    base, workspace = server
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.turing.design import make_test_from_experiment
    from pathsynth.turing.store import TuringBook

    made = make_test_from_experiment(Workspace(workspace), EXPERIMENT, "browser", 1, ["ann", "bob"])
    for rater, call in (("ann", "real"), ("bob", "synthetic")):
        rater_browser = new_browser(tmp_path, rater)
        try:
            rater_browser.get(f"{base}/turing/join/{made.tokens[rater]}")
            for n in range(made.items):
                assert (
                    rater_browser.find_element(By.ID, "progress").text
                    == f"{n} of {made.items} answered"
                )
                # the page's HTML can be read before its image has loaded: wait for it
                wait_for(rater_browser, lambda d: d.execute_script(
                    "return document.getElementById('item').complete"
                ))  # fmt: skip
                width = rater_browser.execute_script(
                    "return document.getElementById('item').naturalWidth"
                )
                assert width == 32
                assert "synthetic" not in rater_browser.find_element(By.ID, "item").get_attribute(
                    "src"
                )
                if n == 0:
                    assert rater_browser.save_screenshot(str(tmp_path / f"rate-{rater}.png"))
                if rater == "ann" and n == 2:  # stop, and come back through the link
                    rater_browser.get(f"{base}/turing/join/{made.tokens[rater]}")
                rater_browser.find_element(
                    By.CSS_SELECTOR, f"input[name=called][value={call}]"
                ).click()
                rater_browser.find_element(
                    By.CSS_SELECTOR, "input[name=confidence][value='3']"
                ).click()
                rater_browser.find_element(By.ID, "submit").click()
                wait_for(rater_browser, lambda d, n=n: f">{n + 1} of " in d.page_source
                         or 'id="done"' in d.page_source)  # fmt: skip
            assert "All 6 images answered" in rater_browser.find_element(By.ID, "done").text
            # this rater's token does not open another test
            other = make_test_from_experiment(
                Workspace(workspace), EXPERIMENT, f"other-{rater}", 1, ["x"]
            )
            rater_browser.get(f"{base}/turing/{other.test_id}/rate")
            # Debian's Chromium 150 can hand back the page before its navigation has loaded
            wait_for(rater_browser, lambda d: "Not found" in d.page_source)
        finally:
            rater_browser.quit()

    browser.get(f"{base}/turing/{made.test_id}/results")
    assert browser.save_screenshot(str(tmp_path / "results.png"))
    with TuringBook.open(Workspace(workspace)) as book:
        raters, stored = book.answers(made.test_id)
    assert raters == ["ann", "bob"] and len(stored) == 12
    for rater in raters:
        mine = [a for a in stored if a.rater == rater]
        right = sum(a.called == a.truth for a in mine)
        row = browser.find_element(By.CSS_SELECTOR, f'tr.rater[data-rater="{rater}"]')
        assert (
            f"{100 * right / len(mine):.1f}%" in row.find_element(By.CSS_SELECTOR, ".accuracy").text
        )
        assert f"{right}/{len(mine)}" in row.text
    # ann said "real" to everything, bob "synthetic": they never agree, so kappa is -1
    assert "Fleiss' kappa on real/synthetic: -1.000" in browser.find_element(By.ID, "kappa").text


def test_traversal_guessed_ids_and_a_post_without_csrf_are_refused(server, browser):

    base, _ = server
    for path in ("/images/999999", "/images/1/..%2F..%2Fpathsynth.json", "/turing/999/rate",
                 "/experiments/..%2F..%2Fetc", "/images/abc/thumb.jpg", "/images/999999/thumb.jpg"):  # fmt: skip
        browser.get(base + path)
        # Debian's Chromium 150 can hand back an empty page for a moment after get(): wait for
        # the refusal (a page without it fails the wait after 20 s)
        wait_for(browser, lambda driver: "Not found" in driver.page_source)
    browser.get(base + "/turing")
    # a form posted without its CSRF field, from the page itself
    browser.execute_script(
        "const f = document.querySelector('form.stacked');"
        " f.querySelector('input[name=csrf_token]').remove();"
        " f.querySelector('input[name=name]').value = 'x';"
        " f.querySelector('input[name=raters]').value = 'y';"
        " f.submit();"
    )
    wait_for(browser, lambda d: "CSRF token is missing or wrong" in d.page_source)
    browser.get(base + "/turing")
    assert not re.search(r">x</a>", browser.page_source)


def test_the_report_opens_with_its_summary_and_every_table_fits_1280_px(tmp_path):
    """The report as a lab opens it: the summary first, and no table wider than a 1280 px
    window (the generators table overflowed at 1400 px); the affine figure is drawn."""
    _need_chromium()
    from report.test_generators import _both_generators

    from pathsynth.report import write_report

    page = write_report(_both_generators(tmp_path / "run"), tmp_path / "out")
    driver = new_browser(tmp_path, "report", width=1280)
    try:
        driver.get(page.as_uri())
        headings = driver.execute_script(
            "return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)"
        )
        assert headings[0] == "Summary", headings
        summary = driver.execute_script("return document.querySelector('#summary').innerText")
        assert "The question." in summary and "The answer." in summary
        assert "The gan generator is partial" in summary
        viewport = driver.execute_script("return document.documentElement.clientWidth")
        overflowing = driver.execute_script(
            "return Array.from(document.querySelectorAll('table')).filter("
            "t => t.getBoundingClientRect().right > arguments[0] + 0.5"
            " || (t.parentElement.scrollWidth > t.parentElement.clientWidth + 1)"
            ").map(t => t.id || t.className || t.rows[0].innerText.slice(0, 40))",
            viewport,
        )
        assert overflowing == [], overflowing
        affine = driver.execute_script(
            "return Array.from(document.querySelectorAll('figure img')).filter("
            "i => i.alt.startsWith('Each original') && i.naturalWidth > 0).length"
        )
        assert affine == 1
        assert driver.save_screenshot(str(tmp_path / "report.png"))
    finally:
        driver.quit()
