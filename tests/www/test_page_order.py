"""One order on the control-room page, in a real headless Chromium: the card's latest
recording, the history strip, the lightbox's Older/Newer and the web folder's fixed-name
``<folder>.png`` all follow acquisition start (processing time for a recording without
one), whatever order the recordings were processed in (real ``crunchctl process`` runs)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

from page_helpers import card, card_text, images_loaded, process_to_www, severe

from conftest import child_env, crunchctl_cmd, small_args, wait_for

T0 = dt.datetime(2024, 4, 17, 13, 0, 0, tzinfo=dt.timezone.utc)


def _process(tmp_path: Path, files: list[Path], www: Path) -> None:
    r = process_to_www(tmp_path, files, www)
    assert r.returncode == 0, r.stderr


def _strip(driver) -> list[tuple[str, bool]]:
    from selenium.webdriver.common.by import By

    return [
        (
            b.find_element(By.TAG_NAME, "img").get_attribute("alt"),
            "current" in (b.get_attribute("class") or "").split(),
        )
        for b in card(driver, "rsa510").find_elements(By.CSS_SELECTOR, ".strip button")
    ]


def test_latest_strip_lightbox_and_web_copy_follow_acquisition_time(
    tmp_path, make_tiq, browser, serve
):
    from selenium.webdriver.common.by import By

    rec, www, out = tmp_path / "rec" / "rsa510", tmp_path / "www", tmp_path / "out"
    # A folder with mixed clocks: processed (and written) in the order a, b, c, acquired
    # b (newest), a, c.
    a = make_tiq("a.tiq", folder=rec, acquired=T0)
    b = make_tiq("b.tiq", folder=rec, acquired=T0 + dt.timedelta(hours=1))
    c = make_tiq("c.tiq", folder=rec, acquired=T0 - dt.timedelta(hours=1))
    _process(tmp_path, [a, b, c], www)
    # A late copy of an even older recording, by another run: it joins the strip's end.
    d = make_tiq("d.tiq", folder=rec, acquired=T0 - dt.timedelta(hours=2))
    _process(tmp_path, [d], www)

    doc = json.loads((www / "status.json").read_text())
    [r] = doc["recorders"]
    assert r["latest"]["file"] == "b.tiq"
    assert [e["file"] for e in r["history"]] == ["b.tiq", "a.tiq", "c.tiq", "d.tiq"]
    # The web folder's fixed-name copies show the same recording.
    assert (www / "rsa510.png").read_bytes() == (out / "b.png").read_bytes()
    assert (www / "zoom_rsa510.png").read_bytes() == (out / "b_zoom.png").read_bytes()

    browser.get(serve(www) + "index.html")
    wait_for(lambda: card_text(browser, ".file", "rsa510") == "b.tiq", 10, "the page")
    assert _strip(browser) == [
        ("b.tiq", True),
        ("a.tiq", False),
        ("c.tiq", False),
        ("d.tiq", False),
    ]
    caption = card_text(browser, ".order", "rsa510")
    assert "Newest first by acquisition start" in caption and "processing time" in caption
    # The latest picture opens in the lightbox; Older walks back in acquisition time.
    card(browser, "rsa510").find_element(By.CSS_SELECTOR, ".imgs img").click()
    title = browser.find_element(By.ID, "lb-title")
    seen = [title.text.split(" ")[0]]
    assert not browser.find_element(By.ID, "lb-next").is_enabled()  # nothing newer
    for _ in range(3):
        browser.find_element(By.ID, "lb-prev").click()
        seen.append(title.text.split(" ")[0])
    assert seen == ["b.tiq", "a.tiq", "c.tiq", "d.tiq"]
    assert not browser.find_element(By.ID, "lb-prev").is_enabled()
    browser.find_element(By.ID, "lb-next").click()
    assert title.text.startswith("c.tiq")
    browser.save_screenshot(str(tmp_path / "order.png"))
    browser.find_element(By.ID, "lb-close").click()
    assert images_loaded(browser) == []
    assert severe(browser) == []


def test_a_recording_without_a_time_is_ordered_by_processing_time(tmp_path, make_tiq):
    """No acquisition start (a raw file): its processing time places it, here newest."""
    from crunchctl.formats.synth import RecordingSpec, make_recording

    rec, www, out = tmp_path / "rec" / "rsa510", tmp_path / "www", tmp_path / "out"
    b = make_tiq("b.tiq", folder=rec, acquired=T0)
    raw = make_recording(
        rec / "x.cf32", RecordingSpec(nframes=6, lframes=1024, fs=1.0e6, center=100.0e6)
    )
    _process(tmp_path, [b], www)
    r = subprocess.run(
        [
            *crunchctl_cmd(),
            "process",
            str(raw),
            *small_args(tmp_path),
            "--www",
            str(www),
            "--sample-rate",
            "1e6",
            "--center",
            "100e6",
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    _process(tmp_path, [make_tiq("a.tiq", folder=rec, acquired=T0 - dt.timedelta(hours=1))], www)
    [rc] = json.loads((www / "status.json").read_text())["recorders"]
    assert rc["latest"]["file"] == "x.cf32" and rc["latest"]["acquired_unix"] is None
    assert [e["file"] for e in rc["history"]] == ["x.cf32", "b.tiq", "a.tiq"]
    assert (www / "rsa510.png").read_bytes() == (out / "x.png").read_bytes()
