"""``--dry-run`` of ``process``, ``watch --once`` and ``batch``: one line per item saying
what would be done or skipped and why (``--json``: one document), and nothing written: real
``crunchctl`` processes, the output, ledger and web folders and the log file listed before
and after.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import child_env, crunchctl_cmd, make_incomplete, small_args, tiny_tiq


def crunch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*crunchctl_cmd(), *args],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=120,
    )


def tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``roots`` (the roots too) with its size and mtime."""
    out = {}
    for root in roots:
        if not root.exists():
            continue
        for here, dirs, files in os.walk(root):
            for name in [*dirs, *files, ""]:
                p = os.path.join(here, name)
                st = os.stat(p)
                out[p] = (st.st_size if name in files else 0, st.st_mtime_ns)
    return out


def lines(out: str) -> dict[str, str]:
    """``{item: "action: reason"}`` from the dry run's stdout."""
    got = {}
    for line in out.splitlines():
        action, rest = line.split(None, 1)
        item, reason = rest.split(": ", 1)
        got[item] = f"{action}: {reason}"
    return got


def test_process_dry_run_on_a_fresh_machine_creates_nothing(tmp_path):
    a = tiny_tiq(tmp_path / "rec" / "a.tiq")
    odd = tmp_path / "notes.txt"
    odd.write_text("not a recording")
    www = tmp_path / "www"
    r = crunch(
        tmp_path,
        "process",
        str(a),
        str(tmp_path / "nope.tiq"),
        str(odd),
        str(tmp_path / "rec"),
        *small_args(tmp_path),
        "--www",
        str(www),
        "--dry-run",
    )
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == {
        str(a): "process: new, no ledger yet",
        str(tmp_path / "nope.tiq"): "fail: not found",
        str(odd): "fail: unknown recording format",
        str(tmp_path / "rec"): "fail: is a folder, not a recording",
    }
    assert "dry run: 1 to process, 3 to fail; nothing was written" in r.stderr
    for made in ("out", "ledger", "crunchctl.log", "www"):
        assert not (tmp_path / made).exists(), made


def test_process_dry_run_says_why_and_writes_nothing(tmp_path):
    rec = tmp_path / "rec"
    done, changed, gone = (
        tiny_tiq(rec / f"{n}.tiq", seed=i) for i, n in enumerate(("done", "changed", "gone"), 1)
    )
    first = crunch(
        tmp_path,
        "process",
        str(done),
        str(changed),
        str(gone),
        *small_args(tmp_path),
        "--www",
        str(tmp_path / "www"),
    )
    assert first.returncode == 0, first.stderr
    new = tiny_tiq(rec / "new.tiq", seed=4)
    tiny_tiq(changed, seed=9)  # rewritten: another version
    (tmp_path / "out" / "gone.png").unlink()
    watched = (tmp_path / "out", tmp_path / "ledger", tmp_path / "www", tmp_path / "crunchctl.log")
    before = tree(*watched)
    args = [
        "process",
        str(done),
        str(changed),
        str(gone),
        str(new),
        *small_args(tmp_path),
        "--www",
        str(tmp_path / "www"),
        "--dry-run",
    ]
    r = crunch(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == {
        str(done): "skip: done",
        str(changed): "process: changed since it was done",
        str(gone): f"process: product missing: {tmp_path / 'out' / 'gone.png'}",
        str(new): "process: new, not in the ledger",
    }
    doc = json.loads(crunch(tmp_path, *args, "--json", "--lframes", "2048").stdout)
    assert doc["dry_run"] is True and doc["counts"] == {"process": 4}
    assert {i["item"]: i["reason"] for i in doc["items"]}[str(done)] == "settings changed"
    assert tree(*watched) == before


def test_watch_once_dry_run_waits_for_incomplete_and_needs_once(tmp_path):
    rec = tmp_path / "rec"
    done = tiny_tiq(rec / "done.tiq", seed=1)
    args = ["watch", str(rec), *small_args(tmp_path)]
    assert crunch(tmp_path, *args, "--once").returncode == 0
    cut = make_incomplete(rec / "cut.tiq")
    new = tiny_tiq(rec / "new.tiq", seed=2)
    watched = (tmp_path / "out", tmp_path / "ledger", tmp_path / "crunchctl.log")
    before = tree(*watched)
    r = crunch(tmp_path, *args, "--once", "--dry-run")
    assert r.returncode == 0, r.stderr
    got = lines(r.stdout)
    assert got[str(done)] == "skip: done" and got[str(new)] == "process: new, not in the ledger"
    assert got[str(cut)].startswith("wait: incomplete"), got
    doc = json.loads(crunch(tmp_path, *args, "--once", "--dry-run", "--json").stdout)
    assert doc["counts"] == {"process": 1, "skip": 1, "wait": 1}
    assert tree(*watched) == before
    live = crunch(tmp_path, *args, "--dry-run")
    assert live.returncode == 2 and "--dry-run needs --once" in live.stderr


def test_batch_dry_run_says_done_due_and_limited_and_writes_nothing(tmp_path):
    rec = tmp_path / "rec"
    a, b, c = (tiny_tiq(rec / f"{n}.tiq", seed=i) for i, n in enumerate("abc", 1))
    items = tmp_path / "items.txt"
    items.write_text(f"{a}\n{b}\n{c}\n")
    args = [
        "batch",
        str(items),
        "-o",
        str(tmp_path / "figs"),
        "--lframes",
        "1024",
        "--ledger",
        str(tmp_path / "ledger"),
        "--log-file",
        str(tmp_path / "batch.log"),
    ]
    fresh = crunch(tmp_path, *args, "--dry-run")
    assert fresh.returncode == 0, fresh.stderr
    assert set(lines(fresh.stdout).values()) == {"process: new, no ledger yet"}
    assert not any((tmp_path / n).exists() for n in ("figs", "ledger", "batch.log"))
    assert crunch(tmp_path, *args, "--limit", "1").returncode == 0
    watched = (tmp_path / "figs", tmp_path / "ledger", tmp_path / "batch.log")
    before = tree(*watched)
    r = crunch(tmp_path, *args, "--dry-run", "--limit", "1")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == {
        str(a): "skip: done",
        str(b): "process: new, not in the ledger",
        str(c): "later: --limit 1: left for the next run",
    }
    doc = json.loads(crunch(tmp_path, *args, "--dry-run", "--json", "--dpi", "120").stdout)
    assert {i["item"]: i["reason"] for i in doc["items"]}[str(a)] == "settings changed"
    assert tree(*watched) == before
