"""What ``status`` learns from watches: pending recordings of recursive and ``--pattern``
watches, ``--source 'watch:*'``, and which watches run now (real ``crunchctl`` processes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import WatchProc, child_env, crunchctl_cmd, make_incomplete, tiny_tiq


def status(ledger: Path, *args: str) -> dict:
    p = subprocess.run(
        [*crunchctl_cmd(), "status", "--ledger", str(ledger), "--json", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def watch_once(base: Path, folder: Path, *extra: str) -> None:
    w = WatchProc(base, folder=folder)
    p = subprocess.run(
        w.args() + ["--once", *extra],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=base,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr


def test_pending_of_recursive_and_pattern_watches_and_source_globs(tmp_path):
    deep, picky = tmp_path / "deep", tmp_path / "picky"
    tiny_tiq(deep / "day1" / "a.tiq")
    cut = make_incomplete(deep / "day1" / "cut.tiq")
    tiny_tiq(picky / "rec_1.tiq")
    other = tiny_tiq(picky / "other.tiq", seed=3)  # not the watch's pattern
    watch_once(tmp_path, deep, "--recursive")
    watch_once(tmp_path, picky, "--pattern", "rec_*.tiq")
    new_deep = tiny_tiq(deep / "day2" / "b.tiq", seed=4)
    new_picky = tiny_tiq(picky / "rec_2.tiq", seed=5)
    ledger = tmp_path / "ledger"

    doc = status(ledger)
    pending = {p["item"]: p for p in doc["pending"]}
    assert set(pending) == {str(cut), str(new_deep), str(new_picky)}
    assert str(other) not in pending
    assert pending[str(cut)]["reason"].startswith("incomplete")
    assert pending[str(new_deep)]["reason"] == "not done yet"
    assert pending[str(new_deep)]["folder"] == str(deep)
    watches = {w["folder"]: w for w in doc["watches"]}
    assert watches[str(deep)]["recursive"] and not watches[str(deep)]["running"]
    assert watches[str(picky)]["patterns"] == ["rec_*.tiq"]

    assert {p["item"] for p in status(ledger, "--source", "watch:*")["pending"]} == set(pending)
    only = status(ledger, "--source", f"watch:{picky}")["pending"]
    assert [p["item"] for p in only] == [str(new_picky)]
    assert status(ledger, "--source", "process")["pending"] == []


def test_status_names_the_running_watch(tmp_path):
    w = WatchProc(tmp_path, "--recursive", "--pattern", "*.tiq", "--pattern", "*.TIQ2")
    w.start()
    try:
        (found,) = status(w.ledger)["watches"]
        assert found["running"] and found["pid"] == w.proc.pid
        assert found["folder"] == str(w.folder) and found["recursive"]
        assert found["patterns"] == ["*.tiq", "*.TIQ2"] and found["heartbeat"]
    finally:
        assert w.stop() == 0
    (found,) = status(w.ledger)["watches"]
    assert not found["running"] and found["stopped"]
