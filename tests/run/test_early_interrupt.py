"""A Ctrl-C that reaches the whole process group while worker processes are still starting
(as a terminal sends it) stops the run cleanly: no worker dies of it, no recording is
recorded as failed because of it."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from conftest import child_env, crunchctl_cmd, small_args, wait_for
from crunchctl.ledger.store import Ledger


def test_ctrl_c_to_the_group_while_workers_start_fails_no_recording(make_tiq, tmp_path):
    recs = [
        str(make_tiq(f"r{i}.tiq", folder=tmp_path / "rec", seed=i, nframes=8)) for i in range(4)
    ]
    codes = []
    # The output folder is made just before the workers start: signal from then on.
    for delay in (0.0, 0.1, 0.4):
        run = tmp_path / f"run{delay}"
        run.mkdir()
        child = subprocess.Popen(
            [*crunchctl_cmd(), "process", *recs, "-j", "2", "--force", *small_args(run)],
            env=child_env(),
            cwd=run,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        wait_for(
            lambda: (run / "out").exists() or child.poll() is not None, 60, "the output folder"
        )
        time.sleep(delay)
        try:
            os.killpg(child.pid, signal.SIGINT)  # the whole group, like a terminal
        except ProcessLookupError:
            pass
        out, err = child.communicate(timeout=120)
        codes.append(child.returncode)
        assert "worker process died" not in out + err, (delay, err)
        assert child.returncode in (0, 130), (delay, child.returncode, err)
        ledger = run / "ledger"
        if ledger.exists():
            rows = Ledger(ledger, create=False).scan().collect()
            assert set(rows["status"].to_list()) <= {"ok"}, (delay, rows)
    # At least one signal landed while the run was going on.
    assert 130 in codes


def test_ctrl_c_to_the_group_while_the_local_cluster_starts(make_tiq, tmp_path):
    """``--scheduler local``: a Ctrl-C while the forkserver imports and the workers start
    stops the run (exit 130), with no recording failed and no traceback from any process."""
    recs = [
        str(make_tiq(f"r{i}.tiq", folder=tmp_path / "rec", seed=i, nframes=8)) for i in range(2)
    ]
    child = subprocess.Popen(
        [
            *crunchctl_cmd(),
            "process",
            *recs,
            "-j",
            "2",
            "--scheduler",
            "local",
            *small_args(tmp_path),
        ],
        env=child_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )

    def forkserver_started() -> bool:
        return (
            child.poll() is not None
            or subprocess.run(
                ["pgrep", "-g", str(child.pid), "-f", "forkserver"], capture_output=True, text=True
            ).stdout.strip()
            != ""
        )

    # Signal as soon as the forkserver exists: it is then importing Dask and the numerics.
    wait_for(forkserver_started, 60, "the forkserver")
    os.killpg(child.pid, signal.SIGINT)  # the whole group, like a terminal
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, (child.returncode, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    ledger = tmp_path / "ledger"
    if ledger.exists():
        rows = Ledger(ledger, create=False).scan().collect()
        assert set(rows["status"].to_list()) <= {"ok"}, rows

    # No process of the run stays behind (a forkserver still importing when crunchctl ended
    # finishes its imports, sees its parent gone and exits).
    def group_gone() -> bool:
        return (
            subprocess.run(
                ["pgrep", "-g", str(child.pid)], capture_output=True, text=True
            ).stdout.strip()
            == ""
        )

    wait_for(group_gone, 30, "the run's processes to exit")
