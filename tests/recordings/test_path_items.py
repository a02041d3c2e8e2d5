"""The recordings path end to end: web copies that fail are warnings, a web folder that
cannot be written stops the run up front, an output folder deleted under a watch is made
again, warnings are kept apart from errors, and an incomplete recording says so.

Every test runs real ``crunchctl`` processes on real recordings and reads what they wrote:
the ledger, the PNGs' own ``Title`` text, status.json and the command's output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import polars as pl

from conftest import (
    child_env,
    crunchctl_cmd,
    drop,
    iq_rows,
    make_incomplete,
    tiny_tiq,
    wait_for,
)

SMALL = ["--lframes", "1024", "--zoom-span", "200000"]


def crunchctl(tmp_path: Path, *args, operator: bool = False) -> subprocess.CompletedProcess:
    """A real ``crunchctl`` process with its ledger and log in ``tmp_path``; ``operator``:
    without root's power to ignore file permissions."""
    log = [] if args[0] == "status" else ["--log-file", str(tmp_path / "crunchctl.log")]
    return subprocess.run(
        [*crunchctl_cmd(), *map(str, args), "--ledger", str(tmp_path / "ledger"), *log],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=180,
        cwd=tmp_path,
        preexec_fn=_as_an_operator if operator and os.geteuid() == 0 else None,
    )


def _as_an_operator() -> None:
    """preexec_fn: as root, give up CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH for the child
    (an operator account has neither), so a read-only folder is read-only to it."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def png_title(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as im:
        return im.text.get("Title", "")


# ------------------------------------------------------------------ the web folder


def test_a_read_only_web_folder_stops_the_run_before_any_recording(tmp_path):
    a = tiny_tiq(tmp_path / "rec" / "a.tiq")
    www = tmp_path / "www"
    www.mkdir()
    www.chmod(0o555)
    r = crunchctl(
        tmp_path, "process", a, *SMALL, "--output", tmp_path / "out", "--www", www, operator=True
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"Error: {www}: web folder is not writable"
    assert iq_rows(tmp_path / "ledger").height == 0  # no recording ran
    for once in (["--once"], []):
        r = crunchctl(
            tmp_path,
            "watch",
            a.parent,
            *once,
            *SMALL,
            "--output",
            tmp_path / "out",
            "--www",
            www,
            operator=True,
        )
        assert (r.returncode, r.stdout) == (2, ""), r.stderr
        assert r.stderr.strip() == f"Error: {www}: web folder is not writable"


def test_a_failed_web_copy_is_a_warning_and_said_so(tmp_path):
    a = tiny_tiq(tmp_path / "rec" / "a.tiq")
    www = tmp_path / "www"
    (www / "rec.png").mkdir(parents=True)  # the fixed-name copy cannot be replaced
    r = crunchctl(tmp_path, "process", a, *SMALL, "--output", tmp_path / "out", "--www", www)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("processed 1 (1 with a warning), failed 0 in ")
    assert f"{a}: ok in " in r.stderr
    assert f"web copy failed: {www / 'rec.png'}: cannot write: Is a directory" in r.stderr
    assert "products" not in r.stderr and "ERROR" not in r.stderr
    (row,) = iq_rows(tmp_path / "ledger").iter_rows(named=True)
    assert row["status"] == "ok" and row["error"] is None
    assert row["warning"].startswith("web copy failed: ")
    assert (tmp_path / "out" / "a.png").exists()


def test_watch_once_does_not_promise_a_retry(tmp_path):
    folder = tmp_path / "rec"
    tiny_tiq(folder / "a.tiq")
    (tmp_path / "out" / "a.png").mkdir(parents=True)  # the product cannot be written
    r = crunchctl(tmp_path, "watch", folder, "--once", *SMALL, "--output", tmp_path / "out")
    assert r.returncode == 1, r.stderr
    assert "a.png: cannot write" in r.stderr
    assert "try again" not in r.stderr


# ------------------------------------------------------------------ the output folder


def test_an_output_folder_deleted_under_a_watch_is_made_again(tmp_path, watchers):
    w = watchers(tmp_path, "--retry-after", "1", www=False).start()
    drop(tmp_path / "staging", w.folder, "a.tiq", seed=1)
    wait_for(lambda: (w.rows()["status"] == "ok").sum() == 1, 60, "the first recording")
    shutil.rmtree(w.out)
    b = drop(tmp_path / "staging", w.folder, "b.tiq", seed=2)
    wait_for(lambda: (w.rows()["status"] == "ok").sum() == 2, 60, "the second recording")
    assert (w.out / "b.png").exists()
    assert w.rows(b)["status"].to_list() == ["ok"]  # made at once, not after a failure
    assert "the output folder was gone; made it again" in w.stderr
    assert w.stop() == 0


def test_a_watch_counts_recordings_not_attempts(tmp_path, watchers):
    w = watchers(tmp_path, "--retry-after", "1", www=False).start()
    drop(tmp_path / "staging", w.folder, "a.tiq", seed=1)
    wait_for(lambda: (w.rows()["status"] == "ok").sum() == 1, 60, "the first recording")
    w.out.rename(tmp_path / "out.away")  # the share goes; a file stands in its place
    w.out.write_text("not a folder")
    b = drop(tmp_path / "staging", w.folder, "b.tiq", seed=2)
    wait_for(lambda: (w.rows(b)["status"] == "error").sum() >= 2, 60, "two failed attempts")
    w.out.unlink()
    (tmp_path / "out.away").rename(w.out)
    wait_for(lambda: (w.rows()["status"] == "ok").sum() == 2, 60, "the retried recording")
    assert w.stop() == 0
    (line,) = [x for x in w.stdout.splitlines() if x.startswith("watch ")]
    assert "processed 2, failed 0" in line, line


# ------------------------------------------------------------------ incomplete recordings


def test_process_incomplete_reads_a_cut_recording_as_far_as_it_goes(tmp_path):
    cut = make_incomplete(tmp_path / "rec" / "cut.tiq")
    out = tmp_path / "out"
    r = crunchctl(tmp_path, "process", cut, *SMALL, "--output", out)
    assert r.returncode == 1
    assert (
        "only 24576 bytes of data follow (process --incomplete reads the whole frames present)"
    ) in r.stderr
    r = crunchctl(
        tmp_path,
        "process",
        cut,
        "--incomplete",
        *SMALL,
        "--output",
        out,
        "--www",
        tmp_path / "www",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["processed"], doc["failed"], doc["warnings"]) == (1, 0, 1)
    (o,) = doc["outcomes"]
    assert o["status"] == "ok" and o["error"] is None
    assert o["warning"].startswith("incomplete: processed the 3 whole frames present")
    # The picture and the page say so too.
    assert png_title(out / "cut.png").endswith("   (incomplete)")
    assert png_title(out / "cut_zoom.png").endswith("   (incomplete)   (zoom)")
    status = json.loads((tmp_path / "www" / "status.json").read_text())
    latest = status["recorders"][0]["latest"]
    assert latest["file"] == "cut.tiq" and latest["warning"] == o["warning"]
    assert card_warnings(tmp_path / "www") == [f"warning: {o['warning']}"]


def card_warnings(www: Path) -> list[str]:
    """The warning lines the page's cards show, read by a real headless Chromium."""
    import tempfile
    import time

    from conftest import browser_paths, require

    require("browser")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    chromium, chromedriver = browser_paths()
    profile = tempfile.mkdtemp(prefix="crunchctl-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=opts)
    try:
        driver.get((www / "index.html").as_uri())
        deadline = time.monotonic() + 20
        while not driver.find_elements(By.CSS_SELECTOR, "article.card .file"):
            assert time.monotonic() < deadline, "no card drawn"
            time.sleep(0.1)
        return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "article.card .warn")]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_a_complete_recording_title_says_nothing_of_the_kind(tmp_path):
    a = tiny_tiq(tmp_path / "rec" / "a.tiq")
    r = crunchctl(
        tmp_path, "process", a, "--incomplete", *SMALL, "--output", tmp_path / "out", "--json"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["outcomes"][0]["warning"] is None
    assert "incomplete" not in png_title(tmp_path / "out" / "a.png")
    assert png_title(tmp_path / "out" / "a.png").startswith("a.tiq   ")


# ------------------------------------------------------------------ warnings are not errors


LOADER = """
import numpy as np

def load(item):
    x = np.arange(0.0, 600.0, 10.0)
    return [{"x": x, "y": np.arange(4.0), "data": np.ones((4, x.size))}]
"""


def test_warnings_have_their_own_field_in_json_ledger_and_status(tmp_path):
    (tmp_path / "loader.py").write_text(LOADER)
    (tmp_path / "items.txt").write_text("a\n")
    (tmp_path / "events.txt").write_text("100\n5000\n")
    r = crunchctl(
        tmp_path,
        "batch",
        tmp_path / "items.txt",
        "--loader",
        f"{tmp_path / 'loader.py'}:load",
        "--events",
        tmp_path / "events.txt",
        "--output",
        tmp_path / "figs",
        "--dpi",
        "40",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    (o,) = doc["outcomes"]
    assert o["status"] == "ok" and o["error"] is None and doc["warnings"] == 1
    assert "1 of 2 event(s) outside the x range" in o["warning"]

    r = crunchctl(tmp_path, "status", "--list", "--json")
    (item,) = json.loads(r.stdout)["list"]
    assert item["error"] is None and "outside the x range" in item["warning"]
    r = crunchctl(tmp_path, "status", "--list")
    header = next(x for x in r.stdout.splitlines() if x.strip().startswith("item "))
    assert header.split()[-2:] == ["error", "warning"]
    assert not r.stdout.count("Latest errors")


def test_rows_of_older_versions_read_their_warning_from_error(tmp_path):
    """A ledger file without the warning column (written before it existed) is read with
    it null; an ok row's text in ``error`` is shown as its warning."""
    from crunchctl.ledger.store import SCHEMA

    ledger = tmp_path / "ledger"
    a = tiny_tiq(tmp_path / "rec" / "a.tiq")
    r = crunchctl(tmp_path, "process", a, *SMALL, "--output", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    (part,) = ledger.rglob("*.parquet")
    old = (
        pl.read_parquet(part)
        .drop("warning")
        .with_columns(pl.lit("incomplete: processed the 3 whole frames present").alias("error"))
    )
    assert "warning" in SCHEMA and "warning" not in old.columns
    old.write_parquet(part)
    r = crunchctl(tmp_path, "status", "--list", "--json")
    assert r.returncode == 0, r.stderr
    (item,) = json.loads(r.stdout)["list"]
    assert item["status"] == "ok" and item["error"] is None
    assert item["warning"] == "incomplete: processed the 3 whole frames present"
