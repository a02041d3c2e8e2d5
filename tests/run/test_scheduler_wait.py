"""``--scheduler`` that does not answer: a scheduler file that is not there, an address
that never answers, and a scheduler that goes away, with real processes and signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Lines, child_env, crunchctl_cmd, small_args, wait_for

pytest.importorskip("distributed")

from cluster_helpers import SLOW_PLUGIN, batch_args, start_cluster  # noqa: E402

from crunchctl.ledger.store import Ledger  # noqa: E402


def start(tmp_path: Path, rec: Path, scheduler: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *crunchctl_cmd(),
            "process",
            str(rec),
            "--scheduler",
            scheduler,
            *small_args(tmp_path),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=tmp_path,
    )


def test_a_scheduler_file_in_a_folder_that_does_not_exist_is_exit_2_at_once(tmp_path, make_tiq):
    rec = make_tiq()
    typo = tmp_path / "no-such-folder" / "scheduler.json"
    began = time.monotonic()
    p = subprocess.run(
        [*crunchctl_cmd(), "process", str(rec), "--scheduler", str(typo), *small_args(tmp_path)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert p.returncode == 2, p.stderr
    assert time.monotonic() - began < 30
    assert p.stderr == (
        f"Error: --scheduler {typo}: no such scheduler file (the folder "
        f"{typo.parent} does not exist)\n"
    )


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_waiting_for_a_scheduler_file_says_so_and_a_signal_ends_it(tmp_path, make_tiq, sig, code):
    rec = make_tiq()
    missing = tmp_path / "scheduler.json"
    child = start(tmp_path, rec, str(missing))
    try:
        err = Lines(child.stderr)
        err.wait_for(f"waiting for the Dask scheduler file {missing} (Ctrl-C to stop)", 60)
        assert child.poll() is None
        child.send_signal(sig)
        sent = time.monotonic()
        out = child.stdout.read()
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert time.monotonic() - sent < 10
    assert child.returncode == code, err.rest()
    assert "Traceback" not in err.rest()
    assert "processed 0, failed 0, not started 1" in out


def test_a_scheduler_file_that_never_comes_times_out_with_exit_2(tmp_path, make_tiq):
    rec = make_tiq()
    missing = tmp_path / "scheduler.json"
    began = time.monotonic()
    p = subprocess.run(
        [
            *crunchctl_cmd(),
            "process",
            str(rec),
            "--scheduler",
            str(missing),
            "--scheduler-timeout",
            "4",
            *small_args(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert p.returncode == 2, p.stderr
    assert 4 <= time.monotonic() - began < 40
    assert p.stderr.splitlines() == [
        f"waiting for the Dask scheduler file {missing} (Ctrl-C to stop)",
        f"Error: --scheduler {missing}: no Dask scheduler answered within 4 s "
        f"(--scheduler-timeout)",
    ]


def test_an_address_that_never_answers_says_so_after_2_s_and_times_out(tmp_path, make_tiq):
    rec = make_tiq()
    with socket.socket() as silent:  # listens, never speaks: a handshake never finishes
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        p = subprocess.run(
            [
                *crunchctl_cmd(),
                "watch",
                str(rec.parent),
                "--once",
                "--scheduler",
                address,
                "--scheduler-timeout",
                "5",
                *small_args(tmp_path),
            ],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=90,
        )
    assert p.returncode == 2, p.stderr
    assert 5 <= time.monotonic() - began < 60
    lines = p.stderr.splitlines()
    waiting = [line for line in lines if "waiting for the Dask scheduler" in line]
    assert len(waiting) == 1 and waiting[0].endswith(
        f"waiting for the Dask scheduler at {address} (Ctrl-C to stop)"
    ), p.stderr
    assert lines[-1] == (
        f"Error: --scheduler {address}: no Dask scheduler answered within 5 s (--scheduler-timeout)"
    )
    assert "Traceback" not in p.stderr


def test_a_scheduler_file_written_while_waiting_is_used(tmp_path, make_tiq):
    rec = make_tiq()
    folder = tmp_path / "cluster"
    folder.mkdir()
    child = start(tmp_path, rec, str(folder / "scheduler.json"))
    cluster = None
    try:
        wait_for(
            lambda: (tmp_path / "out").exists() or child.poll() is not None, 60, "the run to start"
        )
        cluster = start_cluster(folder, 1)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
        if cluster is not None:
            cluster.stop()
    assert child.returncode == 0, err
    assert "processed 1, failed 0" in out
    rows = Ledger(tmp_path / "ledger", create=False).scan().collect()
    assert rows["status"].to_list() == ["ok"]


def test_a_lost_scheduler_prints_no_dask_traceback_without_v(tmp_path):
    cluster = start_cluster(tmp_path / "cluster", 2)
    plugin = tmp_path / "slow_loader.py"
    plugin.write_text(SLOW_PLUGIN)
    items = [f"item_{i:02d}" for i in range(20)]
    args = [
        *crunchctl_cmd(),
        *map(str, batch_args(tmp_path, items, f"{plugin}:rows")),
        "--scheduler",
        cluster.address,
    ]
    try:
        child = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env()
        )
        wait_for(lambda: len(list((tmp_path / "figs").glob("*.png"))) >= 2, 60, "figures")
        os.killpg(cluster.procs[0].pid, signal.SIGKILL)  # the scheduler
        out, err = child.communicate(timeout=120)
    finally:
        cluster.stop()
    assert child.returncode == 1, err
    assert "lost the connection to the Dask scheduler" in err
    assert "Traceback" not in err, err
    # The distributed package's own lines go to the log file, not the console.
    assert "distributed." not in err, err
