"""What a watch says and records about itself: one line per event, -vv details, the
"changed, processed again" line, --incomplete-after, --quiet-after and the watch record
``status`` shows. Real ``crunchctl watch`` processes on tiny recordings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import (
    child_env,
    crunchctl_cmd,
    drop,
    iq_rows as rows,
    make_incomplete,
    require,
    run_once,
    tiny_tiq,
    wait_for,
)
from crunchctl.watch.report import QuietAlarm


def status_json(ledger: Path) -> dict:
    out = subprocess.run(
        [*crunchctl_cmd(), "--ledger", str(ledger), "status", "--json"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_vv_says_watching_once_with_workers_and_settings_and_a_stop_in_one_line(tmp_path, watchers):
    w = watchers(tmp_path, "-vv", "--workers", "3").start()
    wait_for(lambda: "quiet recorder:" in w.stderr, 30, "the -vv description")
    assert w.stop(signal.SIGTERM) == 0
    err = w.stderr
    assert err.count("watching ") == 1, err
    assert "workers: a local pool of 3 worker processes" in err
    assert "patterns: *.tiq" in err and "file-system events" in err
    assert "workers = 3  (command line)" in err  # the settings with their origins, once
    assert err.count("workers = 3") == 1
    assert err.count("stopping: ") == 1
    assert "stopped taking work" not in err and "WARNING" not in err


def test_workers_above_the_cores_is_said_once(tmp_path):
    n = (os.cpu_count() or 1) + 2
    out = run_once(tmp_path, "--workers", str(n))
    assert out.returncode == 0, out.stderr
    assert out.stderr.count(f"{n} workers on a machine with") == 1, out.stderr


def test_overwritten_after_processing_is_changed_processed_again(tmp_path, watchers):
    w = watchers(tmp_path).start()
    rec = drop(tmp_path / "staging", w.folder, "a.tiq", seed=1)
    wait_for(lambda: f"ok {rec}" in w.stderr, 30, "the first version")
    assert "changed" not in w.stderr
    time.sleep(0.05)
    drop(tmp_path / "staging", w.folder, "a.tiq", seed=2)
    wait_for(lambda: "ok (changed, processed again)" in w.stderr, 30, "the second version")
    assert w.stop() == 0
    log = (tmp_path / "watch.log").read_text()
    assert f"{rec}: changed, processed again: ok in" in log
    assert rows(w.ledger, rec).height == 2


def test_incomplete_after_processes_what_is_there_with_a_warning(tmp_path):
    folder = tmp_path / "rec"
    cut = make_incomplete(folder / "cut.tiq")
    whole = tiny_tiq(folder / "whole.tiq", seed=3)
    old = time.time() - 120
    os.utime(cut, (old, old))
    # Without the option: pending, as before.
    out = run_once(tmp_path)
    assert out.returncode == 0 and f"pending: {cut}" in out.stdout, out.stdout + out.stderr
    out = run_once(tmp_path, "--incomplete-after", "1")
    assert out.returncode == 0, out.stderr
    assert "pending 0" in out.stdout
    assert (
        f"{cut}: ok in" in out.stderr and "incomplete: processed the 3 whole frames" in out.stderr
    ), out.stderr
    row = rows(tmp_path / "ledger", cut).row(-1, named=True)
    assert row["status"] == "ok" and row["warning"].startswith("incomplete:")
    assert (tmp_path / "out" / "cut.png").stat().st_size > 1000
    assert rows(tmp_path / "ledger", whole).row(-1, named=True)["error"] is None


def test_incomplete_after_waits_while_the_file_is_young(tmp_path):
    folder = tmp_path / "rec"
    cut = make_incomplete(folder / "cut.tiq")
    out = run_once(tmp_path, "--incomplete-after", "1")
    assert f"pending: {cut}" in out.stdout, out.stdout


def test_quiet_after_warns_once_then_once_more_and_status_shows_it(tmp_path, watchers):
    w = watchers(tmp_path, "--quiet-after", "0.03").start()  # 1.8 s
    wait_for(lambda: "no new recording in" in w.stderr, 30, "the quiet warning")
    wait_for(
        lambda: status_json(w.ledger)["watches"][0]["quiet_since"], 15, "quiet_since in the record"
    )
    time.sleep(2.5)
    assert w.stderr.count("no new recording in") == 1  # once, not every turn
    st = subprocess.run(
        [*crunchctl_cmd(), "--ledger", str(w.ledger), "status"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    ).stdout
    assert "Watching now" in st and str(w.folder) in st and str(w.proc.pid) in st
    drop(tmp_path / "staging", w.folder, "b.tiq")
    wait_for(lambda: "recordings arrive again" in w.stderr, 30, "the second warning")
    assert "b.tiq" in w.stderr.split("recordings arrive again")[1].splitlines()[0]
    assert w.stop() == 0


def test_status_shows_the_running_watcher_with_last_event_and_queue(tmp_path, watchers):
    w = watchers(tmp_path).start()
    rec = drop(tmp_path / "staging", w.folder, "c.tiq")
    wait_for(lambda: f"ok {rec}" in w.stderr, 30, "the recording")

    def recorded() -> dict | None:
        (doc,) = status_json(w.ledger)["watches"]
        return doc if doc.get("last_recording") == str(rec) else None

    doc = wait_for(recorded, 15, "the watch record to name the last recording")
    assert doc["running"] is True and doc["pid"] == w.proc.pid
    assert doc["last_status"] == "ok" and doc["last_event"] and doc["queue"] == 0
    assert doc["quiet_since"] is None
    assert w.stop() == 0
    (doc,) = status_json(w.ledger)["watches"]
    assert doc["running"] is False
    st = subprocess.run(
        [*crunchctl_cmd(), "--ledger", str(w.ledger), "status"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    ).stdout
    assert "No watch is running with this ledger." in st and "Watching now" not in st


def test_quiet_alarm_rules():
    a = QuietAlarm(1.0, "/rec")
    a.start(0.0)
    a.check(59.0)
    assert a.since is None
    a.check(61.0)
    assert a.since == 0.0
    a.arrived("/rec/x.tiq", 100.0)
    assert a.since is None and a.last_arrival == 100.0
    off = QuietAlarm(None, "/rec")
    off.start(0.0)
    off.check(1e9)
    assert off.since is None


def test_panel_fits_80_columns_and_wraps_between_counts():
    from rich.console import Console

    from crunchctl.cli.watch import LivePanel
    from crunchctl.outcome import Outcome
    from crunchctl.watch.report import WatchSnapshot

    last = Outcome(
        "/data/rsa510/20240417_130522.tiq",
        "iq",
        "watch:/data/rsa510",
        "ok",
        time.time() - 2,
        time.time(),
        error=None,
        extra={"note": "changed, processed again"},
    )
    for width, queued in ((80, 3), (60, 12345)):
        console = Console(width=width, record=True, file=open(os.devnull, "w"), force_terminal=True)
        panel = LivePanel(console)
        panel.snap = WatchSnapshot(
            folder="/data/rsa510",
            observer="file-system events",
            started=time.time() - 100,
            queued=queued,
            done=12,
            rate_per_min=12.5,
            last=last,
            quiet_since=time.time() - 600,
        )
        console.print(panel._render())
        text = console.export_text()
        lines = text.splitlines()
        assert all(len(line) <= width for line in lines)
        # "rate" and its value stay on one line, whatever the width.
        assert any("rate 12.5/min" in line for line in lines), text
        assert "changed, processed again" in text and "no new recording since" in text


def test_panel_after_ctrl_c_in_tmux_has_one_top_border(tmp_path):

    require("tmux")
    folder = tmp_path / "rec"
    tiny_tiq(folder / "a.tiq")
    session = f"crunch{os.getpid()}"
    # The watch is the pane's only process (exec), and the pane stays on screen after it
    # ends: a shell around it would itself die of the Ctrl-C (unless the test runner
    # happened to start with SIGINT ignored) and take the screen with it.
    cmd = (
        f"cd {tmp_path} && exec {' '.join(crunchctl_cmd())} watch {folder} --ledger L "
        f"--output out --lframes 1024 -j 1 --log-file log.txt"
    )
    env = {k: v for k, v in child_env().items() if k not in ("COLUMNS", "NO_COLOR")}
    subprocess.run(
        ["tmux", "new-session", "-d", "-x", "80", "-y", "30", "-s", session, cmd]
        + [";", "set-option", "-w", "-t", session, "remain-on-exit", "on"],
        check=True,
        env=env,
    )
    try:

        def screen() -> str:
            return subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout

        wait_for(lambda: "a.tiq  ok" in screen(), 60, "the panel to show the recording")
        assert not any(len(line) > 80 for line in screen().splitlines())
        status_line = [line for line in screen().splitlines() if "status" in line][0]
        assert "rate" in status_line  # not wrapped onto a line of its own
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        wait_for(lambda: "watch interrupted" in screen(), 30, "the watch to stop")
        shown = screen()
        assert shown.count("╭─ crunchctl watch") == 1, shown
        assert "^C" not in shown

        def exit_status() -> str:
            return subprocess.run(
                ["tmux", "display-message", "-p", "-t", session, "#{pane_dead_status}"],
                capture_output=True,
                text=True,
            ).stdout.strip()

        assert wait_for(exit_status, 30, "the watch to exit") == "130"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
