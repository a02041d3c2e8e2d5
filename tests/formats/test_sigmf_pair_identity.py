"""A SigMF pair is one recording everywhere: a change to only its ``.sigmf-meta`` makes a
new version that ``process`` and ``watch`` redo, and ``status`` does not list a processed pair
as pending (real ``crunchctl`` processes on real files)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from conftest import child_env, crunchctl_cmd, wait_for
from crunchctl.formats.synth import RecordingSpec, make_recording_as

SPEC = RecordingSpec(nframes=6, lframes=1024, fs=1.0e6, center=100.0e6)
COMMON = ["--lframes", "1024", "--zoom-span", "200000"]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [*crunchctl_cmd(), *args, "--ledger", str(tmp_path / "ledger")]
    if args[0] != "status":
        cmd += ["--log-file", str(tmp_path / "log.txt")]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=child_env(), timeout=120, cwd=tmp_path
    )


def _process(tmp_path: Path, path: Path) -> dict:
    proc = _run(
        tmp_path, "process", str(path), "--output", str(tmp_path / "out"), "--json", *COMMON
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _correct_frequency(meta: Path, hz: float) -> None:
    """Edit the metadata as a person would: same file, new core:frequency, new mtime."""
    doc = json.loads(meta.read_text())
    doc["captures"][0]["core:frequency"] = hz
    before = meta.stat().st_mtime_ns
    meta.write_text(json.dumps(doc, indent=4))
    if meta.stat().st_mtime_ns == before:  # a coarse file-system clock
        os.utime(meta, ns=(before + 10_000_000, before + 10_000_000))


def test_a_corrected_meta_file_redoes_the_recording(tmp_path):
    (tmp_path / "rec").mkdir()
    data = make_recording_as(tmp_path / "rec" / "p.sigmf-data", "sigmf", SPEC)
    meta = data.with_suffix(".sigmf-meta")
    assert _process(tmp_path, data)["processed"] == 1
    assert _process(tmp_path, meta)["skipped"] == 1  # either file names the same recording

    _correct_frequency(meta, 101.5e6)
    doc = _process(tmp_path, data)
    assert doc["processed"] == 1 and doc["skipped"] == 0, doc
    with np.load(tmp_path / "out" / "p.npz") as z:
        assert float(z["center_frequency"]) == 101.5e6
    assert _process(tmp_path, meta)["skipped"] == 1


def test_status_does_not_list_a_processed_pair_as_pending(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    make_recording_as(folder / "p.sigmf-data", "sigmf", SPEC)
    make_recording_as(folder / "q.sigmf-data", "sigmf", SPEC)
    proc = _run(
        tmp_path, "watch", str(folder), "--once", "--output", str(tmp_path / "out"), *COMMON
    )
    assert proc.returncode == 0, proc.stderr
    status = _run(tmp_path, "status", "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["pending"] == [], doc["pending"]

    # A new pair is pending once (one recording, not its two files).
    make_recording_as(folder / "r.sigmf-data", "sigmf", SPEC)
    doc = json.loads(_run(tmp_path, "status", "--json").stdout)
    assert [Path(p["item"]).name for p in doc["pending"]] == ["r.sigmf-data"], doc["pending"]


def test_a_watch_redoes_a_pair_whose_meta_file_changed(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    cmd = [
        *crunchctl_cmd(),
        "watch",
        str(folder),
        "--output",
        str(tmp_path / "out"),
        "--ledger",
        str(tmp_path / "ledger"),
        "--log-file",
        str(tmp_path / "log.txt"),
        "--settle",
        "0.3",
        "-j",
        "1",
        *COMMON,
    ]
    err = open(tmp_path / "stderr.txt", "w")
    watch = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=err, env=child_env(), cwd=tmp_path
    )
    try:
        wait_for(lambda: "watching " in (tmp_path / "stderr.txt").read_text(), 30, "the watch")
        staging = tmp_path / "staging"
        staging.mkdir()
        data = make_recording_as(staging / "p.sigmf-data", "sigmf", SPEC)
        os.replace(data, folder / data.name)
        os.replace(data.with_suffix(".sigmf-meta"), folder / "p.sigmf-meta")
        npz = tmp_path / "out" / "p.npz"

        def centre() -> float | None:
            try:
                with np.load(npz) as z:
                    return float(z["center_frequency"])
            except (OSError, ValueError, KeyError):
                return None

        wait_for(lambda: centre() == 100.0e6, 60, "the pair to be processed")
        time.sleep(0.5)
        _correct_frequency(folder / "p.sigmf-meta", 101.5e6)
        wait_for(lambda: centre() == 101.5e6, 60, "the pair to be processed again")
    finally:
        watch.terminate()
        watch.wait(30)
