"""One way to start, stop and exit for every command (docs/ARCHITECTURE.md, "The
application"), checked on real ``crunchctl`` processes and real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Lines, child_env, crunchctl_cmd, small_args, wait_for
from crunchctl.ledger.store import Ledger

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "tests" / "batch" / "loader_plugins.py"

#: What a second Ctrl-C says, in every command, for N items in progress.
CANCELLING = "cancelling: {n} in progress (they will be done by the next run)"


# ------------------------------------------------------------------ SIGTERM and a watch


def test_watch_with_a_bad_file_exits_0_on_sigterm(tmp_path, make_tiq):
    """systemctl stop of a watch whose folder holds one bad recording is a clean stop."""
    folder = tmp_path / "rec"
    make_tiq("good.tiq", folder=folder)
    (folder / "bad.tiq").write_bytes(b"not a recording")
    old = time.time() - 3600  # long settled
    for p in folder.iterdir():
        os.utime(p, (old, old))
    err = tmp_path / "stderr.txt"
    with open(tmp_path / "stdout.txt", "w") as o, open(err, "w") as e:
        child = subprocess.Popen(
            [*crunchctl_cmd(), "watch", str(folder), "-j", "1", *small_args(tmp_path)],
            stdout=o,
            stderr=e,
            env=child_env(),
            cwd=tmp_path,
        )
    try:
        ledger = tmp_path / "ledger"

        def both_recorded() -> bool:
            return ledger.exists() and Ledger(ledger, create=False).scan().collect().height >= 2

        wait_for(both_recorded, 60, "both recordings to be recorded")
        assert child.poll() is None, err.read_text()
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 0, err.read_text()
    finally:
        if child.poll() is None:
            child.kill()
    out = (tmp_path / "stdout.txt").read_text()
    assert "watch stopped (SIGTERM): processed 1, failed 1" in out, out
    statuses = Ledger(ledger, create=False).scan().collect()["status"].sort().to_list()
    assert statuses == ["error", "ok"]


def test_watch_whose_outcomes_cannot_be_recorded_exits_2_on_sigterm(tmp_path, make_tiq):
    """The run itself went wrong (outcomes would be lost): not a clean stop."""
    folder = tmp_path / "rec"
    folder.mkdir()
    err = tmp_path / "stderr.txt"
    with open(tmp_path / "stdout.txt", "w") as o, open(err, "w") as e:
        child = subprocess.Popen(
            [*crunchctl_cmd(), "watch", str(folder), "-j", "1", *small_args(tmp_path)],
            stdout=o,
            stderr=e,
            env=child_env(),
            cwd=tmp_path,
        )
    try:
        wait_for(
            lambda: "watching " in err.read_text() or child.poll() is not None,
            60,
            "the watch to start",
        )
        ledger = tmp_path / "ledger"
        ledger.rename(tmp_path / "ledger.gone")
        ledger.write_text("a file where the ledger folder was")
        staged = make_tiq("a.tiq", folder=tmp_path / "staging")
        staged.rename(folder / "a.tiq")
        wait_for(
            lambda: "is a file, not a folder" in err.read_text() or child.poll() is not None,
            60,
            "the ledger to fail",
        )
        assert child.poll() is None, err.read_text()
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 2, err.read_text()
    finally:
        if child.poll() is None:
            child.kill()
    assert err.read_text().splitlines()[-1] == (
        f"Error: ledger path {tmp_path / 'ledger'} is a file, not a folder"
    )


# ------------------------------------------------------------ a second Ctrl-C, everywhere


def sparse_recordings(folder: Path, n: int, megabytes: int = 400) -> list[str]:
    """Raw cf32 recordings of zeros, ``megabytes`` each without using the disk: several
    seconds of work each, so two Ctrl-C land while they are in progress."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"zeros_{i}.cf32"
        with open(path, "wb") as f:
            f.truncate(megabytes << 20)
        paths.append(str(path))
    return paths


def open_by_some_process(paths: list[str]) -> set[str]:
    """Those of ``paths`` some process has open now (a worker reading them)."""
    found = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target in paths:
                    found.add(target)
        except OSError:
            continue
    return found


def start_process(tmp_path: Path, files: list[str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *crunchctl_cmd(),
            "process",
            *files,
            "--sample-rate",
            "1e6",
            "--lframes",
            "65536",
            *small_args(tmp_path)[4:],
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=tmp_path,
    )


def start_batch(tmp_path: Path) -> subprocess.Popen:
    markers = tmp_path / "started"
    markers.mkdir()
    items = tmp_path / "items.txt"
    items.write_text("a\nb\nc\nd\n")
    child = subprocess.Popen(
        [
            *crunchctl_cmd(),
            "batch",
            str(items),
            "--loader",
            f"{PLUGIN}:slow",
            "-j",
            "2",
            "-o",
            str(tmp_path / "out"),
            "--ledger",
            str(tmp_path / "ledger"),
            "--log-file",
            str(tmp_path / "log.txt"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(CRUNCHCTL_TEST_MARKERS=str(markers), CRUNCHCTL_TEST_SLEEP="60"),
        cwd=tmp_path,
    )
    wait_for(
        lambda: len(list(markers.iterdir())) >= 2 or child.poll() is not None,
        60,
        "the loaders to start",
    )
    return child


def start_watch(tmp_path: Path, files: list[str]) -> subprocess.Popen:
    old = time.time() - 3600  # long settled
    for path in files:
        os.utime(path, (old, old))
    return subprocess.Popen(
        [
            *crunchctl_cmd(),
            "watch",
            str(Path(files[0]).parent),
            "--sample-rate",
            "1e6",
            "--lframes",
            "65536",
            "-j",
            "2",
            *small_args(tmp_path)[4:],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    "command,n", [("process-one", 1), ("process-pool", 2), ("batch", 2), ("watch", 2)]
)
def test_second_ctrl_c_says_the_same_in_every_command_and_summarises(tmp_path, command, n):
    if command == "batch":
        child = start_batch(tmp_path)
    else:
        files = sparse_recordings(tmp_path / "rec", 1 if n == 1 else 3)
        if command == "watch":
            files = files[:2]
            os.unlink(tmp_path / "rec" / "zeros_2.cf32")
            child = start_watch(tmp_path, files)
        else:
            child = start_process(tmp_path, files, "-j", str(n))
        wait_for(
            lambda: len(open_by_some_process(files)) >= n or child.poll() is not None,
            60,
            "the recordings to be read",
        )
    try:
        assert child.poll() is None, child.communicate()
        err = Lines(child.stderr)
        child.send_signal(signal.SIGINT)
        err.wait_for(f"stopping: {n} in progress, Ctrl-C again to cancel", 10)
        child.send_signal(signal.SIGINT)
        err.wait_for(CANCELLING.format(n=n), 10)
        out = child.stdout.read()
        assert child.wait(60) == 130
    finally:
        if child.poll() is None:
            child.kill()
    stderr = err.rest()
    assert "Interrupted." not in stderr and "Traceback" not in stderr, stderr
    # The run's summary, with the cancelled items counted as not started.
    if command == "batch":
        assert "not started (interrupted)  4" in out, out
    elif command == "watch":
        assert "watch interrupted: processed 0, failed 0, not started 2" in out, out
    else:
        assert f"processed 0, failed 0, not started {len(files)}" in out, out
    ledger = tmp_path / "ledger"
    assert not ledger.exists() or Ledger(ledger, create=False).scan().collect().height == 0


# ------------------------------------------------------------------ starting up


@pytest.mark.parametrize("command", ["process", "watch", "batch", "demo"])
def test_a_log_file_that_cannot_be_opened_is_a_usage_error(tmp_path, make_tiq, command):
    rec = make_tiq("a.tiq", folder=tmp_path / "rec")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    log = tmp_path / "blocker" / "crunchctl.log"
    items = tmp_path / "items.txt"
    items.write_text(f"{rec}\n")
    args = {
        "process": ["process", str(rec)],
        "watch": ["watch", str(tmp_path / "rec"), "--once"],
        "batch": ["batch", str(items)],
        "demo": ["demo", "--dir", str(tmp_path / "demo"), "--frames", "1"],
    }[command]
    common = ["--ledger", str(tmp_path / "ledger"), "--log-file", str(log)]
    if command != "demo":
        common += ["-o", str(tmp_path / "out")]
    p = subprocess.run(
        [*crunchctl_cmd(), *args, *common],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.startswith(f"Error: {log}: cannot open the log file: ")
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert not (tmp_path / "ledger").exists()  # before any work


@pytest.mark.parametrize("where", ["/proc/crunchctl-demo", "under-a-file"])
def test_demo_dir_that_cannot_be_made_is_a_usage_error(tmp_path, where):
    (tmp_path / "afile").write_text("a file where a folder should be")
    folder = Path(where) if where.startswith("/") else tmp_path / "afile" / "demo"
    p = subprocess.run(
        [
            *crunchctl_cmd(),
            "demo",
            "--dir",
            str(folder),
            "--frames",
            "1",
            "--log-file",
            str(tmp_path / "log.txt"),
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith(f"Error: {folder}: cannot create the demo folder: ")
    assert len(p.stderr.splitlines()) == 1, p.stderr
