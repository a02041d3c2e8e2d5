"""crunchctl watch: real folders, a real observer, real processes.

Most tests run the installed ``crunchctl watch`` as a child process on a folder in
``tmp_path`` (ledger, products and web folder there too) and read the ledger to check that
every recording version was processed exactly once. Recordings are tiny (4 frames of 1024
samples, ``--lframes 1024``) so the suite stays fast.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (
    WatchProc,
    child_env,
    crunchctl_cmd,
    drop,
    iq_rows,
    make_incomplete,
    run_once,
    tiny_tiq,
    wait_for,
)
from crunchctl.formats import synth

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
WRITER = HELPERS / "tiqwriter_proc.py"

rows = iq_rows  # ledger rows of recordings, optionally of one item


def count_ok(ledger: Path) -> int:
    import polars as pl

    return rows(ledger).filter(pl.col("status") == "ok").height


def test_no_folder_is_a_usage_error(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from crunchctl.cli import app

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("CRUNCHCTL_CONFIG", raising=False)
    monkeypatch.delenv("CRUNCHCTL_FOLDER_PATH", raising=False)
    result = CliRunner().invoke(
        app,
        ["watch", "--ledger", str(tmp_path / "l")],
        env={"NO_COLOR": "1", "_TYPER_FORCE_DISABLE_TERMINAL": "1"},
    )
    assert result.exit_code == 2
    assert "no folder to watch" in result.output
    result = CliRunner().invoke(
        app,
        ["watch", str(tmp_path / "missing"), "--ledger", str(tmp_path / "l")],
        env={"NO_COLOR": "1"},
    )
    assert result.exit_code == 2
    assert "does not exist" in result.output


# ---------------------------------------------------------------- real observer, children


def test_writer_in_chunks_is_processed_once_after_the_last_byte(tmp_path, watchers):
    w = watchers(tmp_path).start()
    src = tiny_tiq(tmp_path / "staging" / "slow.tiq")
    dest = w.folder / "slow.tiq"
    writer = subprocess.run(
        [sys.executable, str(WRITER), str(src), str(dest), "--chunks", "6", "--pause", "0.3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    last_byte = float(writer.stdout.split()[1])
    wait_for(lambda: count_ok(w.ledger) >= 1, 30, "the recording to be processed")
    time.sleep(1.0)  # time for a wrong second processing to show up
    r = rows(w.ledger, dest)
    assert r.height == 1, r
    row = r.row(0, named=True)
    assert row["status"] == "ok"
    assert row["size"] == src.stat().st_size
    assert row["started"].timestamp() >= last_byte - 0.01
    assert (w.www / "rec.png").exists() and (w.www / "zoom_rec.png").exists()
    assert "waiting for" in w.stderr and "incomplete" in w.stderr
    assert w.stop() == 0


def short_tiq(path: Path, seed: int) -> Path:
    """A valid recording holding less than one 1024-sample frame: fails fast, as ``error``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return synth.make_recording(
        path, synth.RecordingSpec(nframes=0, lframes=1024, extra_samples=512, seed=seed)
    )


def burst(w: WatchProc, staging: Path, n: int, real: int) -> list[str]:
    """Make ``n`` recordings (``real`` of them processable) and rename them in at once."""
    names = [f"burst_{i:03d}.tiq" for i in range(n)]
    for i, name in enumerate(names):
        (tiny_tiq if i < real else short_tiq)(staging / name, seed=i)
    for name in names:
        os.replace(staging / name, w.folder / name)
    return [str(w.folder / name) for name in names]


def test_burst_of_real_recordings_each_processed_exactly_once(tmp_path, watchers):
    # Rendering a quicklook costs ~0.4 s of CPU: 30 real recordings keep the fast suite
    # fast; the burst of 200 is the slow test below.
    n = 30
    w = watchers(tmp_path).start()
    items = burst(w, tmp_path / "staging", n, real=n)
    wait_for(lambda: count_ok(w.ledger) >= n, 120, f"{n} recordings", interval=0.5)
    time.sleep(1.0)  # time for a wrong second processing to show up
    assert w.stop() == 0
    r = rows(w.ledger)
    assert sorted(r["item"].to_list()) == items  # each exactly once
    assert set(r["status"].to_list()) == {"ok"}
    assert len(list(w.out.glob("*_zoom.png"))) == n
    assert f"processed {n}, failed 0" in w.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_burst_of_200_real_recordings(tmp_path, watchers):
    w = watchers(tmp_path).start()
    items = burst(w, tmp_path / "staging", 200, real=200)
    wait_for(lambda: count_ok(w.ledger) >= 200, 600, "200 recordings", interval=1.0)
    assert w.stop() == 0
    r = rows(w.ledger)
    assert sorted(r["item"].to_list()) == items and set(r["status"].to_list()) == {"ok"}
    assert len(list(w.out.glob("*.png"))) == 400


def test_moved_in_rewritten_and_repeated_events(tmp_path, watchers):
    w = watchers(tmp_path).start()
    other = tmp_path / "elsewhere"
    moved = drop(other, w.folder, "moved.tiq", seed=3)
    wait_for(lambda: count_ok(w.ledger) >= 1, 30, "the moved-in recording")
    first = rows(w.ledger, moved).row(0, named=True)

    # Rewritten after it was done (different length, new mtime): processed again.
    tiny_tiq(other / "v2.tiq", seed=4, nframes=5)
    shutil.copyfile(other / "v2.tiq", moved)
    wait_for(lambda: count_ok(w.ledger) >= 2, 30, "the rewritten recording")

    # Events that change nothing (open/close, chmod) do not process it a third time.
    with open(moved, "ab"):
        pass
    os.chmod(moved, 0o644)
    time.sleep(1.0)
    r = rows(w.ledger, moved).sort("finished")
    assert r.height == 2, r
    second = r.row(1, named=True)
    assert second["size"] == moved.stat().st_size != first["size"]
    assert second["mtime_ns"] == moved.stat().st_mtime_ns
    assert w.stop() == 0


def test_sigterm_finishes_in_flight_work_and_a_restart_redoes_nothing(tmp_path, watchers):
    folder = tmp_path / "rec"
    names = [f"bk_{i:02d}.tiq" for i in range(10)]
    for i, name in enumerate(names):
        tiny_tiq(folder / name, seed=i)
    w = watchers(tmp_path, "-j", "1")  # later -j wins: one worker, a slow backlog
    w.start()
    wait_for(lambda: count_ok(w.ledger) >= 1, 30, "the first backlog recording")
    assert w.stop(signal.SIGTERM) == 0
    done_first = rows(w.ledger)
    assert 1 <= done_first.height < len(names)
    assert done_first["item"].n_unique() == done_first.height
    assert set(done_first["status"].to_list()) == {"ok"}  # in-flight work finished
    assert not list(w.out.glob(".*.tmp")) and not list(w.www.glob(".*.tmp"))
    assert "stopped (SIGTERM)" in w.stdout

    # A new recording arrives while nobody watches; the restart does only what is left.
    new = drop(tmp_path / "staging", folder, "zz_new.tiq", seed=99)
    w2 = watchers(tmp_path).start()
    # A second watch on the same folder and ledger refuses to start, naming the first.
    second = subprocess.run(w2.args(), capture_output=True, text=True, env=child_env(), timeout=30)
    assert second.returncode == 2
    assert f"pid {w2.proc.pid}" in second.stderr and "already watching" in second.stderr
    wait_for(lambda: count_ok(w2.ledger) >= len(names) + 1, 60, "the rest of the backlog")
    assert w2.stop(signal.SIGINT) == 130
    r = rows(w2.ledger)
    assert r.height == len(names) + 1  # nothing processed twice
    assert r["item"].n_unique() == r.height
    assert str(new) in r["item"].to_list()
    assert "interrupted" in w2.stdout


def test_once_drains_the_backlog_and_reports_incomplete_as_pending(tmp_path):
    folder = tmp_path / "rec"
    done = [tiny_tiq(folder / f"ok_{i}.tiq", seed=i) for i in range(3)]
    half = make_incomplete(folder / "half.tiq")
    result = run_once(tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"pending: {half}: incomplete" in result.stdout
    assert "processed 3, failed 0" in result.stdout
    r = rows(tmp_path / "ledger")
    assert sorted(r["item"].to_list()) == sorted(map(str, done))
    # Again: nothing to redo, still pending.
    again = run_once(tmp_path)
    assert again.returncode == 0
    assert "processed 0" in again.stdout and "skipped 3 already done" in again.stdout
    assert rows(tmp_path / "ledger").height == 3


def test_once_with_a_bad_recording_exits_1(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    (folder / "junk.tiq").write_bytes(b"this is not a TIQ file")
    tiny_tiq(folder / "good.tiq")
    result = run_once(tmp_path)
    assert result.returncode == 1
    assert "not a TIQ recording" in result.stderr
    assert "processed 1, failed 1" in result.stdout


def test_poll_sees_moved_and_chunked_recordings(tmp_path, watchers):
    w = watchers(tmp_path, "--poll", "0.3").start()
    assert "polling every 0.3 s" in w.stderr
    moved = drop(tmp_path / "staging", w.folder, "polled.tiq", seed=5)
    wait_for(lambda: count_ok(w.ledger) >= 1, 30, "the polled recording")
    src = tiny_tiq(tmp_path / "staging" / "slow.tiq", seed=6)
    subprocess.run(
        [
            sys.executable,
            str(WRITER),
            str(src),
            str(w.folder / "slow.tiq"),
            "--chunks",
            "4",
            "--pause",
            "0.4",
        ],
        check=True,
        timeout=30,
    )
    wait_for(lambda: count_ok(w.ledger) >= 2, 30, "the chunked recording")
    time.sleep(1.0)
    r = rows(w.ledger)
    assert r.height == 2 and r["item"].n_unique() == 2
    assert str(moved) in r["item"].to_list()
    assert w.stop() == 0


def test_observer_restarts_after_the_folder_vanishes(tmp_path, watchers):
    w = watchers(tmp_path).start()
    shutil.rmtree(w.folder)  # a share outage, as the observer sees it
    time.sleep(0.5)
    w.folder.mkdir()
    back = drop(tmp_path / "staging", w.folder, "after_outage.tiq")
    wait_for(lambda: count_ok(w.ledger) >= 1, 30, "the recording after the outage")
    assert str(back) in rows(w.ledger)["item"].to_list()
    log = (tmp_path / "watch.log").read_text() + w.stderr
    # Gone and back, or replaced by a new folder (inode) between two checks.
    assert ("is back" in log or "was replaced" in log) and "rescanning" in log
    assert w.stop() == 0


def test_recursive_same_stem_in_two_subfolders(tmp_path, watchers):
    w = watchers(tmp_path, "--recursive").start()
    (w.folder / "a").mkdir()
    a = drop(tmp_path / "s1", w.folder / "a", "same.tiq", seed=1)
    sub = tmp_path / "incoming"
    tiny_tiq(sub / "b" / "same.tiq", seed=2)
    os.replace(sub / "b", w.folder / "b")  # a whole folder moved in
    b = w.folder / "b" / "same.tiq"
    wait_for(lambda: count_ok(w.ledger) >= 2, 30, "both recordings")
    r = rows(w.ledger)
    assert sorted(r["item"].to_list()) == sorted([str(a), str(b)])
    products = [set(p) for p in r["products"].to_list()]
    assert not products[0] & products[1]  # no product overwrote the other's
    assert w.stop() == 0


def test_once_records_folders_and_dangling_links_named_like_recordings(tmp_path):
    folder = tmp_path / "rec"
    good = tiny_tiq(folder / "good.tiq")
    (folder / "dir.tiq").mkdir()
    (folder / "dangling.tiq").symlink_to(tmp_path / "nowhere.tiq")
    args = [
        *crunchctl_cmd(),
        "watch",
        str(folder),
        "--once",
        "--lframes",
        "1024",
        "--zoom-span",
        "2e5",
        "--output",
        str(tmp_path / "out"),
        "--ledger",
        str(tmp_path / "ledger"),
        "--log-file",
        str(tmp_path / "log"),
    ]
    p = subprocess.run(args, env=child_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert f"{folder / 'dangling.tiq'}: broken symbolic link" in p.stderr
    assert f"{folder / 'dir.tiq'}: is a directory" in p.stderr
    r = rows(tmp_path / "ledger")
    status = dict(zip(r["item"].to_list(), r["status"].to_list()))
    assert status == {
        str(good): "ok",
        str(folder / "dir.tiq"): "error",
        str(folder / "dangling.tiq"): "error",
    }
    # Failed entries are tried again on the next run (docs/ledger.md), once each.
    p = subprocess.run(args, env=child_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert rows(tmp_path / "ledger").height == 5


def test_output_side_failures_are_retried_while_watching(tmp_path, watchers):
    w = watchers(tmp_path, "--retry-after", "1").start()
    first = drop(tmp_path / "staging", w.folder, "a.tiq", seed=1)
    wait_for(lambda: count_ok(w.ledger) == 1, 60, "the first recording")
    # The output share goes away: a file now stands where the folder was.
    w.out.rename(tmp_path / "out.away")
    w.out.write_text("not a folder")
    second = drop(tmp_path / "staging", w.folder, "b.tiq", seed=2)
    wait_for(lambda: "will try again in 1 s" in w.stderr, 60, "the retry notice")
    assert f"{second}:" in w.stderr and "cannot write" in w.stderr
    # The share comes back; the same version is tried again without a restart.
    w.out.unlink()
    (tmp_path / "out.away").rename(w.out)
    wait_for(lambda: count_ok(w.ledger) == 2, 60, "the retried recording")
    assert w.stop() == 0
    statuses = rows(w.ledger, second).sort("finished")["status"].to_list()
    assert statuses[0] == "error" and statuses[-1] == "ok" and statuses.count("ok") == 1
    assert (w.out / "b.png").exists() and rows(w.ledger, first).height == 1
