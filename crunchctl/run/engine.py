"""The run engine: a work queue, worker processes, outcomes, progress and signals.

Every command that processes items goes through here. The engine knows nothing of
recordings or figures: it runs a picklable task function on picklable tasks, each task
having ``item`` and ``failure(message, started)``, and reports ``Outcome`` records through
callbacks. It never touches the ledger; the caller records outcomes.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from crunchctl.run.outcome import NO_DATA, OK, Outcome

log = logging.getLogger("crunchctl.engine")


class Task(Protocol):
    item: str

    def failure(self, message: str, started: float) -> Outcome: ...


TaskFn = Callable[[Any], Outcome]


class Reporter:
    """Progress callbacks; the CLI plugs in rich bars, tests and libraries use this no-op."""

    def start(self, total: int | None) -> None: ...
    def item_started(self, task: Any) -> None: ...
    def item_done(self, outcome: Outcome) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


class StopFlags:
    """Set by signal handlers: ``stop`` = take no new work; ``cancel`` = kill in-flight work."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.cancel = threading.Event()
        self.signal: int | None = None

    def request(self, signum: int) -> None:
        if self.stop.is_set() and signum == signal.SIGINT:
            self.cancel.set()
        self.signal = self.signal or signum
        self.stop.set()


@dataclass
class RunSummary:
    """Counts and timing of one run."""

    ok: int = 0
    error: int = 0
    no_data: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    interrupted_by: int | None = None
    not_started: int = 0

    def add(self, outcome: Outcome) -> None:
        if outcome.status == OK:
            self.ok += 1
        elif outcome.status == NO_DATA:
            self.no_data += 1
        else:
            self.error += 1

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def failed(self) -> bool:
        return self.error > 0


# ----------------------------------------------------------------------------- workers


def _worker_main(conn: Connection, fn: TaskFn) -> None:
    # Workers leave signals to the main process: it decides whether in-flight work finishes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        started = time.time()
        try:
            outcome = fn(task)
        except BaseException as e:  # noqa: BLE001 - a task must never take its worker down
            tb = traceback.format_exc()
            outcome = task.failure(f"{task.item}: internal error: {type(e).__name__}: {e}",
                                   started)
            outcome.extra["traceback"] = tb
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return


def _context() -> mp.context.BaseContext:
    # Fork is unsafe once threads run (observer, live display); forkserver forks workers
    # from a clean server that has already imported the numerics.
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # Everything a recording task imports, so no worker pays it after the fork.
        ctx.set_forkserver_preload(["crunchctl.quicklook.task", "crunchctl.quicklook.render", "numpy",
                                    "scipy.fft", "matplotlib.figure",
                                    "matplotlib.backends.backend_agg"])
        return ctx
    return mp.get_context("spawn")


class _Worker:
    def __init__(self, ctx: mp.context.BaseContext, fn: TaskFn) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, fn), daemon=True)
        self.proc.start()
        child.close()
        self.task: Any = None
        self.started = 0.0


class WorkerPool:
    """A fixed number of worker processes, one task each at a time.

    Unlike ``ProcessPoolExecutor``, a worker that dies takes only its own task with it: that
    task becomes an ``error`` outcome saying the worker died, and a fresh worker replaces it.
    """

    def __init__(self, fn: TaskFn, workers: int) -> None:
        self.fn = fn
        self.size = max(1, workers)
        self._ctx = _context()
        self._workers = [_Worker(self._ctx, fn) for _ in range(self.size)]

    @property
    def idle(self) -> int:
        return sum(1 for w in self._workers if w.task is None)

    @property
    def busy(self) -> int:
        return self.size - self.idle

    def running(self) -> list[Any]:
        return [w.task for w in self._workers if w.task is not None]

    def submit(self, task: Any) -> None:
        for w in self._workers:
            if w.task is None:
                w.task, w.started = task, time.time()
                try:
                    w.conn.send(task)
                except (BrokenPipeError, OSError):
                    pass  # the death is noticed by collect()
                return
        raise RuntimeError("no idle worker")

    def collect(self, timeout: float | None) -> list[tuple[Any, Outcome]]:
        """Wait up to ``timeout`` s for finished tasks; return (task, outcome) pairs."""
        busy = [w for w in self._workers if w.task is not None]
        if not busy:
            return []
        handles: list[Any] = [w.conn for w in busy] + [w.proc.sentinel for w in busy]
        ready = wait(handles, timeout)
        results: list[tuple[Any, Outcome]] = []
        for i, w in enumerate(list(self._workers)):
            if w.task is None:
                continue
            if w.conn in ready:
                try:
                    outcome = w.conn.recv()
                except (EOFError, OSError):
                    outcome = None
                if outcome is not None:
                    results.append((w.task, outcome))
                    w.task = None
                    continue
            if w.proc.sentinel in ready or not w.proc.is_alive():
                w.proc.join(timeout=1)
                code = w.proc.exitcode
                how = (f"killed by signal {signal.Signals(-code).name}" if code and code < 0
                       else f"exit code {code}")
                results.append((w.task, w.task.failure(
                    f"{w.task.item}: worker process died while processing it ({how})",
                    w.started)))
                w.conn.close()
                self._workers[i] = _Worker(self._ctx, self.fn)
        return results

    def cancel(self) -> list[Any]:
        """Kill workers that are busy; return their tasks (not finished)."""
        cancelled = []
        for i, w in enumerate(self._workers):
            if w.task is not None:
                cancelled.append(w.task)
                w.proc.kill()
                w.proc.join(timeout=5)
                w.conn.close()
                w.task = None
                self._workers[i] = _Worker(self._ctx, self.fn)
        return cancelled

    def close(self) -> None:
        for w in self._workers:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        deadline = time.time() + 5
        for w in self._workers:
            w.proc.join(timeout=max(0.1, deadline - time.time()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=1)
            w.conn.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------ signals


class signals_to_flags:  # noqa: N801 - used as a context manager, reads like a function
    """Route SIGINT/SIGTERM to ``StopFlags`` for the duration of a run (main thread only).

    First SIGINT or SIGTERM: stop taking work, let in-flight items finish. Second SIGINT:
    cancel in-flight items.
    """

    def __init__(self, flags: StopFlags, on_signal: Callable[[int], None] | None = None,
                 *, raise_on_cancel: bool = False) -> None:
        self.flags = flags
        self.on_signal = on_signal
        self.raise_on_cancel = raise_on_cancel
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: object) -> None:
        self.flags.request(signum)
        if self.on_signal is not None:
            self.on_signal(signum)
        if self.raise_on_cancel and self.flags.cancel.is_set():
            # Work running in this very process can only be cancelled by an exception.
            raise KeyboardInterrupt

    def __enter__(self) -> StopFlags:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self.flags

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ---------------------------------------------------------------------------------- run


def run_inline(task: Any, fn: TaskFn) -> Outcome:
    """Run one task in this process, with the same error wrapping as a worker."""
    started = time.time()
    try:
        return fn(task)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001
        outcome = task.failure(f"{task.item}: internal error: {type(e).__name__}: {e}", started)
        outcome.extra["traceback"] = traceback.format_exc()
        return outcome


def run_tasks(
    tasks: Iterable[Any],
    fn: TaskFn,
    *,
    workers: int,
    on_outcome: Callable[[Outcome], None],
    reporter: Reporter | None = None,
    flags: StopFlags | None = None,
    total: int | None = None,
    inline: bool = False,
) -> RunSummary:
    """Run ``fn`` over ``tasks`` and hand every outcome to ``on_outcome``, in completion order.

    Args:
        tasks: the work list (consumed lazily).
        fn: top-level task function (picklable by reference).
        workers: worker processes.
        on_outcome: called in this process for each outcome (record it, publish it).
        reporter: progress callbacks.
        flags: stop/cancel flags (set by signal handlers or another thread).
        total: number of tasks, for the progress bar, if known.
        inline: run in this process, one task after another (no worker processes).

    Returns:
        The run's summary; ``interrupted_by`` is set when the flags stopped it early.
    """
    reporter = reporter or Reporter()
    flags = flags or StopFlags()
    summary = RunSummary()
    reporter.start(total)
    it = iter(tasks)

    def finish(task: Any, outcome: Outcome) -> None:
        tb = outcome.extra.pop("traceback", None)
        if tb:
            log.error("%s\n%s", outcome.error, tb.rstrip())
        summary.add(outcome)
        on_outcome(outcome)
        reporter.item_done(outcome)

    try:
        if inline:
            for task in it:
                if flags.stop.is_set():
                    summary.not_started += 1 + sum(1 for _ in it)
                    break
                reporter.item_started(task)
                finish(task, run_inline(task, fn))
        else:
            with WorkerPool(fn, workers) as pool:
                exhausted = False
                while True:
                    if flags.cancel.is_set():
                        for task in pool.cancel():
                            summary.not_started += 1
                            log.warning("%s: cancelled", task.item)
                    if not flags.stop.is_set():
                        while not exhausted and pool.idle:
                            try:
                                task = next(it)
                            except StopIteration:
                                exhausted = True
                                break
                            pool.submit(task)
                            reporter.item_started(task)
                    if pool.busy == 0 and (exhausted or flags.stop.is_set()):
                        break
                    for task, outcome in pool.collect(timeout=0.25):
                        finish(task, outcome)
                if flags.stop.is_set() and not exhausted:
                    summary.not_started += sum(1 for _ in it)
    finally:
        summary.finished = time.time()
        if flags.stop.is_set():
            summary.interrupted_by = flags.signal or signal.SIGINT
        reporter.close()
    return summary


def default_workers() -> int:
    return os.cpu_count() or 1
