"""The local executor: a fixed pool of forkserver worker processes on this machine.

The default executor (see ``run/executor.py``): a worker that dies takes only its own task
with it, and a fresh worker replaces it.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from crunchctl.outcome import Outcome
from crunchctl.run.executor import WORKER_PRELOAD, TaskFn


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
            outcome = task.failure(f"{task.item}: internal error: {type(e).__name__}: {e}", started)
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
        ctx.set_forkserver_preload(list(WORKER_PRELOAD))
        from multiprocessing import forkserver

        ignoring_stop_signals(forkserver.ensure_running)
        return ctx
    return mp.get_context("spawn")


def ignoring_stop_signals(start: Callable[[], None]) -> None:
    """Run ``start`` (which starts a process) with SIGINT and SIGTERM ignored.

    A Ctrl-C reaches the whole process group. A process that is still importing (the
    forkserver preloads numpy and matplotlib for seconds) would die of it, and the workers
    it forks with it. Ignored signals stay ignored across fork and exec, so the forkserver
    and every worker forked from it start immune; the main process decides what stops.
    """
    if threading.current_thread() is not threading.main_thread():
        start()
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        start()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


class _Worker:
    def __init__(self, ctx: mp.context.BaseContext, fn: TaskFn) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, fn), daemon=True)
        if ctx.get_start_method() == "forkserver":
            self.proc.start()  # forked by a forkserver that ignores the stop signals
        else:
            ignoring_stop_signals(self.proc.start)
        child.close()
        self.task: Any = None
        self.started = 0.0


class LocalPool:
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
                how = (
                    f"killed by signal {signal.Signals(-code).name}"
                    if code and code < 0
                    else f"exit code {code}"
                )
                results.append(
                    (
                        w.task,
                        w.task.failure(
                            f"{w.task.item}: worker process died while processing it ({how})",
                            w.started,
                        ),
                    )
                )
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

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
