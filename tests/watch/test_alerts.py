"""``watch --on-alert CMD``: real ``crunchctl watch`` processes and a real hook script that
appends the JSON on its stdin to a file (a failed recording, the stop, a hook that hangs,
a quiet recorder and its return, a command that cannot run).
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from pathlib import Path

from conftest import WatchProc, drop, run_once, tiny_tiq, wait_for

HOOK = """\
import sys, time
data = sys.stdin.read()
if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))
with open(sys.argv[1], "a") as f:
    f.write(data)
"""


def hook(tmp_path: Path, sleep: float | None = None) -> tuple[str, Path]:
    """The --on-alert command of a hook script writing to ``alerts.jsonl``, and that file."""
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    out = tmp_path / "alerts.jsonl"
    args = [sys.executable, str(script), str(out), *([str(sleep)] if sleep else [])]
    return shlex.join(args), out


def events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_bad_recording_is_one_failed_alert_and_the_stop_is_one_stopped_alert(tmp_path, watchers):
    cmd, out = hook(tmp_path)
    w = watchers(tmp_path, "--on-alert", cmd).start()
    junk = w.folder / "junk.tiq"
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "junk.tiq").write_bytes(b"this is not a TIQ file")
    (tmp_path / "staging" / "junk.tiq").rename(junk)
    good = drop(tmp_path / "staging", w.folder, "good.tiq")
    wait_for(lambda: f"ok {good}" in w.stderr, 30, "the good recording")
    wait_for(lambda: events(out), 30, "the failed alert")
    assert w.stop(signal.SIGTERM) == 0
    got = events(out)
    assert [e["event"] for e in got] == ["failed", "stopped"], got
    failed, stopped = got
    assert failed["item"] == str(junk) and "not a TIQ recording" in failed["error"]
    assert failed["folder"] == str(w.folder) and failed["time"].endswith("Z")
    assert stopped["reason"] == "SIGTERM" and stopped["ok"] == 1 and stopped["failed"] == 1


def test_watch_once_ends_with_a_stopped_alert(tmp_path):
    cmd, out = hook(tmp_path)
    tiny_tiq(tmp_path / "rec" / "a.tiq")
    result = run_once(tmp_path, "--on-alert", cmd)
    assert result.returncode == 0, result.stderr
    (stopped,) = events(out)
    assert stopped["event"] == "stopped" and stopped["reason"] == "done"
    assert stopped["ok"] == 1 and stopped["failed"] == 0


def test_the_config_key_on_alert_works_like_the_option(tmp_path):
    cmd, out = hook(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(f"[watch]\non_alert = {json.dumps(cmd)}\nalert_timeout = 5\n")
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "junk.tiq").write_bytes(b"this is not a TIQ file")
    result = WatchProc(tmp_path).run_once("--config", str(config))
    assert result.returncode == 1, result.stderr
    assert [e["event"] for e in events(out)] == ["failed", "stopped"]


def test_a_hook_past_its_time_limit_is_killed_and_logged_and_the_watch_goes_on(tmp_path, watchers):
    cmd, out = hook(tmp_path, sleep=30)
    w = watchers(tmp_path, "--on-alert", cmd, "--alert-timeout", "1").start()
    (w.folder / "junk.tiq").write_bytes(b"this is not a TIQ file")
    wait_for(lambda: "took more than 1 s and was killed" in w.stderr, 30, "the killed hook")
    # The watch went on while the hook hung, and after it was killed.
    good = drop(tmp_path / "staging", w.folder, "good.tiq")
    wait_for(lambda: f"ok {good}" in w.stderr, 30, "a recording after the killed hook")
    started = time.monotonic()
    assert w.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 15  # the stop alert's hook is killed too
    assert not events(out)  # every run was killed before it wrote
    assert "alert failed: the alert command took more than 1 s" in w.log()
    assert "alert stopped: the alert command took more than 1 s" in w.log()


def test_quiet_and_back_alerts(tmp_path, watchers):
    cmd, out = hook(tmp_path)
    # --quiet-after is in minutes: 0.02 min is 1.2 s.
    w = watchers(tmp_path, "--on-alert", cmd, "--quiet-after", "0.02").start()
    wait_for(lambda: events(out), 30, "the quiet alert")
    (quiet,) = events(out)
    assert quiet["event"] == "quiet" and quiet["quiet_seconds"] >= 1.2
    assert quiet["since"].endswith("Z")
    rec = drop(tmp_path / "staging", w.folder, "b.tiq")
    wait_for(lambda: len(events(out)) >= 2, 30, "the back alert")
    back = events(out)[1]
    assert back["event"] == "back" and back["item"] == str(rec)
    assert w.stop(signal.SIGTERM) == 0
    assert [e["event"] for e in events(out)][-1] == "stopped"


def test_a_failing_hook_is_logged_and_a_missing_program_is_a_usage_error(tmp_path, watchers):
    w = watchers(
        tmp_path,
        "--on-alert",
        f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(\"hook says no\")'",
    ).start()
    (w.folder / "junk.tiq").write_bytes(b"this is not a TIQ file")
    wait_for(
        lambda: "the alert command failed (exit 1): hook says no" in w.stderr, 30, "the failed hook"
    )
    assert w.stop(signal.SIGTERM) == 0
    result = run_once(tmp_path / "other", "--on-alert", "no-such-program-here --flag")
    assert result.returncode == 2
    assert "no-such-program-here: program not found" in result.stderr


def test_a_hanging_hook_never_blocks_the_sender_and_extra_alerts_are_dropped_and_counted(
    tmp_path, monkeypatch, caplog
):
    from crunchctl.watch import alerts

    monkeypatch.setattr(alerts, "QUEUE_SIZE", 2)
    cmd, out = hook(tmp_path, sleep=30)
    a = alerts.Alerts(cmd, str(tmp_path), timeout=1.0)
    started = time.monotonic()
    for i in range(8):
        a.send("failed", item=f"r{i}.tiq", error="bad")
    assert time.monotonic() - started < 0.5  # queued or dropped, never waited for
    assert 8 - 2 - 1 <= a.dropped <= 8 - 2
    a.close()
    assert time.monotonic() - started < 10
    assert a.failed == 8 - a.dropped and a.sent == 0 and not events(out)
    assert f"{a.dropped} alert(s) were dropped" in caplog.text
