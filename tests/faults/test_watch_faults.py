"""Faults of a long watch, with real ``crunchctl watch`` processes on real folders.

The folder going away and coming back, the ledger's disk filling up, ``reset`` and
``import`` writing the same ledger, file times in the future or in the past, a recording
replaced by another file of the same name, size and mtime, and two hosts sharing a ledger.
Time constants a test must not wait for (the reset look every 30 s) and what cannot be
made for real in a test (a full disk under the ledger only, a second host) are set through
a ``sitecustomize`` hook on the child's PYTHONPATH (``HOOK``); everything else is real.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from conftest import WatchProc, child_env, crunchctl_cmd, tiny_tiq, wait_for
from crunchctl.ledger.store import Ledger

# Loaded by every child Python (main process and workers) through PYTHONPATH.
HOOK = '''\
"""Test hook (tests/faults/test_watch_faults.py)."""
import os

# CRUNCHCTL_TEST_SET="module:NAME=float;...": shorter timers for tests.
for _item in filter(None, os.environ.get("CRUNCHCTL_TEST_SET", "").split(";")):
    import importlib

    _target, _value = _item.split("=")
    _mod, _name = _target.split(":")
    setattr(importlib.import_module(_mod), _name, float(_value))

# Another host: what socket.gethostname() says in this process.
if os.environ.get("CRUNCHCTL_TEST_HOSTNAME"):
    import socket

    _name = os.environ["CRUNCHCTL_TEST_HOSTNAME"]
    socket.gethostname = lambda: _name

# A full disk under the ledger: while the file CRUNCHCTL_TEST_LEDGER_FULL exists, every
# write of a ledger file fails with ENOSPC.
_FLAG = os.environ.get("CRUNCHCTL_TEST_LEDGER_FULL")
if _FLAG:
    import builtins
    import errno

    import crunchctl.ledger.store as _store

    class _Full:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

    def _open(path, mode="r", *args, **kwargs):
        f = builtins.open(path, mode, *args, **kwargs)
        return _Full(f) if "w" in mode and os.path.exists(_FLAG) else f

    _store.open = _open
'''


tiny = tiny_tiq


class Watch(WatchProc):
    """One ``crunchctl watch`` child with the hook, its folders in ``base``."""

    def __init__(self, base: Path, folder: Path, *extra: str, **env: str) -> None:
        hook = base / "hook"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(HOOK)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
        super().__init__(
            base,
            *extra,
            folder=folder,
            workers=1,
            www=False,
            zoom_span="200000",
            env=env,
            new_session=True,
        )

    def common(self) -> list[str]:
        return [
            "--ledger",
            str(self.ledger),
            "--output",
            str(self.out),
            "--lframes",
            "1024",
            "--zoom-span",
            "200000",
            "--log-file",
            str(self.log_path),
        ]

    def start(self) -> Watch:
        return super().start(timeout=60)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def watches():
    made: list[Watch] = []

    def make(*args, **kw) -> Watch:
        made.append(Watch(*args, **kw))
        return made[-1]

    yield make
    for w in made:
        w.kill()


def iq_rows(ledger: Path) -> pl.DataFrame:
    if not ledger.exists():
        return pl.DataFrame(schema={"item": pl.String, "status": pl.String})
    frame = Ledger(ledger, create=False).read()
    return frame.filter(pl.col("kind") == "iq")


def ok_count(ledger: Path, item: Path) -> int:
    r = iq_rows(ledger)
    return r.filter((pl.col("item") == str(item)) & (pl.col("status") == "ok")).height


def drop(staging: Path, folder: Path, name: str, seed: int) -> Path:
    src = tiny(staging / name, seed)
    os.replace(src, folder / name)
    return folder / name


# ------------------------------------------------------------- the folder goes away


@pytest.mark.parametrize("mode", ["events", pytest.param("poll", marks=pytest.mark.slow)])
def test_folder_gone_and_back_keeps_watching_and_redoes_nothing(tmp_path, watches, mode):
    rec, staging = tmp_path / "rec", tmp_path / "staging"
    first = [tiny(rec / f"before_{i}.tiq", seed=i) for i in range(2)]
    w = watches(tmp_path, rec, *(["--poll", "0.5"] if mode == "poll" else [])).start()
    wait_for(lambda: all(ok_count(w.ledger, p) for p in first), 60, "the backlog")

    away = tmp_path / "rec-away"
    os.rename(rec, away)  # the share is unmounted
    wait_for(lambda: "watched folder is gone" in w.log(), 10, "the gone message")
    time.sleep(1.0)  # the absence (a minute in real life); its CPU cost: the slow test below
    new = drop(staging, away, "while_away.tiq", seed=10)  # written on the server meanwhile
    os.rename(away, rec)  # the share is back
    new = rec / new.name
    wait_for(lambda: ok_count(w.ledger, new), 60, "the new recording after the return")
    later = drop(staging, rec, "after.tiq", seed=11)  # and events/polls work again
    wait_for(lambda: ok_count(w.ledger, later), 60, "a recording after the return")
    time.sleep(1.0)
    assert w.proc.poll() is None
    assert w.stop() == 0
    log = w.log()
    assert log.count("watched folder is gone") == 1, log
    assert log.count("watched folder is back") == 1, log
    rows = iq_rows(w.ledger)
    assert rows.group_by("item").len()["len"].max() == 1, rows  # nothing redone
    assert set(rows["status"]) == {"ok"}
    assert len(rows) == 4


@pytest.mark.slow  # a CPU measurement: kept out of the default run, where load varies
@pytest.mark.parametrize("mode", ["events", "poll"])
def test_a_gone_folder_costs_little_cpu(tmp_path, watches, mode):
    rec = tmp_path / "rec"
    tiny(rec / "before.tiq")
    w = watches(tmp_path, rec, *(["--poll", "0.5"] if mode == "poll" else [])).start()
    wait_for(lambda: ok_count(w.ledger, rec / "before.tiq"), 60, "the backlog")
    os.rename(rec, tmp_path / "rec-away")
    wait_for(lambda: "watched folder is gone" in w.log(), 10, "the gone message")
    cpu0, t0 = w.cpu_seconds(), time.monotonic()
    time.sleep(5.0)
    cpu = (w.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    # Idle waiting costs about 1 % of a core; a loop that retries without pausing costs a
    # whole one. The margin holds on a machine busy with other work.
    assert cpu < 0.4, f"{cpu:.0%} of a core while the folder is gone"
    assert w.stop() == 0


# ------------------------------------------------------------- the ledger's disk is full


@pytest.mark.slow  # about 20 s: three states of the disk, then a second run
def test_ledger_disk_full_keeps_outcomes_writes_them_later_and_says_what_is_lost(tmp_path, watches):
    rec, staging = tmp_path / "rec", tmp_path / "staging"
    rec.mkdir()
    flag = tmp_path / "ledger-full"
    w = watches(tmp_path, rec, CRUNCHCTL_TEST_LEDGER_FULL=str(flag)).start()
    a = drop(staging, rec, "a.tiq", seed=1)
    wait_for(lambda: ok_count(w.ledger, a), 60, "a recording before the disk fills")

    flag.touch()  # the disk is full
    full = [drop(staging, rec, f"full_{i}.tiq", seed=10 + i) for i in range(2)]
    wait_for(
        lambda: all((w.out / f"{p.stem}.png").exists() for p in full),
        60,
        "products while the ledger disk is full",
    )
    time.sleep(1.5)  # several flush attempts
    assert all(ok_count(w.ledger, p) == 0 for p in full)
    assert w.log().count("LEDGER NOT WRITTEN") == 1
    assert "LEDGER NOT WRITTEN" in w.stderr  # the person at the console sees it

    flag.unlink()  # space is back
    wait_for(lambda: all(ok_count(w.ledger, p) == 1 for p in full), 10, "the kept outcomes written")
    wait_for(
        lambda: "the 2 outcomes kept in memory are now recorded" in w.log(), 10, "the all-clear"
    )
    errors = [ln for ln in w.log().splitlines() if " ERROR " in ln]
    assert len(errors) <= 4, errors  # once, and once per new outcome: not every 0.5 s
    assert all("No space left on device" in ln for ln in errors), errors

    flag.touch()  # full again, and the watch is stopped before space returns
    lost = drop(staging, rec, "lost.tiq", seed=20)
    wait_for(lambda: (w.out / "lost.png").exists(), 60, "a product while full again")
    time.sleep(1.0)
    code = w.stop()
    err = w.stderr
    assert code == 2, err
    assert "1 outcome not in the ledger" in err and "processed again by the next run" in err
    assert "Traceback" not in err
    flag.unlink()

    # The next run redoes exactly the lost one; its products are replaced, not doubled.
    before = sorted(p.name for p in w.out.iterdir())
    again = subprocess.run(
        [*crunchctl_cmd(), "watch", str(rec), "--once", "-j", "1", *w.common()],
        capture_output=True,
        text=True,
        env=w.env,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in w.out.iterdir()) == before
    rows = iq_rows(w.ledger)
    assert dict(rows.group_by("item").len().iter_rows()) == {str(p): 1 for p in [a, *full, lost]}


# ------------------------------------------------------------- reset and import meanwhile


def test_reset_and_import_while_a_watch_writes_the_same_ledger(tmp_path, watches):
    rec, staging = tmp_path / "rec", tmp_path / "staging"
    recs = [tiny(rec / f"r{i}.tiq", seed=i) for i in range(3)]
    w = watches(tmp_path, rec, CRUNCHCTL_TEST_SET="crunchctl.watch.session:RESET_INTERVAL=1")
    w.start()
    wait_for(lambda: all(ok_count(w.ledger, p) for p in recs), 60, "the backlog")

    legacy = tmp_path / "processed.toml"
    old = [tmp_path / "old" / f"legacy_{i}.tiq" for i in range(3)]
    legacy.write_text("processed = [%s]\n" % ", ".join(f'"{p}"' for p in old))
    ledger = ["--ledger", str(w.ledger)]
    reset = subprocess.run(
        [*crunchctl_cmd(), "reset", "--item", "r1.tiq", "-y", *ledger],
        capture_output=True,
        text=True,
        env=w.env,
        timeout=60,
    )
    assert reset.returncode == 0, reset.stderr
    live = drop(staging, rec, "live.tiq", seed=30)  # the watch keeps writing meanwhile
    imp = subprocess.run(
        [*crunchctl_cmd(), "import", str(legacy), *ledger],
        capture_output=True,
        text=True,
        env=w.env,
        timeout=60,
    )
    assert imp.returncode == 0, imp.stderr
    wait_for(lambda: ok_count(w.ledger, recs[1]) == 2, 30, "the reset recording redone")
    wait_for(lambda: ok_count(w.ledger, live), 30, "the live recording")
    time.sleep(2.5)  # more looks for resets: the reset one is not redone again
    assert w.stop() == 0
    assert "1 recording was reset in the ledger; processing it again" in w.log()
    rows = iq_rows(w.ledger)
    counts = dict(rows.filter(pl.col("status") == "ok").group_by("item").len().iter_rows())
    assert counts == {
        str(recs[0]): 1,
        str(recs[1]): 2,
        str(recs[2]): 1,
        str(live): 1,
        **{str(p): 1 for p in old},
    }
    assert rows.filter(pl.col("status") == "reset")["item"].to_list() == [str(recs[1])]


# ------------------------------------------------------------- file times and identity


@pytest.mark.parametrize("mode", ["events", pytest.param("poll", marks=pytest.mark.slow)])
def test_times_in_the_future_or_past_and_replacements_of_the_same_size_and_mtime(
    tmp_path, watches, mode
):
    rec, staging = tmp_path / "rec", tmp_path / "staging"
    rec.mkdir()
    w = watches(tmp_path, rec, *(["--poll", "0.3"] if mode == "poll" else [])).start()
    now = time.time()
    future = tiny(staging / "future.tiq", seed=1)
    os.utime(future, (now + 3600, now + 3600))  # a recorder clock an hour ahead
    os.replace(future, rec / "future.tiq")
    past = tiny(staging / "past.tiq", seed=2)
    os.utime(past, (now - 3600, now - 3600))  # the clock jumped back an hour
    os.replace(past, rec / "past.tiq")
    future, past = rec / "future.tiq", rec / "past.tiq"
    wait_for(lambda: ok_count(w.ledger, future) and ok_count(w.ledger, past), 60, "both recordings")

    # Replaced by another recording of the same name, size and mtime (cp -p, rsync -t).
    st = past.stat()
    other = tiny(staging / "other.tiq", seed=3)
    assert other.stat().st_size == st.st_size
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, past)
    wait_for(lambda: ok_count(w.ledger, past) == 2, 30, "the replaced recording again")
    time.sleep(2.0)  # several polls and events later: nothing re-queued
    assert w.stop() == 0
    rows = iq_rows(w.ledger)
    assert dict(rows.group_by("item").len().iter_rows()) == {str(future): 1, str(past): 2}
    # A restart redoes nothing (the ledger's fingerprint is size and mtime).
    again = subprocess.run(
        [*crunchctl_cmd(), "watch", str(rec), "--once", *w.common()],
        capture_output=True,
        text=True,
        env=w.env,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert len(iq_rows(w.ledger)) == 3


# ------------------------------------------------------------- two hosts, one ledger


def test_two_hosts_share_a_ledger_lock_and_status_name_the_hosts(tmp_path, watches):
    one, two, staging = tmp_path / "one", tmp_path / "two", tmp_path / "staging"
    one.mkdir()
    two.mkdir()
    alpha = watches(tmp_path, one, CRUNCHCTL_TEST_HOSTNAME="alpha").start()
    beta = watches(tmp_path, two, CRUNCHCTL_TEST_HOSTNAME="beta").start()
    recs = [drop(staging, f, f"{f.name}_{i}.tiq", seed=i) for f in (one, two) for i in range(2)]
    wait_for(lambda: all(ok_count(alpha.ledger, p) for p in recs), 60, "both hosts' work")
    # A second watch of alpha's folder from "beta" is refused and names alpha.
    dup = subprocess.run(
        [*crunchctl_cmd(), "watch", str(one), *alpha.common()],
        capture_output=True,
        text=True,
        env={**beta.env},
        timeout=60,
    )
    assert dup.returncode == 2
    assert "on alpha, since" in dup.stderr, dup.stderr
    status = subprocess.run(
        [*crunchctl_cmd(), "status", "--json", "--ledger", str(alpha.ledger)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    watching = {w["folder"]: w for w in json.loads(status.stdout)["watches"]}
    assert watching[str(one)]["host"] == "alpha" and watching[str(two)]["host"] == "beta"
    assert watching[str(one)]["running"] and watching[str(two)]["running"]
    assert alpha.stop() == 0 and beta.stop() == 0
    rows = iq_rows(alpha.ledger)
    assert dict(rows.group_by("host").len().iter_rows()) == {"alpha": 2, "beta": 2}
    assert rows["item"].n_unique() == 4
    names = [p.name for p in alpha.ledger.iterdir() if p.name.startswith("part-")]
    assert any("-alpha-" in n for n in names) and any("-beta-" in n for n in names)
