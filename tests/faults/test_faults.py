"""Faults a night of beam time must survive, with real processes, signals and files.

Each test runs the installed ``crunchctl`` as child processes (or the engine's real worker
processes) on tiny recordings or plugin items in ``tmp_path``, hurts it the way real life
does (``kill -9``, a worker dying, the output folder vanishing, a full disk, a damaged or
half-written ledger file) and then checks what an operator relies on: every item finished
exactly once after a rerun, per-item errors that name the item, exit codes, no truncated
file under a final name and no temp files left behind.

Covered elsewhere, not repeated here: a second ``watch`` on the same folder and ledger is
refused and names the first (tests/watch/test_watch.py, in-process and CLI; here only host and
since are added), ``status`` on a ledger with a junk file (tests/cli/test_status.py), damaged
files skipped and never compacted (tests/ledger/test_store.py), SIGINT then resume
(tests/batch/test_batch.py), SIGTERM then restart of a watch (tests/watch/test_watch.py).
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from batch_helpers import items_file
from conftest import child_env, crunchctl_cmd, small_args, tiny_tiq, wait_for
from crunchctl.cli import app
from crunchctl.ledger.store import Ledger
from crunchctl.outcome import Outcome

PNG_HEAD = b"\x89PNG\r\n\x1a\n"
PNG_TAIL = b"IEND\xaeB`\x82"  # the IEND chunk and its CRC: the last 8 bytes of a whole PNG

FAULT_PLUGIN = '''\
"""Loader plugins for tests/faults/test_faults.py."""
import os

import numpy as np


def quick(item):
    """One small row; drawing it is most of the work."""
    rng = np.random.default_rng(sum(map(ord, item)))
    data = rng.poisson(3.0, size=(20, 60)).astype(float)
    return [{"x": np.arange(60.0), "y": np.arange(20.0), "data": data, "label": item}]


def crash(item):
    """Dies like a segfault on items named 'crash...': no exception, no cleanup."""
    if "crash" in item:
        os._exit(3)
    return quick(item)
'''

# On PYTHONPATH of a child this makes writes of products whose temp file name matches
# $CRUNCHCTL_TEST_ENOSPC fail with ENOSPC after a few KiB, in the main process, the
# forkserver and so in every worker: a disk that fills up, for some files only.
ENOSPC_HOOK = '''\
"""Test hook (tests/faults/test_faults.py): a full disk for some products."""
import errno
import fnmatch
import os

_PATTERN = os.environ.get("CRUNCHCTL_TEST_ENOSPC")
if _PATTERN:
    import builtins

    import crunchctl.quicklook.products as _products

    class _FullDisk:
        def __init__(self, f):
            self._f = f
            self._written = 0

        def write(self, data):
            self._written += len(data)
            if self._written > 4096:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self._f.write(data)

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

    def _open(path, mode="r", *args, **kwargs):
        f = builtins.open(path, mode, *args, **kwargs)
        if "w" in mode and fnmatch.fnmatch(os.path.basename(os.fspath(path)), _PATTERN):
            return _FullDisk(f)
        return f

    _products.open = _open
'''

runner = CliRunner()


# ----------------------------------------------------------------------------- helpers


def live_in_group(pgid: int) -> list[int]:
    """Processes of a process group that still run (zombies do not count)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def temps(folder: Path) -> list[str]:
    return (
        sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
        if folder.is_dir()
        else []
    )


def finals(folder: Path, pattern: str = "*.png") -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))


def assert_whole(*folders: Path) -> None:
    """No truncated file under a final name: PNGs end with IEND, NPZs and Parquet read."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for p in finals(folder, "*"):
            if p.suffix == ".png":
                data = p.read_bytes()
                assert data[:8] == PNG_HEAD and data[-8:] == PNG_TAIL, f"{p} is not whole"
            elif p.suffix == ".npz":
                with np.load(p) as z:
                    for key in z.files:
                        z[key]
            elif p.suffix == ".parquet":
                pl.read_parquet(p)


def ledger_rows(ledger: Path) -> pl.DataFrame:
    reader = Ledger(ledger, create=False)
    rows = reader.scan().collect()
    assert reader.warnings == [], reader.warnings
    return rows


def ok_items(ledger: Path) -> set[str]:
    if not ledger.exists():
        return set()
    return set(ledger_rows(ledger).filter(pl.col("status") == "ok")["item"].to_list())


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    path = tmp_path / "fault_plugin.py"
    path.write_text(FAULT_PLUGIN)
    return path


@pytest.fixture
def groups():
    """Process groups started by a test; whatever is left of them is killed at the end."""
    started: list[int] = []
    yield started
    for pgid in started:
        kill_group(pgid)


def batch_args(tmp_path: Path, items: Path, loader: str, *extra: str) -> list[str]:
    return [
        *crunchctl_cmd(),
        "batch",
        str(items),
        "--loader",
        loader,
        "--output",
        str(tmp_path / "out"),
        "--ledger",
        str(tmp_path / "ledger"),
        "--log-file",
        str(tmp_path / "batch.log"),
        "--dpi",
        "40",
        *extra,
    ]


# ----------------------------------------------------------------------- kill -9: batch


def test_batch_killed_at_random_moments_then_resume_finishes_each_item_once(
    tmp_path, plugin, groups
):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    names = [f"orbit_{i:03d}" for i in range(36)]
    items = items_file(tmp_path, names)
    args = batch_args(tmp_path, items, f"{plugin}:quick", "-j", "2", "--flush-every", "3")
    out, ledger = tmp_path / "out", tmp_path / "ledger"
    ok_before: set[str] = set()
    leftovers: list[str] = []
    # The main process alone (what the OOM killer does), and the whole process group while
    # a product is being written (a power cut, as far as this machine's processes go).
    for n, how in enumerate(("main", "group while writing", "main")):
        with open(tmp_path / f"run{n}.txt", "w") as log:
            child = subprocess.Popen(
                args, stdout=log, stderr=log, env=child_env(), start_new_session=True
            )
        groups.append(child.pid)
        start = len(finals(out))
        need = rng.randint(1, 3)
        wait_for(
            lambda: len(finals(out)) >= start + need or child.poll() is not None,
            90,
            f"{need} more figures (seed {seed})",
        )
        assert child.poll() is None, f"run {n} ended before the kill (seed {seed})"
        if how == "main":
            time.sleep(rng.uniform(0.0, 0.4))
            os.kill(child.pid, signal.SIGKILL)
        else:
            wait_for(lambda: temps(out) or child.poll() is not None, 30, "a figure being written")
            kill_group(child.pid)
        code = child.wait(10)
        # On an idle machine the last run can finish its last items before the kill lands.
        finished = code == 0 and len(finals(out)) == len(names)
        assert code == -signal.SIGKILL or finished, f"run {n} exit {code} (seed {seed})"
        # Workers of a killed main process finish their item and go away by themselves.
        wait_for(lambda: not live_in_group(child.pid), 30, "orphaned workers to exit")
        leftovers += temps(out)
        assert_whole(out, ledger)  # nothing truncated under a final name, at any kill
        ok_before |= ok_items(ledger)
    assert ok_before, f"no run recorded anything before its kill (seed {seed})"
    assert leftovers, "the kill while writing left no temp file: it came too late"

    final = subprocess.run(
        args + ["--json"], capture_output=True, text=True, env=child_env(), timeout=120
    )
    assert final.returncode == 0, final.stderr
    doc = json.loads(final.stdout)
    assert doc["failed"] == 0 and doc["skipped"] >= len(ok_before)
    rows = ledger_rows(ledger)
    counts = dict(rows.group_by("item").len().iter_rows())
    # Every item exactly once, all ok: nothing recorded before a kill was redone (an item
    # whose row was still buffered when its run died was redone, but recorded once).
    assert counts == dict.fromkeys(names, 1), f"seed {seed}"
    assert set(rows["status"].to_list()) == {"ok"}
    assert sorted(p.stem for p in finals(out)) == names
    assert_whole(out, ledger)
    assert temps(out) == [] and temps(ledger) == [], "temp files accumulate"
    status = runner.invoke(app, ["status", "--ledger", str(ledger), "--json"])
    assert status.exit_code == 0
    summary = json.loads(status.stdout)
    ok = len(names)
    assert summary["by_status"]["ok"] == ok and summary["attempts_by_status"]["ok"] == ok


def test_kill_during_a_ledger_flush_leaves_no_lasting_temp_file(tmp_path):
    # kill -9 between open() and rename of a part file: Parquet cannot be appended, so the
    # half-written part is a temp file that nobody will ever rename.
    killed_writer = (
        "import os, signal, sys, time\n"
        "import polars as pl\n"
        "from crunchctl.ledger.store import Ledger\n"
        "from crunchctl.outcome import Outcome\n"
        "def half_then_die(self, file, *a, **k):\n"
        "    file.write(b'PAR1' + bytes(300))\n"
        "    file.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "led = Ledger(sys.argv[1])\n"
        "t = time.time()\n"
        "led.record(Outcome('lost', 'batch', 'batch:x', 'ok', t, t))\n"
        "pl.DataFrame.write_parquet = half_then_die\n"
        "led.flush()\n"
    )
    ledger = tmp_path / "ledger"
    t = time.time()
    with Ledger(ledger) as led:
        led.record(Outcome("kept", "batch", "batch:x", "ok", t, t))
    p = subprocess.run([sys.executable, "-c", killed_writer, str(ledger)], timeout=60)
    assert p.returncode == -signal.SIGKILL
    [dead] = temps(ledger)
    assert dead.startswith(".part-")
    # A writer that still runs keeps its temp file.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        from crunchctl.ledger.store import _HOST_TAG

        alive = ledger / (
            f".part-20000101T000000.000000-{_HOST_TAG}-{sleeper.pid}-0123abcd.parquet.tmp"
        )
        alive.write_bytes(b"PAR1")
        # Readers never see the temp files, and have nothing to warn about.
        assert ledger_rows(ledger)["item"].to_list() == ["kept"]
        r = runner.invoke(app, ["status", "--ledger", str(ledger), "--json"])
        assert r.exit_code == 0 and json.loads(r.stdout)["warnings"] == []
        # The next writer's first flush removes the dead writer's temp file.
        with Ledger(ledger) as led:
            led.record(Outcome("next", "batch", "batch:x", "ok", t, t))
        assert temps(ledger) == [alive.name]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sorted(ledger_rows(ledger)["item"].to_list()) == ["kept", "next"]
    assert_whole(ledger)


# ----------------------------------------------------------------------- kill -9: watch


def test_watch_killed_mid_processing_restart_processes_each_version_once(tmp_path, groups):
    rec, staging = tmp_path / "rec", tmp_path / "staging"
    out, www, ledger = tmp_path / "out", tmp_path / "www", tmp_path / "ledger"
    for i in range(6):
        tiny_tiq(rec / f"bk_{i:02d}.tiq", seed=i)
    args = [
        *crunchctl_cmd(),
        "watch",
        str(rec),
        "--ledger",
        str(ledger),
        "--output",
        str(out),
        "--www",
        str(www),
        "--lframes",
        "1024",
        "--log-file",
        str(tmp_path / "watch.log"),
        "-j",
        "2",
    ]

    def start(n: int) -> subprocess.Popen:
        err = tmp_path / f"watch{n}.err"
        with open(tmp_path / f"watch{n}.out", "w") as o, open(err, "w") as e:
            proc = subprocess.Popen(
                args, stdout=o, stderr=e, env=child_env(), cwd=tmp_path, start_new_session=True
            )
        groups.append(proc.pid)
        wait_for(
            lambda: "watching " in err.read_text() or proc.poll() is not None,
            60,
            "the watcher to start",
        )
        assert proc.poll() is None, err.read_text()
        return proc

    def drop(name: str, seed: int) -> Path:
        src = tiny_tiq(staging / name, seed=seed)
        os.replace(src, rec / name)  # renamed in whole, as a mover does
        return rec / name

    first = start(1)
    # Killed while it processes: some recordings recorded, a product being written. New
    # recordings keep coming until that moment, enough to keep two workers busy however
    # slow the machine is, never so many that the restart has hours of backlog.
    stream = itertools.count()

    def busy_and_some_recorded() -> bool:
        writing = bool(temps(out))
        done = ok_items(ledger)
        if len(list(rec.glob("*.tiq"))) - len(done) < 6:
            n = next(stream)
            drop(f"stream_{n:03d}.tiq", seed=100 + n)
        return writing and len(done) >= 2

    wait_for(busy_and_some_recorded, 60, "recordings done and one in progress", interval=0.1)
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    wait_for(lambda: not live_in_group(first.pid), 30, "orphaned workers to exit")
    assert_whole(out, www, ledger)
    done_before = ok_items(ledger)
    assert len(done_before) >= 2
    # What a kill during a web copy leaves (the main process copies): a temp file of its pid.
    stranded = www / f".rec.png.{first.pid}.0badf00d.tmp"
    stranded.write_bytes(PNG_HEAD)

    # While nobody watches, recordings arrive and a done one is rewritten (a new version).
    for i in range(2):
        drop(f"new_{i}.tiq", seed=20 + i)
    rewritten = Path(sorted(done_before)[0])
    tiny_tiq(staging / "v2.tiq", seed=99, nframes=5)
    os.replace(staging / "v2.tiq", rewritten)

    second = start(2)  # the killed watch's lock died with it: no refusal
    drop("live_0.tiq", seed=40)
    # Another watch of the same folder and ledger is refused and says who holds it.
    dup = subprocess.run(args, capture_output=True, text=True, env=child_env(), timeout=60)
    assert dup.returncode == 2
    message = one_line(dup.stderr)
    assert f"pid {second.pid} on {socket.gethostname()}, since " in message, message
    assert "Traceback" not in dup.stderr

    expected = {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in rec.glob("*.tiq")}
    assert len(expected) >= 9

    def all_current_versions_done() -> bool:
        rows = ledger_rows(ledger).filter(pl.col("status") == "ok")
        got = {(r["item"], r["size"], r["mtime_ns"]) for r in rows.iter_rows(named=True)}
        return all((item, *fp) in got for item, fp in expected.items())

    wait_for(all_current_versions_done, 90, "every recording version", interval=0.3)
    # status reads while the watch runs and writes.
    status = subprocess.run(
        [*crunchctl_cmd(), "status", "--ledger", str(ledger), "--json"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["by_status"]["ok"] >= len(expected)
    time.sleep(1.0)  # time for a wrong second processing to show up
    second.send_signal(signal.SIGTERM)
    assert second.wait(60) == 0

    rows = ledger_rows(ledger)
    assert set(rows["status"].to_list()) == {"ok"}
    per_version = rows.group_by("item", "size", "mtime_ns").len()
    assert per_version["len"].max() == 1, per_version.filter(pl.col("len") > 1)
    assert set(rows["item"].to_list()) == set(expected)
    old = rows.filter(pl.col("item") == str(rewritten))
    assert old.height in (1, 2)  # v1 if its row was flushed before the kill, and v2
    assert_whole(out, www, ledger)
    assert temps(out) == [] and temps(www) == [] and temps(ledger) == []


# ---------------------------------------------------------------------- a worker dying


def test_worker_dying_on_one_item_fails_that_item_only(tmp_path, plugin, groups):
    names = ["orbit_a", "orbit_crash_b", "orbit_c", "orbit_d", "orbit_e"]
    items = items_file(tmp_path, names)
    args = batch_args(tmp_path, items, f"{plugin}:crash", "-j", "2")
    died = "orbit_crash_b: worker process died while processing it (exit code 3)"
    r = subprocess.run(args, capture_output=True, text=True, env=child_env(), timeout=120)
    assert r.returncode == 1, r.stderr
    assert died in r.stderr and died in r.stdout  # logged, and in the summary
    latest = {
        row["item"]: row
        for row in Ledger(tmp_path / "ledger", create=False).latest().iter_rows(named=True)
    }
    assert {k: v["status"] for k, v in latest.items()} == {
        **dict.fromkeys(names, "ok"),
        "orbit_crash_b": "error",
    }
    assert latest["orbit_crash_b"]["error"] == died
    assert_whole(tmp_path / "out")
    # The resume has that one item left: it still runs in a worker that dies alone.
    again = subprocess.run(
        args + ["--resume", "--json"], capture_output=True, text=True, env=child_env(), timeout=120
    )
    assert again.returncode == 1, again.stderr
    doc = json.loads(again.stdout)
    assert doc["skipped"] == 4 and doc["failed"] == 1 and doc["outcomes"][0]["error"] == died
    assert died in again.stderr
    counts = dict(
        ledger_rows(tmp_path / "ledger")
        .group_by("item", "status")
        .len()
        .select(pl.concat_str("item", "status", separator=" "), "len")
        .iter_rows()
    )
    assert counts == {**{f"{n} ok": 1 for n in names if "crash" not in n}, "orbit_crash_b error": 2}


# ------------------------------------------------------------ output folder and full disk


def test_output_folder_replaced_by_a_file_mid_run(tmp_path, groups):
    recs = [tiny_tiq(tmp_path / "rec" / f"r{i:02d}.tiq", seed=i) for i in range(8)]
    out, gone, ledger = tmp_path / "out", tmp_path / "out.gone", tmp_path / "ledger"
    args = [*crunchctl_cmd(), "process", *map(str, recs), *small_args(tmp_path), "-j", "2"]
    log = tmp_path / "run.txt"
    with open(tmp_path / "stdout.txt", "w") as o, open(log, "w") as e:
        child = subprocess.Popen(args, stdout=o, stderr=e, env=child_env(), start_new_session=True)
    groups.append(child.pid)
    wait_for(
        lambda: len(finals(out, "*_zoom.png")) >= 2 or child.poll() is not None,
        90,
        "two recordings done",
    )
    assert child.poll() is None
    # The share goes away and something else appears under its name.
    os.rename(out, gone)
    out.write_text("not the output folder any more\n")
    assert child.wait(90) == 1
    stdout, stderr = (tmp_path / "stdout.txt").read_text(), log.read_text()
    assert "Traceback" not in stderr
    rows = ledger_rows(ledger)
    assert sorted(rows["item"].to_list()) == sorted(map(str, recs))  # one row per item
    ok = rows.filter(pl.col("status") == "ok")
    failed = rows.filter(pl.col("status") == "error")
    assert 2 <= ok.height < 8 and ok.height + failed.height == 8
    assert f"processed {ok.height}, failed {failed.height}" in stdout
    for row in ok.iter_rows(named=True):  # what was recorded as done was written whole
        for product in row["products"]:
            assert (gone / Path(product).name).exists()
    for row in failed.iter_rows(named=True):
        message = row["error"]
        assert message.startswith(row["item"] + ": " + str(out)), message
        # ENOTDIR; ENOENT if it came in the instant between the rename and the new file
        assert "Not a directory" in message or "No such file or directory" in message
        assert message in stderr
    assert_whole(gone, ledger)

    # The share is back: the rerun does exactly the failed ones.
    out.unlink()
    os.rename(gone, out)
    again = subprocess.run(args, capture_output=True, text=True, env=child_env(), timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"processed {failed.height}, failed 0, skipped {ok.height} already done" in again.stdout
    final = ledger_rows(ledger).filter(pl.col("status") == "ok")
    assert sorted(final["item"].to_list()) == sorted(map(str, recs))
    assert temps(out) == []  # a temp file stranded by the switch was cleaned up
    assert_whole(out)


def test_full_disk_fails_the_items_it_hits_and_the_run_goes_on(tmp_path, plugin):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(ENOSPC_HOOK)
    pythonpath = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    names = ["a", "full_b", "c", "full_d", "e"]
    recs = [tiny_tiq(tmp_path / "rec" / f"{n}.tiq", seed=i) for i, n in enumerate(names)]
    out, ledger = tmp_path / "out", tmp_path / "ledger"
    args = [*crunchctl_cmd(), "process", *map(str, recs), *small_args(tmp_path), "-j", "2"]
    # The disk fills up while the zoom images of the full_* recordings are written.
    full = child_env(PYTHONPATH=pythonpath, CRUNCHCTL_TEST_ENOSPC=".full_*_zoom.png.*")
    r = subprocess.run(args, capture_output=True, text=True, env=full, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "processed 3, failed 2" in r.stdout and "Traceback" not in r.stderr
    latest = {
        row["item"]: row for row in Ledger(ledger, create=False).latest().iter_rows(named=True)
    }
    for rec in recs:
        row = latest[str(rec)]
        if "full" in rec.name:
            assert row["status"] == "error"
            assert row["error"] == (
                f"{rec}: {out / (rec.stem + '_zoom.png')}: cannot write: No space left on device"
            )
            assert row["error"] in r.stderr
            assert not (out / f"{rec.stem}_zoom.png").exists()
        else:
            assert row["status"] == "ok" and all(map(os.path.exists, row["products"]))
    assert temps(out) == []
    assert_whole(out, ledger)
    # The ledger is consistent: once space is freed, exactly the two that failed are due.
    from crunchctl.config import resolve
    from crunchctl.recordings.run import split_due

    settings = resolve(None, {"lframes": 1024, "zoom_span": 200e3, "output_path": str(out)})
    due, done = split_due([str(p) for p in recs], settings, Ledger(ledger, create=False))
    assert sorted(due) == [str(p) for p in recs if "full" in p.name] and len(done) == 3

    # batch: the same, for figures drawn from plugin rows.
    items = items_file(tmp_path, ["orbit_1", "full_orbit_2", "orbit_3"])
    figs = tmp_path / "figs"
    bargs = [
        *crunchctl_cmd(),
        "batch",
        str(items),
        "--loader",
        f"{plugin}:quick",
        "-j",
        "2",
        "--output",
        str(figs),
        "--ledger",
        str(ledger),
        "--log-file",
        str(tmp_path / "batch.log"),
        "--dpi",
        "40",
    ]
    b = subprocess.run(
        bargs,
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(PYTHONPATH=pythonpath, CRUNCHCTL_TEST_ENOSPC=".full_*"),
    )
    assert b.returncode == 1, b.stderr
    message = f"full_orbit_2: {figs / 'full_orbit_2.png'}: cannot write: No space left on device"
    assert message in b.stderr and message in b.stdout
    batch_rows = ledger_rows(ledger).filter(pl.col("kind") == "batch")
    assert dict(batch_rows.select("item", "status").iter_rows()) == {
        "orbit_1": "ok",
        "full_orbit_2": "error",
        "orbit_3": "ok",
    }
    assert temps(figs) == [] and not (figs / "full_orbit_2.png").exists()
    assert_whole(figs)


class _FullLedgerDisk:
    """A file that takes a few KiB and then reports a full disk."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        if self._f.tell() + len(data) > 2048:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def test_full_disk_under_the_ledger_is_one_clear_error_and_leaves_no_file(
    tmp_path, make_tiq, monkeypatch
):
    import builtins

    import crunchctl.ledger.store as ledger_module

    recs = [make_tiq(f"r{i}.tiq", nframes=2) for i in range(3)]
    ledger = tmp_path / "ledger"

    def full_open(path, mode="r", *args, **kwargs):
        f = builtins.open(path, mode, *args, **kwargs)
        return _FullLedgerDisk(f) if "w" in mode else f

    monkeypatch.setattr(ledger_module, "open", full_open, raising=False)
    r = runner.invoke(app, ["process", *map(str, recs), *small_args(tmp_path), "-j", "2"])
    assert r.exit_code == 2, r.output
    assert "cannot write to the ledger folder" in r.stderr
    assert "No space left on device" in r.stderr and "3 outcomes not in the ledger" in r.stderr
    assert "Traceback" not in r.stderr
    assert list(ledger.glob("*.parquet")) == [] and temps(ledger) == []  # nothing half
    monkeypatch.delattr(ledger_module, "open")
    again = runner.invoke(app, ["process", *map(str, recs), *small_args(tmp_path)])
    assert again.exit_code == 0, again.output
    assert "processed 3, failed 0" in again.stdout
    assert len(ledger_rows(ledger)) == 3


# ---------------------------------------------------------------------- damaged ledger


def test_damaged_ledger_file_is_named_and_everything_else_still_counts(tmp_path, plugin):
    names = [f"orbit_{i}" for i in range(6)]
    items = items_file(tmp_path, names)
    args = [
        "batch",
        str(items),
        "--loader",
        f"{plugin}:quick",
        "--flush-every",
        "2",
        "-j",
        "2",
        "--output",
        str(tmp_path / "out"),
        "--ledger",
        str(tmp_path / "ledger"),
        "--log-file",
        str(tmp_path / "batch.log"),
        "--dpi",
        "40",
    ]
    assert runner.invoke(app, args).exit_code == 0
    parts = sorted((tmp_path / "ledger").glob("part-*.parquet"))
    assert len(parts) == 3
    victim = parts[1]
    lost = sorted(pl.read_parquet(victim)["item"].to_list())
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # a disk error, a bad copy of the ledger
    warning = f"ledger file {victim} is damaged (truncated): skipped"

    r = runner.invoke(app, ["status", "--ledger", str(tmp_path / "ledger"), "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["warnings"] == [warning] and doc["by_status"]["ok"] == 4
    r = runner.invoke(app, ["status", "--ledger", str(tmp_path / "ledger")])
    assert r.exit_code == 0 and warning in one_line(r.stderr)
    # A resume works on: what the readable files say is done is skipped, the rest redone.
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["skipped"] == 4 and sorted(o["item"] for o in doc["outcomes"]) == lost
    assert warning in one_line(r.stderr)
    assert victim.read_bytes() == data[: len(data) // 2]  # kept as found, for a person
    rows = Ledger(tmp_path / "ledger", create=False).scan().collect()
    assert sorted(rows["item"].to_list()) == names
