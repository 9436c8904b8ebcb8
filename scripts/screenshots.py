"""Screenshots of every page of the web app and of each experiment's report, as a lab sees them:
``pathsynth serve`` on WORKSPACE, Debian's Chromium at 1280 px, signed in as the operator.

    python scripts/screenshots.py WORKSPACE OUT_FOLDER

Writes OUT_FOLDER/<page>.png (full page height) and prints each page's address, HTTP status as
the browser saw it (title) and whether anything overflows the window sideways.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _browser(width: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={width},1000"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def _shoot(driver, url: str, out: Path, width: int) -> None:
    driver.get(url)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(height, 600), 12000))
    deadline = time.monotonic() + 60  # lazy images load once the tall window shows them
    while time.monotonic() < deadline and not driver.execute_script(
        "return Array.from(document.images).every(i => i.complete)"
    ):
        time.sleep(0.3)
    wide = driver.execute_script(
        "return document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )
    driver.save_screenshot(str(out))
    print(f"{out.name}: {url} - {driver.title!r}{' - OVERFLOWS sideways' if wide else ''}")
    driver.set_window_size(width, 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workspace", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    token, port = secrets.token_urlsafe(24), _free_port()
    env = {**os.environ, "PATHSYNTH_OPERATOR_TOKEN": token}
    server = subprocess.Popen(
        [sys.executable, "-m", "pathsynth", "serve", "-w", str(args.workspace), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        driver = _browser(args.width)
        try:
            driver.get(f"{base}/login?token={token}")
            pages = {"home": "/", "images": "/images", "patients": "/patients",
                     "experiments": "/experiments", "turing": "/turing"}  # fmt: skip
            for name, path in pages.items():
                _shoot(driver, base + path, args.out / f"{name}.png", args.width)
            driver.get(base + "/images")
            first = re.search(r'href="(/images/\d+)"', driver.page_source)
            if first:
                _shoot(driver, base + first.group(1), args.out / "image.png", args.width)
            driver.get(base + "/patients")
            patient = re.search(r'href="(/patients/[^"]+)"', driver.page_source)
            if patient:
                _shoot(driver, base + patient.group(1), args.out / "patient.png", args.width)
            driver.get(base + "/experiments")
            for name in sorted(
                set(re.findall(r'href="/experiments/([\w.-]+)"', driver.page_source))
            ):
                _shoot(
                    driver,
                    f"{base}/experiments/{name}",
                    args.out / f"experiment-{name}.png",
                    args.width,
                )
                report = args.workspace / "experiments" / name / "report" / "report.html"
                if report.is_file():
                    _shoot(
                        driver,
                        report.resolve().as_uri(),
                        args.out / f"report-{name}.png",
                        args.width,
                    )
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
