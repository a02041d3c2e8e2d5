"""A real Dask cluster for the tests: a scheduler and workers as subprocesses on loopback,
and the batch options the cluster tests share."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conftest import child_env, wait_for

DASK = Path(sys.executable).with_name("dask")

# A plugin of this test's own: slow enough to be killed mid-item; "crash" items kill
# whichever worker runs them.
SLOW_PLUGIN = """
import os, time
import numpy as np

def rows(item):
    if "crash" in item:
        os._exit(3)
    time.sleep(float(os.environ.get("SLOW_SECONDS", "0.4")))
    return [{"x": np.arange(20.0), "y": np.arange(8.0), "data": np.ones((8, 20))}]
"""


# ------------------------------------------------------------------------ the cluster


@dataclass
class Cluster:
    folder: Path
    scheduler_file: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return json.loads(self.scheduler_file.read_text())["address"]

    def worker_pids(self) -> dict[str, int]:
        from distributed import Client

        with Client(scheduler_file=str(self.scheduler_file), timeout="10s") as client:
            return client.run(os.getpid)

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        from distributed import Client

        with Client(scheduler_file=str(self.scheduler_file), timeout="20s") as client:
            client.wait_for_workers(n, timeout=timeout)

    def stop(self) -> None:
        for p in reversed(self.procs):
            # Each was started in its own session: its group holds the nanny and worker.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)


def start_cluster(
    folder: Path,
    workers: int = 2,
    *,
    worker_prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Cluster:
    """A scheduler and ``workers`` one-thread workers, each a subprocess, on 127.0.0.1."""
    folder.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(folder, folder / "scheduler.json")
    penv = child_env(**(env or {}))
    # One death is retried, the second gives KilledWorker: keeps the crash test short.
    penv["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "1"

    def spawn(args: list[str], log: str) -> None:
        with open(folder / log, "wb") as out:
            cluster.procs.append(
                subprocess.Popen(
                    args,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=folder,
                    env=penv,
                    start_new_session=True,
                )
            )

    try:
        spawn(
            [
                str(DASK),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(cluster.scheduler_file),
            ],
            "scheduler.log",
        )
        wait_for(
            lambda: cluster.scheduler_file.exists() and cluster.scheduler_file.stat().st_size,
            30,
            "the scheduler file",
        )
        for i in range(workers):
            spawn(
                [
                    *(worker_prefix or []),
                    str(DASK),
                    "worker",
                    "--scheduler-file",
                    str(cluster.scheduler_file),
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                    "--local-directory",
                    str(folder / f"worker{i}"),
                ],
                f"worker{i}.log",
            )
        cluster.wait_for_workers(workers)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def batch_args(tmp_path: Path, items: list[str], loader: str) -> list[str]:
    listing = tmp_path / "items.txt"
    listing.write_text("".join(f"{i}\n" for i in items))
    return [
        "batch",
        listing,
        "--loader",
        loader,
        "--output",
        tmp_path / "figs",
        "--ledger",
        tmp_path / "ledger",
        "--log-file",
        tmp_path / "batch.log",
        "--dpi",
        "40",
    ]
