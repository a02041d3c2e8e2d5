"""The control-room page in a real headless Chromium, as real ``process``/``watch`` runs make it.

No browser is downloaded: Debian's ``chromium`` and ``chromedriver`` (found on PATH) are
driven by Selenium; where they are missing the tests are skipped saying what to install, and
fail in CI (``conftest.require``; ``.ci/run`` installs them). Pages come from ``file://`` or a web server on 127.0.0.1 started here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from page_helpers import card, card_text, images_loaded, process_to_www, severe

from conftest import child_env, crunchctl_cmd, small_args, wait_for

XSS = "<img src=x onerror=alert(1)>.tiq"
BAD = "<svg onload=alert(2)>.tiq"
REFRESH = "1"  # www_refresh for these tests, s


def _process(
    tmp_path: Path, files: list[Path], www: Path, refresh: str = REFRESH
) -> subprocess.CompletedProcess:
    r = process_to_www(tmp_path, files, www, refresh)
    assert r.returncode in (0, 1), r.stderr
    return r


def _pause_file_page(driver) -> None:
    """Press "Pause updates" on a page that reloads itself (file:// mode) until it holds.

    Such a page reloads every refresh interval; a click can land on a reloaded page whose
    script has not yet attached its handler, and is then lost. Press again until the
    browser's storage says paused (the handler writes it at once, and a paused page no
    longer reloads), never twice on one page.
    """
    from selenium.common.exceptions import (
        JavascriptException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By

    stored = "return localStorage.getItem('crunchctl.page.paused')"

    def paused() -> bool:
        try:
            if driver.execute_script(stored) == "1":
                return True
            if driver.execute_script("return !!window.crunchctlPage"):
                button = driver.find_element(By.ID, "pause")
                if button.get_attribute("aria-pressed") == "false":
                    button.click()
            return driver.execute_script(stored) == "1"
        except (JavascriptException, NoSuchElementException, StaleElementReferenceException):
            return False  # caught mid-reload; look again

    wait_for(paused, 10, "the pause to hold", interval=0.2)


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def test_page_made_by_process_over_http_updates_itself_and_warns_when_crunchctl_stops(
    tmp_path, make_tiq, browser, serve
):
    from selenium.webdriver.common.by import By

    chrome = browser
    rec = tmp_path / "rec"
    www = tmp_path / "www"
    files = [make_tiq("a1.tiq", folder=rec / "rsa510"), make_tiq("b1.tiq", folder=rec / "dev2")]
    bad = rec / "dev2" / "broken.tiq"
    bad.write_bytes(b"not a recording")
    _process(tmp_path, [*files, bad], www)
    doc = json.loads((www / "status.json").read_text())

    chrome.set_window_size(1280, 800)
    chrome.get(serve(www) + "index.html")
    wait_for(
        lambda: (
            chrome.execute_script("return window.crunchctlPage && window.crunchctlPage.mode")
            == "fetch"
        ),
        10,
        "the page script",
    )
    names = [e.text for e in chrome.find_elements(By.CSS_SELECTOR, "article.card h2")]
    assert names == ["dev2", "rsa510"]
    for r in doc["recorders"]:
        latest = r["latest"]
        assert card_text(chrome, ".file", r["folder"]) == latest["file"]
        assert _utc(latest["acquired_unix"]) in card_text(chrome, ".meta", r["folder"])
        counts = card_text(chrome, ".counts", r["folder"]).split()
        assert counts == [
            str(r["counts"]["done"]),
            "done",
            str(r["counts"]["failed"]),
            "failed",
            str(r["counts"]["pending"]),
            "pending",
        ]
        assert card_text(chrome, ".badge", r["folder"]) == "STALE"  # recorded in 2024
        assert "ago" in card_text(chrome, ".age", r["folder"]) or "just now" in card_text(
            chrome, ".age", r["folder"]
        )
    assert doc["totals"] == {"done": 2, "failed": 1, "pending": 0}
    assert chrome.find_element(By.ID, "totals").text.split() == [
        "2",
        "done",
        "1",
        "failed",
        "0",
        "pending",
    ]
    assert "broken.tiq" in chrome.find_element(By.ID, "errors").text
    assert images_loaded(chrome) == []
    assert len(chrome.find_elements(By.CSS_SELECTOR, ".strip img")) == 2
    assert not chrome.find_element(By.ID, "banner").is_displayed()
    assert severe(chrome) == []

    # A recording processed while the page is open appears without a reload.
    chrome.execute_script("window.__same_page = 42")
    old_src = card(chrome, "rsa510").find_element(By.CSS_SELECTOR, ".imgs img").get_attribute("src")
    _process(tmp_path, [make_tiq("a2.tiq", folder=rec / "rsa510")], www)
    wait_for(lambda: card_text(chrome, ".file", "rsa510") == "a2.tiq", 15, "the new recording")
    assert chrome.execute_script("return window.__same_page") == 42
    new_src = card(chrome, "rsa510").find_element(By.CSS_SELECTOR, ".imgs img").get_attribute("src")
    assert new_src != old_src and "rsa510.png?v=" in new_src  # reloaded: it changed
    dev2_src = card(chrome, "dev2").find_element(By.CSS_SELECTOR, ".imgs img").get_attribute("src")
    assert dev2_src.endswith(f"dev2.png?v={doc['recorders'][0]['latest']['version']}")  # kept
    assert len(card(chrome, "rsa510").find_elements(By.CSS_SELECTOR, ".strip img")) == 2
    assert images_loaded(chrome) == []
    assert severe(chrome) == []

    # crunchctl stopped writing: once the heartbeat is over 2 minutes old, the banner shows.
    status = www / "status.json"
    doc = json.loads(status.read_text())
    doc["heartbeat"]["written_unix"] = time.time() - 600
    tmp = www / ".status.json.test"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, status)
    banner = chrome.find_element(By.ID, "banner")
    wait_for(banner.is_displayed, 10, "the banner")
    assert "crunchctl is not running or cannot write here" in banner.text
    assert "10 min ago" in banner.text

    # Paused, the page no longer picks up changes; resumed, it does.
    pause = chrome.find_element(By.ID, "pause")
    pause.click()
    assert pause.get_attribute("aria-pressed") == "true"
    doc["heartbeat"]["written_unix"] = time.time()
    doc["totals"]["done"] = 77
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, status)
    time.sleep(2.5)
    assert chrome.find_element(By.ID, "totals").text.split()[0] == "3"
    pause.click()
    wait_for(
        lambda: chrome.find_element(By.ID, "totals").text.split()[0] == "77",
        10,
        "the update after resuming",
    )
    assert not banner.is_displayed()

    # Phone width: nothing wider than the screen.
    chrome.set_window_size(390, 800)
    time.sleep(0.3)
    width, inner = chrome.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert width <= inner
    assert severe(chrome) == []
    chrome.set_window_size(1280, 800)


def test_a_recording_acquired_now_is_live_then_stale_after_www_stale_after(
    tmp_path, make_tiq, browser, serve
):
    import datetime as dt

    from selenium.webdriver.common.by import By

    chrome = browser
    www = tmp_path / "www"
    now = dt.datetime.now(dt.timezone.utc)
    rec = make_tiq("now.tiq", folder=tmp_path / "rec" / "rsa510", acquired=now)
    stale_after_s = 8.0
    r = subprocess.run(
        [
            *crunchctl_cmd(),
            "process",
            str(rec),
            *small_args(tmp_path),
            "--www",
            str(www),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(
            CRUNCHCTL_WWW_REFRESH=REFRESH, CRUNCHCTL_WWW_STALE_AFTER=str(stale_after_s / 60)
        ),
    )
    assert r.returncode == 0, r.stderr
    chrome.get(serve(www) + "index.html")
    wait_for(lambda: card_text(chrome, ".file", "rsa510") == "now.tiq", 10, "the page")
    # The page may open a moment after the recording; LIVE must show while it is young.
    assert time.time() - now.timestamp() < stale_after_s - 1, "too slow to see it young"
    assert card_text(chrome, ".badge", "rsa510") == "LIVE"
    assert "stale" not in card(chrome, "rsa510").get_attribute("class").split()
    # Without any new data, the open page turns the card STALE once the age passes the limit.
    wait_for(
        lambda: card_text(chrome, ".badge", "rsa510") == "STALE",
        stale_after_s + 5,
        "the badge to turn STALE",
    )
    assert time.time() - now.timestamp() > stale_after_s
    assert "stale" in card(chrome, "rsa510").get_attribute("class").split()
    assert chrome.find_element(By.CSS_SELECTOR, "article.card .badge").text == "STALE"
    assert severe(chrome) == []


def test_file_url_page_shows_an_xss_file_name_as_text_and_reloads_itself(
    tmp_path, make_tiq, browser
):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    chrome = browser
    folder = tmp_path / "rec" / "rsa510"
    www = tmp_path / "www"
    good = make_tiq(XSS, folder=folder)
    (folder / BAD).write_bytes(b"<script>alert(3)</script>")
    _process(tmp_path, [good, folder / BAD], www, refresh="3")

    chrome.get((www / "index.html").as_uri())
    wait_for(
        lambda: (
            chrome.execute_script("return window.crunchctlPage && window.crunchctlPage.mode")
            == "reload"
        ),
        10,
        "the page script",
    )
    # Paused, it stays put while it is looked at; the
    # pause survives the page's reloads (it is kept in the browser's storage).
    _pause_file_page(chrome)
    # The page's write to localStorage travels from its renderer to Chromium's storage
    # service on a channel of its own; a reload within milliseconds can start a renderer
    # that reads the storage before the write has arrived. A person takes longer.
    time.sleep(0.5)
    chrome.refresh()
    wait_for(
        lambda: (
            chrome.execute_script("return window.crunchctlPage && window.crunchctlPage.mode")
            == "reload"
        ),
        10,
        "the page script",
    )
    assert chrome.find_element(By.ID, "pause").get_attribute("aria-pressed") == "true"
    assert card_text(chrome, ".file", "rsa510") == XSS
    assert BAD in chrome.find_element(By.ID, "errors").text
    assert BAD in card_text(chrome, ".errs", "rsa510")
    chrome.find_element(By.CSS_SELECTOR, ".strip button").click()
    assert XSS in chrome.find_element(By.ID, "lb-title").text
    chrome.find_element(By.ID, "lb-close").click()
    with pytest.raises(NoAlertPresentException):
        chrome.switch_to.alert.text  # noqa: B018 - raises when no alert ran
    injected = chrome.execute_script(
        "return document.querySelectorAll('svg, script:not([id]):not([src]) ~ script, "
        'img[src="x"]\').length'
    )
    assert injected == 0
    assert images_loaded(chrome) == []
    assert severe(chrome) == []

    # fetch() of file:// is blocked: the page reloads itself instead, on the same interval.
    chrome.execute_script("window.__same_page = 1")
    chrome.find_element(By.ID, "pause").click()  # resume
    wait_for(
        lambda: chrome.execute_script("return window.__same_page") is None,
        10,
        "the page to reload itself",
    )
    assert card_text(chrome, ".file", "rsa510") == XSS
    with pytest.raises(NoAlertPresentException):
        chrome.switch_to.alert.text  # noqa: B018
    assert severe(chrome) == []


@pytest.mark.slow  # a watch start, a recording, then an idle heartbeat (~10 s)
def test_watch_keeps_the_page_current_and_beats_while_idle(tmp_path, make_tiq, browser, serve):
    from selenium.webdriver.common.by import By

    chrome = browser
    folder = tmp_path / "rec" / "rsa510"
    www = tmp_path / "www"
    make_tiq("first.tiq", folder=folder)
    proc = subprocess.Popen(
        [
            *crunchctl_cmd(),
            "watch",
            str(folder),
            *small_args(tmp_path),
            "--www",
            str(www),
            "--workers",
            "1",
        ],
        env=child_env(CRUNCHCTL_WWW_REFRESH=REFRESH),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = www / "status.json"

        def latest_file():
            try:
                doc = json.loads(status.read_text())
                return doc["recorders"][0]["latest"]["file"], doc
            except (OSError, ValueError, IndexError, KeyError, TypeError):
                return None, None

        wait_for(lambda: latest_file()[0] == "first.tiq", 60, "the backlog on the page")
        doc = latest_file()[1]
        assert doc["heartbeat"]["watcher_running"] is True
        assert doc["heartbeat"]["writer"] == "crunchctl watch"
        chrome.get(serve(www) + "index.html")
        wait_for(lambda: card_text(chrome, ".file", "rsa510") == "first.tiq", 10, "the page")
        chrome.execute_script("window.__same_page = 7")
        tmp = make_tiq("second.tiq", folder=tmp_path / "staging")
        os.replace(tmp, folder / "second.tiq")
        wait_for(
            lambda: card_text(chrome, ".file", "rsa510") == "second.tiq",
            30,
            "the new recording on the open page",
        )
        assert chrome.execute_script("return window.__same_page") == 7
        assert "watcher running" in chrome.find_element(By.ID, "hb").text
        assert images_loaded(chrome) == []
        assert severe(chrome) == []
        # Idle: the heartbeat is still rewritten (at most every 10 s).
        beat = json.loads(status.read_text())["heartbeat"]["written_unix"]
        wait_for(
            lambda: json.loads(status.read_text())["heartbeat"]["written_unix"] > beat + 5,
            15,
            "an idle heartbeat",
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    final = json.loads((www / "status.json").read_text())
    assert final["heartbeat"]["final"] is True and final["heartbeat"]["watcher_running"] is False
