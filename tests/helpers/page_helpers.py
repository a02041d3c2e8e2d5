"""The control-room page in a real headless Chromium: the browser fixtures (registered for
every test by ``conftest.py``), a ``process`` run that makes the page, and ways to read it.

No browser is downloaded: Debian's ``chromium`` and ``chromedriver`` (found on PATH) are
driven by Selenium; where they are missing the tests are skipped saying what to install,
and fail in CI (``conftest.require``).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import browser_paths, child_env, crunchctl_cmd, require, small_args, wait_for


@pytest.fixture(scope="module")
def chrome():
    """One headless Chromium per test module, with a fresh profile, loopback only."""
    require("browser")
    chromium, chromedriver = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="crunchctl-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chrome):
    """The module's browser on a blank page with an empty console log, blank again after."""
    chrome.get("about:blank")
    chrome.get_log("browser")
    chrome.set_window_size(1280, 800)
    yield chrome
    chrome.get("about:blank")  # a page left open would poll a server that is gone
    chrome.get_log("browser")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def serve():
    """``serve(folder)`` -> ``http://127.0.0.1:<port>/``: the folder served as a web server would."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_Quiet, directory=os.fspath(folder))
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def process_to_www(
    tmp_path: Path, files: list[Path], www: Path, refresh: str = "1"
) -> subprocess.CompletedProcess:
    """``crunchctl process FILES --www WWW`` with one worker, the page refreshing every
    ``refresh`` seconds."""
    return subprocess.run(
        [
            *crunchctl_cmd(),
            "process",
            *map(str, files),
            *small_args(tmp_path),
            "--www",
            str(www),
            "--workers",
            "1",
        ],
        env=child_env(CRUNCHCTL_WWW_REFRESH=refresh),
        capture_output=True,
        text=True,
        timeout=120,
    )


def severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def images_loaded(driver) -> list[str]:
    """Wait for every image with a src to finish; return the ones that did not load."""
    script = (
        "return Array.from(document.images).filter(i => i.getAttribute('src'))"
        ".map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth])"
    )
    wait_for(lambda: all(c for _, c, _ in driver.execute_script(script)), 15, "images to load")
    return [src for src, _, w in driver.execute_script(script) if not w > 0]


def card(driver, folder: str):
    from selenium.webdriver.common.by import By

    for card in driver.find_elements(By.CSS_SELECTOR, "article.card"):
        if card.get_attribute("data-folder") == folder:
            return card
    raise AssertionError(f"no card for {folder!r}")


def card_text(driver, css: str, folder: str) -> str:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(40):
        try:
            return card(driver, folder).find_element(By.CSS_SELECTOR, css).text
        except StaleElementReferenceException:
            time.sleep(0.05)  # the page redrew the card between finding and reading it
    raise AssertionError(f"the card of {folder!r} kept being redrawn while read")
