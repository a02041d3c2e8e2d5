"""Running the engine's tasks on a Dask cluster: the executor behind ``--scheduler``.

Same interface as the built-in ``WorkerPool``; Dask (``distributed``) is imported only here
and only when a scheduler is given, so every other path stays free of it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crunchctl.errors import RunAborted, UsageError
from crunchctl.outcome import Outcome
from crunchctl.run.executor import WORKER_PRELOAD

if TYPE_CHECKING:
    from crunchctl.config import Settings

log = logging.getLogger("crunchctl.cluster")

INSTALL_HINT = '--scheduler needs Dask: pip install "crunchctl[cluster]" (the distributed package)'
SHARED_PATHS = (
    "every Dask worker needs the same paths as this machine (a shared file "
    "system such as NFS or Lustre, mounted at the same place)"
)
#: Seconds between looks at the cluster's size (workers join and leave, e.g. Slurm jobs).
SIZE_REFRESH = 2.0


#: Seconds to wait for a scheduler that does not answer [``--scheduler-timeout``].
DEFAULT_TIMEOUT = 60.0
#: Seconds of waiting before the user is told what the command waits for.
SAY_WAITING_AFTER = 2.0
#: Loggers whose lines go to the log file only, unless -v (``run/logs.adopt``).
QUIET_LOGGERS = ("distributed", "tornado")


class SchedulerLost(RunAborted):
    """The connection to the Dask scheduler was lost mid-run; what finished is recorded."""


def require_distributed() -> None:
    """Fail with one line saying what to install when Dask's ``distributed`` is missing.

    Raises:
        UsageError: ``distributed`` cannot be imported.
    """
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL_HINT) from None


# ------------------------------------------------------------------- on the workers


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "?"


def _on_worker(task: Any) -> Any:
    """The task as this worker must run it: a ``file.py:function`` loader from the upload.

    ``Client.upload_file`` puts the plugin file into the worker's local directory; the task
    then loads it from there, so a worker does not need the file at the client's path.
    """
    spec = getattr(task, "loader", None)
    if spec is None or getattr(spec, "kind", None) != "file":
        return task
    from distributed import get_worker

    local = os.path.join(get_worker().local_directory, os.path.basename(spec.target))
    if not os.path.isfile(local):
        return task
    return dataclasses.replace(
        task, loader=dataclasses.replace(spec, target=local, sys_path=(os.path.dirname(local),))
    )


def run_on_worker(fn: Callable[[Any], Outcome], task: Any) -> Outcome:
    """Run one task on a Dask worker with the same error wrapping as a pool worker."""
    started = time.time()
    try:
        return fn(_on_worker(task))
    except BaseException as e:  # noqa: BLE001 - a task must never take its worker down
        outcome = task.failure(
            f"{task.item}: internal error on Dask worker "
            f"{_worker_address()}: {type(e).__name__}: {e}",
            started,
        )
        outcome.extra["traceback"] = traceback.format_exc()
        return outcome


def probe(inputs: list[str], output: str, modules: list[str]) -> dict[str, Any]:
    """Run on every worker before the first task: can it read, write and import?"""
    import importlib
    import tempfile

    import crunchctl

    problems: list[str] = []
    for path in inputs:
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as e:
            problems.append(f"cannot read the input {path}: {e.strerror or e}")
    try:
        fd, name = tempfile.mkstemp(dir=output, prefix=".crunchctl-probe-")
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        problems.append(f"cannot write into the output folder {output}: {e.strerror or e}")
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - any import-time failure of a plugin
            problems.append(f"cannot import the loader module {module}: {type(e).__name__}: {e}")
    return {"version": crunchctl.__version__, "problems": problems}


def dask_setup(worker: Any) -> None:
    """Worker preload for ``--scheduler local``: Ctrl-C is left to crunchctl; numerics loaded.

    A terminal's Ctrl-C reaches the whole process group; the local cluster's workers must
    finish their tasks (first Ctrl-C) or be cancelled by crunchctl (second), as pool
    workers are.
    """
    import importlib
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # What a recording task imports, now rather than in the first task (the built-in
    # pool's forkserver does the same).
    for module in WORKER_PRELOAD:
        importlib.import_module(module)


# ---------------------------------------------------------------------- the client


def _needs(task: Any) -> tuple[list[str], str | None, list[str], list[str]]:
    """(inputs to read, output folder, modules to import, files to upload) of a task."""
    path = getattr(task, "path", None)
    inputs = [path] if path and os.path.isfile(path) else []
    output: str | None = None
    if hasattr(task, "png"):  # a batch item
        output = os.path.dirname(task.png)
    elif getattr(task, "settings", None) is not None:
        output = str(task.settings.output_dir())
    modules: list[str] = []
    files: list[str] = []
    spec = getattr(task, "loader", None)
    if spec is not None and spec.kind == "module":
        modules.append(spec.target)
    elif spec is not None and spec.kind == "file":
        files.append(spec.target)
    return inputs, output, modules, files


class DaskExecutor:
    """Runs a task function on a Dask cluster, one future per task.

    Args:
        fn: top-level task function (imported by reference on the workers).
        settings: resolved settings whose ``scheduler`` is ``local``, a scheduler address
            (``tcp://host:8786``) or the path of a scheduler file (JSON, as ``dask
            scheduler --scheduler-file`` writes); or that scheduler string itself.
        workers: worker processes for ``local`` (one thread each); a running cluster has
            the size it has.
        announce: shows the user the dashboard link (the command's progress reporter);
            the log file has it either way.

    Only as many tasks are in flight as the cluster has worker threads, so a first Ctrl-C
    lets running tasks finish and queues nothing behind them, as with the built-in pool.
    Workers that die are the scheduler's business: it runs their tasks again elsewhere
    (``distributed.scheduler.allowed-failures`` times) before giving up with
    ``KilledWorker``, which becomes that item's error.

    Raises:
        UsageError: Dask is not installed or the scheduler cannot be reached.
    """

    def __init__(
        self,
        fn: Callable[[Any], Outcome],
        settings: Settings | str,
        *,
        workers: int = 1,
        announce: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        scheduler = settings if isinstance(settings, str) else str(settings.scheduler)
        timeout = (
            DEFAULT_TIMEOUT
            if isinstance(settings, str)
            else float(getattr(settings, "scheduler_timeout", None) or DEFAULT_TIMEOUT)
        )
        # First, so that its imports run on the other core while this one imports Dask.
        forkserver = scheduler == "local" and start_local_forkserver()
        require_distributed()
        from distributed import Client

        from crunchctl.run import logs

        for name in QUIET_LOGGERS:
            logs.adopt(name)

        self.fn = fn
        self.scheduler = scheduler
        self._cluster: Any = None
        self._futures: dict[Any, tuple[Any, Any, float]] = {}
        self._lost: list[Any] = []
        self._probed = False
        self._uploaded: set[str] = set()
        self._size = 0
        self._size_at = 0.0
        self._waiting_logged = False
        try:
            if scheduler == "local":
                self._cluster = _local_cluster(max(1, workers), forkserver)
                self.client = Client(self._cluster)
            else:
                self.client = _connect(
                    scheduler,
                    timeout,
                    stop or threading.Event(),
                    announce or (lambda text: log.warning("%s", text)),
                )
        except (OSError, TimeoutError, ValueError) as e:
            self.close()
            raise UsageError(
                f"--scheduler {scheduler}: cannot reach the Dask scheduler: {type(e).__name__}: {e}"
            ) from None
        self.address = self.client.scheduler.address
        link = self.client.dashboard_link
        text = f"Dask scheduler {self.address}; dashboard {link}"
        if announce is None:
            log.info("%s", text)
        else:  # shown by the caller (on the console), kept in the log file
            log.info("%s", text, extra={"file_only": True})
            announce(text)

    # ------------------------------------------------------------------ the pool's face

    def _capacity(self) -> int:
        now = time.monotonic()
        if now - self._size_at >= SIZE_REFRESH or self._size == 0:
            self._size_at = now
            try:
                self._size = sum(self.client.nthreads().values())
            except Exception:  # noqa: BLE001 - a lost scheduler shows up in collect()
                pass
        return self._size

    @property
    def idle(self) -> int:
        if self._lost:
            return 0
        return max(0, self._capacity() - len(self._futures))

    @property
    def busy(self) -> int:
        return len(self._futures) + len(self._lost)

    def running(self) -> list[Any]:
        return [task for task, _, _ in self._futures.values()] + list(self._lost)

    def submit(self, task: Any) -> None:
        if not self._probed:
            self._probe(task)
        self._upload(task)
        try:
            # pure=False: a unique key per call; Dask would merge equal keys into one task.
            future = self.client.submit(
                run_on_worker,
                self.fn,
                task,
                pure=False,
                key=f"{getattr(self.fn, '__name__', 'task')}-{os.urandom(8).hex()}",
            )
        except Exception as e:  # noqa: BLE001
            self._lost.append(task)
            log.error("cannot submit %s to the Dask scheduler: %s", task.item, e)
            return
        # The future is kept until collect() has its outcome: Dask forgets work whose
        # futures are released.
        self._futures[future.key] = (task, future, time.time())

    def collect(self, timeout: float | None) -> list[tuple[Any, Outcome]]:
        """Wait up to ``timeout`` s for finished tasks; return (task, outcome) pairs.

        Raises:
            SchedulerLost: the scheduler connection is gone (outcomes that finished before
                were returned by an earlier call).
        """
        if not self._futures:
            if self._lost:
                self._raise_lost()
            if self._capacity() == 0:  # no workers yet (a Slurm job still queued)
                if not self._waiting_logged:
                    self._waiting_logged = True
                    log.warning("no Dask workers yet; waiting for workers to join %s", self.address)
                time.sleep(timeout or 0.25)
            return []
        from distributed import wait

        futures = [f for _, f, _ in self._futures.values()]
        try:
            wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        except Exception:  # noqa: BLE001 - e.g. the client closed under us
            pass
        results: list[tuple[Any, Outcome]] = []
        for key, (task, future, submitted) in list(self._futures.items()):
            status = future.status
            if status == "pending":
                continue
            del self._futures[key]
            try:
                if status == "finished":
                    results.append((task, future.result()))
                elif status == "error":
                    results.append((task, self._failure(task, future.exception(), submitted)))
                else:  # cancelled: every future at once when the scheduler is lost
                    self._lost.append(task)
            except Exception as e:  # noqa: BLE001 - a result that cannot come back
                from distributed.comm.core import CommClosedError

                if isinstance(e, (CommClosedError, OSError)) or self.client.status != "running":
                    self._lost.append(task)  # the connection's fault, not the item's
                else:
                    results.append(
                        (
                            task,
                            task.failure(
                                f"{task.item}: the result did not come back from the cluster: "
                                f"{type(e).__name__}: {e}",
                                submitted,
                            ),
                        )
                    )
        if self._lost and not results:
            self._raise_lost()
        return results

    def _failure(self, task: Any, exc: BaseException, started: float) -> Outcome:
        from distributed.scheduler import KilledWorker

        if not isinstance(exc, KilledWorker) and self.client.status != "running":
            raise exc  # the connection, not the item: collect() reports it as lost
        if isinstance(exc, KilledWorker):
            worker = getattr(exc.last_worker, "address", exc.last_worker)
            tries = exc.allowed_failures + 1
            return task.failure(
                f"{task.item}: the Dask worker died while processing it, "
                f"{tries} time{'s' if tries != 1 else ''} (last on worker "
                f"{worker}); see that worker's log",
                started,
            )
        return task.failure(
            f"{task.item}: the Dask task failed: {type(exc).__name__}: {exc}", started
        )

    def _raise_lost(self) -> None:
        n = len(self._lost)
        self._lost = []
        raise SchedulerLost(
            f"lost the connection to the Dask scheduler {self.address}: "
            f"finished outcomes are recorded",
            in_progress=n,
            advice="run the same command again to continue",
        )

    def cancel(self) -> list[Any]:
        """Cancel every task not finished; return them (not finished)."""
        tasks = [task for task, _, _ in self._futures.values()]
        futures = [f for _, f, _ in self._futures.values()]
        self._futures.clear()
        if futures:
            try:
                self.client.cancel(futures, force=True)
            except Exception as e:  # noqa: BLE001 - the scheduler may be gone already
                log.debug("cancelling on the cluster: %s", e)
        return tasks

    def close(self) -> None:
        self.cancel()
        client = getattr(self, "client", None)
        if client is not None:
            try:
                client.close(timeout=10)
            except Exception as e:  # noqa: BLE001
                log.debug("closing the Dask client: %s", e)
        if self._cluster is not None:
            try:
                self._cluster.close(timeout=10)
            except Exception as e:  # noqa: BLE001
                log.debug("closing the local Dask cluster: %s", e)
            self._cluster = None

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ before the first

    def _probe(self, task: Any) -> None:
        """Check on every worker that the first task's paths and plugin work there.

        Raises:
            UsageError: a worker cannot read the input, write the output folder, import
                the loader module, or import crunchctl at all.
        """
        import crunchctl

        inputs, output, modules, _ = _needs(task)
        self._probed = True
        if output is None:
            return
        try:
            answers = self.client.run(probe, inputs, output, modules)
        except Exception as e:  # noqa: BLE001 - whatever a worker raised unpickling it
            raise UsageError(
                f"the Dask workers cannot run crunchctl ({type(e).__name__}: "
                f"{e}): install crunchctl {crunchctl.__version__} on every "
                f"worker"
            ) from None
        for worker, answer in sorted(answers.items()):
            if answer["problems"]:
                hint = (
                    ""
                    if all("loader module" in p for p in answer["problems"])
                    else f"; {SHARED_PATHS}"
                )
                raise UsageError(f"Dask worker {worker} {'; '.join(answer['problems'])}{hint}")
            if answer["version"] != crunchctl.__version__:
                log.warning(
                    "Dask worker %s runs crunchctl %s, this is %s",
                    worker,
                    answer["version"],
                    crunchctl.__version__,
                )

    def _upload(self, task: Any) -> None:
        for path in _needs(task)[3]:
            if path not in self._uploaded:
                self._uploaded.add(path)
                # load=False: only the workers import it, when a task needs it (the
                # scheduler may not even have the plugin's own dependencies).
                self.client.upload_file(path, load=False)


def _is_file(scheduler: str) -> bool:
    """``--scheduler`` names a scheduler file (JSON) rather than an address."""
    return "://" not in scheduler and (
        scheduler.endswith(".json") or os.sep in scheduler or os.path.isfile(scheduler)
    )


def _connect(
    scheduler: str, timeout: float, stop: threading.Event, say: Callable[[str], None]
) -> Any:
    """A client of the scheduler at an address or in a scheduler file, waiting for it.

    Dask's own client waits for a missing scheduler file for ever and cannot be stopped
    by a signal, so the waiting is done here: in short attempts, saying after
    ``SAY_WAITING_AFTER`` s what it waits for, ending when ``stop`` is set (a stop
    signal) or after ``timeout`` s.

    Raises:
        UsageError: a scheduler file whose folder does not exist (a typo), an unreadable
            scheduler file, or no answer within ``timeout`` s.
        StoppedStarting: ``stop`` was set while waiting.
    """
    import json

    from distributed import Client

    from crunchctl.run.executor import StoppedStarting

    started = time.monotonic()
    said = False
    what = f"the Dask scheduler {'file' if _is_file(scheduler) else 'at'} {scheduler}"
    if _is_file(scheduler):
        folder = os.path.dirname(os.path.abspath(scheduler))
        if not os.path.isdir(folder):
            raise UsageError(
                f"--scheduler {scheduler}: no such scheduler file (the folder "
                f"{folder} does not exist)"
            )
    while True:
        waited = time.monotonic() - started
        if stop.is_set():
            raise StoppedStarting(what)
        if waited >= timeout:
            raise UsageError(
                f"--scheduler {scheduler}: no Dask scheduler answered within "
                f"{timeout:g} s (--scheduler-timeout)"
            )
        if not said and waited >= SAY_WAITING_AFTER:
            said = True
            say(f"waiting for {what} (Ctrl-C to stop)")
        step = max(0.1, min(SAY_WAITING_AFTER, timeout - waited))
        address = scheduler
        if _is_file(scheduler):
            try:
                with open(scheduler, encoding="utf-8") as f:
                    address = json.load(f)["address"]
            except FileNotFoundError:
                stop.wait(0.1)
                continue
            except (OSError, ValueError, KeyError, TypeError) as e:
                if time.monotonic() - started < SAY_WAITING_AFTER:
                    stop.wait(0.1)  # being written by the scheduler just now
                    continue
                raise UsageError(
                    f"--scheduler {scheduler}: not a Dask scheduler file: {type(e).__name__}: {e}"
                ) from None
        try:
            _handshake(address, step)
        except (OSError, TimeoutError):
            stop.wait(0.05)
            continue
        return Client(address, timeout=f"{max(step, timeout - waited)}s")


def _handshake(address: str, timeout: float) -> None:
    """Connect to a scheduler and shake hands, within ``timeout`` s; Dask's client alone
    waits for ever on an address that accepts connections and never answers.

    Raises:
        OSError, TimeoutError: no scheduler answered.
    """
    import asyncio

    from distributed.comm import connect

    async def shake() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout + 0.5)
        await comm.close()

    asyncio.run(shake())


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _local_cluster(workers: int, forkserver: bool) -> Any:
    """A ``LocalCluster`` of ``workers`` processes, one thread each, on loopback.

    ``forkserver``: the workers are forked from the forkserver ``start_local_forkserver``
    started (otherwise Dask's default, a fresh interpreter each).
    """
    import dask
    from distributed import LocalCluster

    # Two Dask worker defaults slow a recording task down (bench/bench_cluster.py):
    # MALLOC_TRIM_THRESHOLD_ turns off glibc's adaptive mmap threshold, so every large
    # numpy temporary is fresh, page-faulted memory (tasks 25-45% slower); and the
    # statistical profiler takes the GIL from the task every 10 ms. A value of None unsets
    # the variable for the worker processes.
    config: dict[str, Any] = {
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
        "distributed.worker.profile.enabled": False,
    }
    if forkserver:
        config["distributed.worker.multiprocessing-method"] = "forkserver"
    with dask.config.set(config):
        # silence_logs: Dask's own warnings (slow shutdowns of busy workers) would mix
        # with crunchctl's lines; errors still show.
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=_dashboard_address(),
            preload=["crunchctl.run.dask"],
            silence_logs=logging.ERROR,
        )


def start_local_forkserver() -> bool:
    """Start the forkserver the local cluster's workers are forked from; False if none.

    Does nothing when Dask is not installed (``DaskExecutor`` then says what to install)
    or the forkserver already runs.

    Dask's default starts each worker as a fresh interpreter that imports Dask and the
    numerics itself, after the scheduler and its dashboard are up, and then takes a second
    to stop. A forkserver started first imports all of it on another core while this
    process imports Dask and starts the scheduler; each worker is then a fork that is
    ready at once and stops at once (docs/ARCHITECTURE.md, "Where tasks run"). It starts with
    the stop signals ignored, as the built-in pool's does, so a Ctrl-C during the start
    reaches only crunchctl.
    """
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods() or not _installed("distributed"):
        return False
    from multiprocessing import forkserver

    from crunchctl.run.local import ignoring_stop_signals

    mp.get_context("forkserver").set_forkserver_preload(
        ["distributed", "distributed.nanny", "crunchctl.run.dask", *WORKER_PRELOAD]
    )
    ignoring_stop_signals(forkserver.ensure_running)
    return True


def _dashboard_address() -> str:
    """Dask's usual dashboard port when free, else any free port (Dask would warn)."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8787))
        except OSError:
            return "127.0.0.1:0"
    return "127.0.0.1:8787"
