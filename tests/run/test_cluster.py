"""``--scheduler``: process, batch and watch on a real Dask cluster (scheduler and workers as
subprocesses on loopback), ``--scheduler local``, the probe, dead workers, lost schedulers,
Ctrl-C, and the paths that must stay free of Dask.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import child_env, crunchctl_cmd, require, small_args, wait_for

pytest.importorskip("distributed")

from cluster_helpers import SLOW_PLUGIN, batch_args, start_cluster  # noqa: E402

from crunchctl.ledger.store import Ledger  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "tests" / "plugins" / "batch_plugin.py"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    c = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


# -------------------------------------------------------------------------- helpers


def crunch(
    *args, cwd: Path | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*crunchctl_cmd(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(**env),
        cwd=cwd,
    )


def rows(ledger: Path, kind: str):
    return Ledger(ledger, create=False).scan().collect().filter(kind=kind)


def per_item(ledger: Path, kind: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in rows(ledger, kind).sort("finished").iter_rows(named=True):
        out.setdefault(r["item"], []).append(r["status"])
    return out


def recordings(make_tiq, folder: Path, n: int) -> list[Path]:
    return [make_tiq(f"rec{i:02d}.tiq", folder=folder) for i in range(n)]


# ----------------------------------------------------------------- a running cluster


def test_process_on_the_cluster_matches_a_local_run(cluster, tmp_path, make_tiq):
    recs = recordings(make_tiq, tmp_path / "in", 4)
    here = tmp_path / "here"
    here.mkdir()
    r = crunch("process", *recs, "--scheduler", cluster.address, *small_args(here))
    assert r.returncode == 0, r.stderr
    assert f"Dask scheduler {cluster.address}; dashboard http://127.0.0.1:" in r.stderr
    assert "processed 4, failed 0" in r.stdout
    done = per_item(here / "ledger", "iq")
    assert done == {str(p): ["ok"] for p in recs}
    # The same run with the built-in pool: same product names, same numbers.
    pool = tmp_path / "pool"
    pool.mkdir()
    r = crunch("process", *recs, "-j", "2", *small_args(pool))
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (here / "out").iterdir())
    assert names == sorted(p.name for p in (pool / "out").iterdir())
    assert len(names) == 12
    for name in names:
        if name.endswith(".npz"):
            a, b = np.load(here / "out" / name), np.load(pool / "out" / name)
            assert np.array_equal(a["arr_2"], b["arr_2"]) and np.array_equal(a["arr_0"], b["arr_0"])
    # Done items are skipped before anything is submitted: no probe, no task.
    r = crunch("process", *recs, "--scheduler", cluster.address, *small_args(here), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["skipped"] == 4
    assert per_item(here / "ledger", "iq") == done


def test_batch_with_a_plugin_file_sent_to_the_workers(cluster, tmp_path):
    plugin = tmp_path / "plugins" / "lab_loader_x.py"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN.read_text())
    items = [f"orbit_{i:03d}" for i in range(5)]
    r = crunch(
        *batch_args(tmp_path, items, f"{plugin}:two_rows"), "--scheduler", cluster.scheduler_file
    )
    assert r.returncode == 0, r.stderr
    assert per_item(tmp_path / "ledger", "batch") == {i: ["ok"] for i in items}
    for item in items:
        assert (tmp_path / "figs" / f"{item}.png").read_bytes()[:4] == b"\x89PNG"
    # Client.upload_file put the plugin into the workers' own folders.
    uploaded = list(cluster.folder.glob("worker*/**/lab_loader_x.py"))
    assert len(uploaded) >= 2, uploaded


def test_loader_module_missing_on_the_workers_names_worker_and_module(cluster, tmp_path):
    # Importable here (the working directory), not on the workers (theirs differs).
    (tmp_path / "only_here_loader.py").write_text(PLUGIN.read_text())
    r = crunch(
        *batch_args(tmp_path, ["a", "b"], "only_here_loader:two_rows"),
        "--scheduler",
        cluster.address,
        cwd=tmp_path,
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = r.stderr.strip().splitlines()[-1]
    assert "only_here_loader" in line and "Dask worker tcp://127.0.0.1:" in line
    assert not (tmp_path / "figs").exists() or not list((tmp_path / "figs").glob("*.png"))


def test_killed_worker_items_end_ok_or_error_once_each(cluster, tmp_path):
    plugin = tmp_path / "slow_loader.py"
    plugin.write_text(SLOW_PLUGIN)
    items = [f"item_{i:02d}" for i in range(6)] + ["crash_me"]
    proc = subprocess.Popen(
        [
            *crunchctl_cmd(),
            *map(str, batch_args(tmp_path, items, f"{plugin}:rows")),
            "--scheduler",
            cluster.address,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        wait_for(lambda: len(list((tmp_path / "figs").glob("item_*.png"))) >= 2, 60, "two figures")
        pids = cluster.worker_pids()
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err  # the crash item is an error
    got = per_item(tmp_path / "ledger", "batch")
    assert sorted(got) == sorted(items)
    assert all(len(statuses) == 1 for statuses in got.values()), got
    for item in items[:-1]:
        assert got[item] == ["ok"], (item, got[item])
    (crash,) = rows(tmp_path / "ledger", "batch").filter(item="crash_me").iter_rows(named=True)
    assert crash["status"] == "error"
    assert "worker died" in crash["error"] and "tcp://127.0.0.1:" in crash["error"]
    cluster.wait_for_workers(2)  # the nannies restarted them, for the next test


@pytest.mark.slow
def test_ctrl_c_stops_flushes_and_the_next_run_continues(cluster, tmp_path):
    plugin = tmp_path / "slow_loader.py"
    plugin.write_text(SLOW_PLUGIN)
    items = [f"item_{i:02d}" for i in range(12)]
    args = [
        *crunchctl_cmd(),
        *map(str, batch_args(tmp_path, items, f"{plugin}:rows")),
        "--scheduler",
        cluster.address,
    ]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(SLOW_SECONDS="1.0"),
    )
    try:
        wait_for(lambda: len(list((tmp_path / "figs").glob("*.png"))) >= 1, 60, "a figure")
        proc.send_signal(signal.SIGINT)  # running tasks finish, nothing new starts
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    first = per_item(tmp_path / "ledger", "batch")
    assert 1 <= len(first) < len(items)
    r = subprocess.run(
        args + ["--resume"],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(SLOW_SECONDS="0.05"),
    )
    assert r.returncode == 0, r.stderr
    assert per_item(tmp_path / "ledger", "batch") == {i: ["ok"] for i in items}


# ------------------------------------------------------------ clusters of their own


def test_probe_stops_before_any_task_when_workers_lack_the_paths(tmp_path, make_tiq):
    """A worker that sees the output folder read-only, and not the input folder at all."""
    out = tmp_path / "shared" / "out"
    hidden = tmp_path / "hidden"
    out.mkdir(parents=True)
    hidden.mkdir()
    rec = make_tiq("rec.tiq", folder=hidden)
    visible = make_tiq("ok.tiq", folder=tmp_path / "in")
    require("mount-namespaces")  # skipped without them, failed in CI
    # A private mount namespace: the read-only bind and the empty tmpfs exist only there.
    script = (
        f"mount --bind {out} {out} && mount -o remount,bind,ro {out} && "
        f'mount -t tmpfs none {hidden} && exec "$@"'
    )
    c = start_cluster(
        tmp_path / "cluster", 1, worker_prefix=["unshare", "-m", "sh", "-c", script, "sh"]
    )
    try:
        from distributed import Client

        with Client(scheduler_file=str(c.scheduler_file), timeout="10s") as client:
            (worker,) = client.scheduler_info()["workers"]  # its address names it
        args = [
            "--lframes",
            "1024",
            "--zoom-span",
            "200000",
            "--ledger",
            tmp_path / "ledger",
            "--log-file",
            tmp_path / "log",
            "--scheduler",
            c.address,
        ]
        r = crunch("process", visible, "--output", out, *args)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert f"Dask worker {worker} cannot write into the output folder {out}" in r.stderr
        assert "same paths" in r.stderr
        assert list(out.iterdir()) == []  # nothing ran
        r = crunch("process", rec, "--output", tmp_path / "out2", *args)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert f"Dask worker {worker} cannot read the input {rec}" in r.stderr
        assert not list((tmp_path / "out2").glob("*.png"))
    finally:
        c.stop()


@pytest.mark.slow
def test_lost_scheduler_flushes_finished_outcomes_and_exits_1(tmp_path):
    c = start_cluster(tmp_path / "cluster", 2)
    plugin = tmp_path / "slow_loader.py"
    plugin.write_text(SLOW_PLUGIN)
    items = [f"item_{i:02d}" for i in range(20)]
    args = [*crunchctl_cmd(), *map(str, batch_args(tmp_path, items, f"{plugin}:rows"))]
    try:
        proc = subprocess.Popen(
            args + ["--scheduler", c.address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        wait_for(lambda: len(list((tmp_path / "figs").glob("*.png"))) >= 3, 60, "figures")
        os.killpg(c.procs[0].pid, signal.SIGKILL)  # the scheduler
        out, err = proc.communicate(timeout=120)
    finally:
        c.stop()
    assert proc.returncode == 1, err
    assert "lost the connection to the Dask scheduler" in err
    first = per_item(tmp_path / "ledger", "batch")
    # A figure on disk whose outcome was still on its way when the scheduler went is not
    # done for this run (it is redone): so at least one, not three, is recorded.
    assert 1 <= len(first) < len(items)
    # Every item is accounted for: done (recorded), or not started (in progress or never
    # submitted when the scheduler went).
    counts = re.search(r"this run: (\d+) done, (\d+) failed, (\d+) not started", err)
    assert counts, err
    assert (int(counts[1]), int(counts[2]), int(counts[3])) == (
        len(first),
        0,
        len(items) - len(first),
    ), err
    errors = rows(tmp_path / "ledger", "batch").filter(status="error")["error"].to_list()
    assert all(s == ["ok"] for s in first.values()), errors
    r = subprocess.run(
        args + ["--resume", "-j", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(SLOW_SECONDS="0.01"),
    )
    assert r.returncode == 0, r.stderr
    assert per_item(tmp_path / "ledger", "batch") == {i: ["ok"] for i in items}


def test_scheduler_local_runs_process(tmp_path, make_tiq):
    recs = recordings(make_tiq, tmp_path / "in", 2)
    r = crunch("process", *recs, "--scheduler", "local", "-j", "1", *small_args(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "dashboard http://127.0.0.1:" in r.stderr
    assert per_item(tmp_path / "ledger", "iq") == {str(p): ["ok"] for p in recs}
    assert len(list((tmp_path / "out").glob("*.png"))) == 4


def test_watch_once_submits_ready_recordings_to_the_cluster(cluster, tmp_path, make_tiq):
    recs = recordings(make_tiq, tmp_path / "in", 2)
    old = time.time() - 3600  # long settled
    for p in recs:
        os.utime(p, (old, old))
    r = crunch(
        "watch", tmp_path / "in", "--once", "--scheduler", cluster.address, *small_args(tmp_path)
    )
    assert r.returncode == 0, r.stderr
    assert "dashboard http://127.0.0.1:" in r.stderr
    assert per_item(tmp_path / "ledger", "iq") == {str(p): ["ok"] for p in recs}


# ------------------------------------------------------------------ without Dask


def test_help_imports_no_dask():
    code = (
        "import sys, runpy\n"
        "sys.argv = ['crunchctl', '--help']\n"
        "try:\n    runpy.run_module('crunchctl', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "sys.argv = ['crunchctl', 'process', '--help']\n"
        "try:\n    runpy.run_module('crunchctl', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dask', 'distributed', 'tornado', 'bokeh')))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=child_env()
    )
    assert r.returncode == 0, r.stderr
    assert "--scheduler" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "LOADED []"


def test_without_distributed_one_line_and_exit_2(tmp_path, make_tiq):
    rec = make_tiq()
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None  # as if it were not installed\n"
        "from crunchctl.cli import main\n"
        f"sys.argv = ['crunchctl', 'process', {str(rec)!r}, '--scheduler', 'local']"
        f" + {[str(a) for a in small_args(tmp_path)]!r}\n"
        "main()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=child_env()
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip().splitlines() == [
        'Error: --scheduler needs Dask: pip install "crunchctl[cluster]" (the distributed package)'
    ]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
