"""A ledger part that cannot be read (EACCES) is not an empty ledger: the command stops with
one line and exit 2, and nothing is processed again; damaged content is still skipped with a
warning (real ``crunchctl`` processes).

The fault is a real one: the part file's permissions are 000 and the child runs without the
capabilities that let root read any file (``setpriv``), so ``open`` fails with EACCES as it
does for a user on a share whose permissions changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import child_env, crunchctl_cmd, require, small_args


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    require("setpriv")
    return [
        shutil.which("setpriv"),
        "--bounding-set=-dac_override,-dac_read_search",
        "--inh-caps=-all",
    ]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [*_unprivileged(), *crunchctl_cmd(), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=child_env(), timeout=120, cwd=tmp_path
    )


def _parts(ledger: Path) -> list[Path]:
    return sorted(p for p in ledger.iterdir() if p.suffix == ".parquet")


@pytest.fixture
def done_recording(tmp_path, make_tiq):
    rec = make_tiq("x.tiq", folder=tmp_path / "rec")
    proc = _run(tmp_path, "process", str(rec), *small_args(tmp_path))
    assert proc.returncode == 0, proc.stderr
    [part] = _parts(tmp_path / "ledger")
    yield rec, part
    part.chmod(0o644)


def test_process_stops_on_an_unreadable_part_and_processes_nothing(tmp_path, done_recording):
    rec, part = done_recording
    png = tmp_path / "out" / "x.png"
    before = png.stat().st_mtime_ns
    part.chmod(0)
    proc = _run(tmp_path, "process", str(rec), *small_args(tmp_path))
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and part.name in lines[0], lines
    assert "damaged" not in proc.stderr
    assert png.stat().st_mtime_ns == before
    part.chmod(0o644)
    assert _parts(tmp_path / "ledger") == [part]  # no row of a second attempt


def test_status_stops_on_an_unreadable_part(tmp_path, done_recording):
    _, part = done_recording
    part.chmod(0)
    proc = _run(tmp_path, "status", "--ledger", str(tmp_path / "ledger"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("Error: ") and "damaged" not in proc.stderr


def test_watch_retries_then_stops_and_processes_nothing(tmp_path, done_recording):
    rec, part = done_recording
    png = tmp_path / "out" / "x.png"
    before = png.stat().st_mtime_ns
    part.chmod(0)
    proc = _run(tmp_path, "watch", str(rec.parent), "--once", *small_args(tmp_path))
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Error: " in proc.stderr and "damaged" not in proc.stderr
    log = (tmp_path / "crunchctl.log").read_text()
    assert "trying again" in log, log[-2000:]
    assert png.stat().st_mtime_ns == before
    part.chmod(0o644)
    assert _parts(tmp_path / "ledger") == [part]


def test_damaged_content_is_still_skipped_with_a_warning(tmp_path, done_recording):
    rec, part = done_recording
    part.chmod(0o644)
    (tmp_path / "ledger" / "part-20200101T000000.000000-x-1-deadbeef.parquet").write_bytes(
        b"this is not parquet"
    )
    proc = _run(tmp_path, "process", str(rec), *small_args(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["skipped"] == 1
    assert "damaged" in proc.stderr
