"""The rules every command follows (docs/ARCHITECTURE.md, "Rules every command follows"),
checked on real ``crunchctl`` processes: SIGTERM and Ctrl-C, and the output folder."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import polars as pl
import pytest

from conftest import child_env, crunchctl_cmd, small_args, wait_for
from crunchctl.ledger.store import Ledger

#: Recordings per run: enough that a signal lands while some are still to do.
N = 6


def ledger_rows(ledger: Path) -> pl.DataFrame:
    return Ledger(ledger, create=False).scan().collect()


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path, Path]:
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out, "w") as o, open(err, "w") as e:
        child = subprocess.Popen(
            [*crunchctl_cmd(), *args], stdout=o, stderr=e, env=child_env(), cwd=tmp_path
        )
    return child, out, err


def recordings(make_tiq, tmp_path: Path, n: int) -> list[str]:
    return [
        str(make_tiq(f"r{i:02d}.tiq", folder=tmp_path / "rec", seed=i, nframes=8)) for i in range(n)
    ]


# About 30 s each on a busy machine: one runs by default, all with ``-m slow``.
@pytest.mark.parametrize(
    "sig,bad,code",
    [
        pytest.param(signal.SIGTERM, True, 1, id="sigterm-one-failed"),
        pytest.param(signal.SIGTERM, False, 0, id="sigterm-all-ok", marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, False, 130, id="sigint", marks=pytest.mark.slow),
    ],
)
def test_process_stops_cleanly_and_records_what_finished(tmp_path, make_tiq, sig, bad, code):
    recs = recordings(make_tiq, tmp_path, N)
    if bad:
        broken = tmp_path / "rec" / "aaa_broken.tiq"
        broken.write_bytes(b"not a recording")
        recs.insert(0, str(broken))
    child, out, err = start(tmp_path, "process", *recs, *small_args(tmp_path), "-j", "1")
    wait_for(
        lambda: list((tmp_path / "out").glob("*_zoom.png")) or child.poll() is not None,
        60,
        "the first recording",
    )
    assert child.poll() is None, err.read_text()
    child.send_signal(sig)
    assert child.wait(60) == code, err.read_text()
    stdout, stderr = out.read_text(), err.read_text()
    assert "Traceback" not in stderr
    rows = ledger_rows(tmp_path / "ledger")  # flushed before exiting
    ok = rows.filter(pl.col("status") == "ok").height
    assert 1 <= ok < N and rows.height == ok + int(bad)
    assert f"processed {ok}, failed {int(bad)}, not started {N - ok}" in stdout
    # Everything recorded as done was written whole; the rest is done by the next run.
    again = subprocess.run(
        [*crunchctl_cmd(), "process", *recs, *small_args(tmp_path)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    assert f"processed {N - ok}, failed {int(bad)}, skipped {ok} already done" in again.stdout, (
        again.stderr
    )


def test_output_folder_that_cannot_be_created_is_exit_2_before_any_item(tmp_path, make_tiq):
    rec = make_tiq("a.tiq", folder=tmp_path / "rec", nframes=2)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    out = tmp_path / "blocker" / "out"
    ledger = tmp_path / "ledger"
    common = [
        "--output",
        str(out),
        "--ledger",
        str(ledger),
        "--lframes",
        "1024",
        "--log-file",
        str(tmp_path / "log.txt"),
    ]
    for args in (
        ["process", str(rec)],
        ["watch", str(tmp_path / "rec"), "--once"],
        ["watch", str(tmp_path / "rec")],
    ):
        p = subprocess.run(
            [*crunchctl_cmd(), *args, *common],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=60,
        )
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr == f"Error: {out}: cannot create the output folder: Not a directory\n"
        assert not ledger.exists() or ledger_rows(ledger).height == 0, args
