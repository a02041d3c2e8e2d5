"""What changes the ledger without being asked for is said on the console at the default
verbosity: the import of a config's legacy tracking file, and recordings reset while a
watch runs (one INFO line each, through real ``crunchctl watch`` processes)."""

from __future__ import annotations

import os
import subprocess

from conftest import WatchProc, crunchctl_cmd, tiny_tiq, wait_for

# Loaded by the watch's Python through PYTHONPATH: the look for resets every second.
HOOK = """\
import crunchctl.watch.session as _session

_session.RESET_INTERVAL = 1.0
"""


def _info_lines(stderr: str, text: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if text in ln]


def test_watch_once_says_the_legacy_import_in_one_info_line(tmp_path):
    rec = tmp_path / "rec"
    done = tiny_tiq(rec / "20240417_130522.tiq", seed=1)
    tiny_tiq(rec / "20240417_130742.tiq", seed=2)
    track = tmp_path / "processed.toml"
    gone = tmp_path / "old" / "gone.tiq"  # the legacy file lists recordings long moved
    track.write_text(f'processed = ["{done}", "{gone}"]\n')
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[paths]\ntracking_file_path = "{track}"\n')

    w = WatchProc(tmp_path, "--config", str(cfg), folder=rec, www=False, workers=1)
    r = w.run_once()
    assert r.returncode == 0, r.stderr
    said = f"imported 2 entries from the legacy tracking file {track} into the ledger"
    [line] = _info_lines(r.stderr, "imported")
    assert said in line and " INFO " in line, r.stderr
    assert "processed 1, failed 0, skipped 1 already done" in r.stdout

    again = w.run_once()  # imported once: nothing said the second time
    assert again.returncode == 0, again.stderr
    assert _info_lines(again.stderr, "imported") == []
    # -q: errors only.
    (tmp_path / "q").mkdir()
    quiet = WatchProc(tmp_path / "q", "--config", str(cfg), "-q", folder=rec, www=False)
    r = quiet.run_once()
    assert r.returncode == 0, r.stderr
    assert "imported" not in r.stderr


def test_a_running_watch_says_recordings_were_reset_in_one_info_line(tmp_path):
    rec = tmp_path / "rec"
    recs = [tiny_tiq(rec / f"r{i}.tiq", seed=i) for i in range(3)]
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    w = WatchProc(
        tmp_path, folder=rec, www=False, workers=1, env={"PYTHONPATH": path}, new_session=True
    )
    try:
        w.start(timeout=60)
        wait_for(lambda: "processed" in w.stderr or len(w.rows()) >= 3, 60, "the backlog")
        wait_for(lambda: len(w.rows()) >= 3, 60, "the backlog in the ledger")
        reset = subprocess.run(
            [*crunchctl_cmd(), "reset", "--item", "*/r[02].tiq", "-y", "--ledger", str(w.ledger)],
            capture_output=True,
            text=True,
            env=w.env,
            timeout=60,
        )
        assert reset.returncode == 0, reset.stderr
        wait_for(
            lambda: _info_lines(w.stderr, "reset in the ledger"),
            30,
            "the reset line on the console",
        )
        wait_for(
            lambda: (r := w.rows()).filter(r["status"] == "ok").height >= 5,
            60,
            "the reset recordings processed again",
        )
        assert w.stop() == 0
    finally:
        w.kill()
    [line] = _info_lines(w.stderr, "reset in the ledger")
    assert "2 recordings were reset in the ledger; processing them again" in line
    assert " INFO " in line
    assert str(recs[1]) not in line
