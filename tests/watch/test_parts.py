"""The parts of ``crunchctl watch`` that need no running watch: settle tracking, folder
scans, options, the single-watcher lock, the watch record, pending recordings and the panel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_incomplete, tiny_tiq
from crunchctl.config import Settings
from crunchctl.errors import LedgerBusyError
from crunchctl.ledger.store import Ledger
from crunchctl.watch.lock import WatchLock
from crunchctl.watch.options import WatchOptions, check_options
from crunchctl.watch.readiness import SettleTracker
from crunchctl.watch.record import WatchRecord, known_watches
from crunchctl.watch.report import WatchSnapshot
from crunchctl.watch.scan import pending_recordings, scan_folder


def test_settle_tracker_needs_unchanged_size_and_mtime_for_settle_seconds():
    t = SettleTracker(2.0)
    assert not t.observe("a", 10, 100, now=0.0)
    assert not t.observe("a", 10, 100, now=1.9)
    assert t.observe("a", 10, 100, now=2.0)
    # Any change restarts the clock: size, then mtime alone.
    assert not t.observe("a", 20, 100, now=2.5)
    assert t.due("a") == 4.5
    assert not t.observe("a", 20, 101, now=4.5)
    assert not t.observe("a", 20, 101, now=6.0)
    assert t.observe("a", 20, 101, now=6.5)
    # Paths are independent; forget starts over.
    assert not t.observe("b", 1, 1, now=6.5)
    t.forget("a")
    assert "a" not in t and "b" in t and len(t) == 1
    assert not t.observe("a", 20, 101, now=7.0)


def test_settle_tracker_zero_settles_at_once():
    assert SettleTracker(0.0).observe("a", 1, 1, now=0.0)


def test_scan_is_oldest_first_matches_case_insensitively_and_skips_hidden(tmp_path):
    for i, name in enumerate(["b.tiq", "a.TIQ", "._a.tiq", "c.txt", "sub/d.tiq"]):
        p = tmp_path / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
        os.utime(p, ns=(10**18 - i * 10**9, 10**18 - i * 10**9))
    names = [Path(p).name for p, _, _ in scan_folder(str(tmp_path), ["*.tiq"], False)]
    assert names == ["a.TIQ", "b.tiq"]
    names = [Path(p).name for p, _, _ in scan_folder(str(tmp_path), ["*.tiq"], True)]
    assert names == ["d.tiq", "a.TIQ", "b.tiq"]


def test_options_are_checked(tmp_path):
    from crunchctl.errors import UsageError

    with pytest.raises(UsageError, match="does not exist"):
        check_options(WatchOptions(str(tmp_path / "nope")))
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        check_options(WatchOptions(str(tmp_path / "f")))
    with pytest.raises(UsageError, match="--poll"):
        check_options(WatchOptions(str(tmp_path), poll=0))


def test_lock_refuses_a_second_watch_and_names_the_first(tmp_path):
    folder = str(tmp_path / "rec")
    ledger = tmp_path / "ledger"
    with WatchLock(ledger, folder):
        record = WatchRecord(ledger, folder, ["*.TIQ"], True)
        record.start()
        with pytest.raises(LedgerBusyError) as err:
            WatchLock(ledger, folder).acquire(wait=0.2)
        message = str(err.value)
        assert f"pid {os.getpid()}" in message and folder in message and "since" in message
        assert err.value.exit_code == 2
        # Another folder on the same ledger is fine.
        with WatchLock(ledger, str(tmp_path / "other")):
            other = WatchRecord(ledger, str(tmp_path / "other"), ["*.tiq"], False)
            other.start()
            other.stop()
        # status learns which folders are watched, and whether a watch runs now.
        found = {w["folder"]: w for w in known_watches(ledger)}
        assert found[folder]["running"] and found[folder]["pid"] == os.getpid()
        assert found[folder]["patterns"] == ["*.TIQ"] and found[folder]["recursive"]
        assert not found[str(tmp_path / "other")]["running"]
        assert found[str(tmp_path / "other")]["stopped"]
    with WatchLock(ledger, folder):  # released on exit
        pass


def test_a_killed_watch_is_not_running(tmp_path):
    """A record left saying running by a process that died reads as not running."""
    ledger = tmp_path / "ledger"
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    record = WatchRecord(ledger, str(tmp_path / "rec"), ["*.tiq"], False)
    record.doc["pid"] = int(child.stdout)  # that process has exited
    record.start()
    (w,) = known_watches(ledger)
    assert w["folder"] == str(tmp_path / "rec") and not w["running"]
    doc = json.loads(record.path.read_text())
    assert doc["running"] is True and doc["heartbeat"] and doc["queue"] == 0


def test_pending_recordings_for_status(tmp_path):
    from crunchctl.recordings.run import process_files

    folder = tmp_path / "rec"
    done = tiny_tiq(folder / "done.tiq")
    new = tiny_tiq(folder / "new.tiq", seed=2)
    half = make_incomplete(folder / "half.tiq")
    settings = Settings(lframes=1024, output_path=str(tmp_path / "out"), workers=1)
    with Ledger(tmp_path / "ledger") as ledger:
        process_files([done], settings, ledger=ledger)
        pending = dict(pending_recordings(str(folder), ["*.tiq"], False, ledger, settings))
    assert set(pending) == {str(new), str(half)}
    assert pending[str(new)] == "not done yet"
    assert pending[str(half)].startswith("incomplete: header says")


def test_live_panel_shows_counts_last_png_and_pending():
    from rich.console import Console

    from crunchctl.cli.watch import LivePanel
    from crunchctl.outcome import Outcome

    console = Console(record=True, width=160, force_terminal=True, color_system=None)
    panel = LivePanel(console)
    last = Outcome(
        "/data/rsa510/a.tiq",
        "iq",
        "watch:/data/rsa510",
        "ok",
        time.time() - 2,
        time.time(),
        10,
        10,
        "d",
        ["/out/a.png"],
    )
    panel.snap = WatchSnapshot(
        folder="/data/rsa510",
        observer="file-system events",
        started=time.time() - 65,
        queued=3,
        in_progress=["/data/rsa510/b.tiq"],
        done=7,
        failed=1,
        rate_per_min=4.5,
        last=last,
        last_published=["/www/rsa510.png"],
        pending=[("/data/rsa510/c.tiq", "incomplete: header says ...")],
    )
    console.print(panel._render())
    text = console.export_text()
    for expected in (
        "crunchctl watch /data/rsa510",
        "queue 3",
        "in progress 1",
        "done 7",
        "failed 1",
        "pending 1",
        "4.5/min",
        "a.tiq",
        "/www/rsa510.png",
        "c.tiq",
        "incomplete",
        "b.tiq",
        "up 0:01:0",
    ):
        assert expected in text, (expected, text)


def test_a_rescan_asks_the_ledger_only_about_files_no_event_announced(tmp_path):
    """A rescan keeps no list of the folder and reads the ledger only for files it finds
    first: the backlog at the start, or files whose events were lost."""
    from crunchctl.recordings.run import process_files
    from crunchctl.watch.session import Watch

    folder = tmp_path / "rec"
    done = tiny_tiq(folder / "done.tiq")
    settings = Settings(lframes=1024, output_path=str(tmp_path / "out"), workers=1)
    with Ledger(tmp_path / "ledger") as ledger:
        process_files([done], settings, ledger=ledger)
        asked: list[list[str]] = []
        real = ledger.done_items

        def done_items(kind, candidates, *args, **kwargs):
            asked.append(sorted(c[0] for c in candidates))
            return real(kind, candidates, *args, **kwargs)

        ledger.done_items = done_items  # the real query, counted
        watch = Watch(WatchOptions(str(folder), patterns=("*.tiq",)), settings, ledger)
        q = watch.queue
        watch.rescan()  # the start: the backlog is looked up
        assert asked == [[str(done)]]
        assert q.attempted.get(str(done)) is not None and not q.dirty

        announced = tiny_tiq(folder / "announced.tiq", seed=2)
        q.mark(str(announced))  # what a file-system event does
        watch.rescan()
        assert asked == [[str(done)]]  # nothing new for the ledger
        assert list(q.dirty) == [str(announced)]

        lost = tiny_tiq(folder / "lost.tiq", seed=3)  # its event was lost
        os.utime(lost, ns=(time.time_ns(), time.time_ns() + 10**9))  # newest of the three
        watch.rescan()
        assert asked == [[str(done)], [str(lost)]]
        assert list(q.dirty) == [str(announced), str(lost)]  # both due, oldest first
        assert q.attempted.get(str(done)) is not None  # the done one stays done
