"""The run engine: feeds tasks to an executor under the stop/cancel flags, counts outcomes.

Every command that processes items goes through :class:`Dispatcher` (``run_tasks`` drives
it over a list; ``watch`` feeds it as recordings become ready). The engine knows nothing of
recordings or figures and never touches the ledger: the caller records outcomes. Where
tasks run is chosen by ``executor.make_executor``; signal and exit-code rules are in
docs/ARCHITECTURE.md, "Rules every command follows".
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crunchctl.errors import RunAborted
from crunchctl.outcome import ERROR, NO_DATA, OK, Outcome
from crunchctl.run.executor import Executor, StoppedStarting, TaskFn, make_executor

if TYPE_CHECKING:
    from crunchctl.config import Settings

log = logging.getLogger("crunchctl.engine")


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
        #: How many items run now, for what a stop signal says; set by whoever runs them.
        self.in_progress: Callable[[], int] = lambda: 0

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
    #: Items whose latest outcome in this run is an error (a watch retries some).
    failed_items: set[str] = field(default_factory=set)
    #: ``ok`` items with a warning (a web copy's is added when it fails: ``RecordingRun``).
    warned: int = 0

    def add(self, outcome: Outcome) -> None:
        """Count one outcome. Counts are of items, not attempts: an item that failed
        earlier in this run and is tried again (a watch's retry) is no longer a failure."""
        if outcome.item in self.failed_items:
            self.error -= 1
        if outcome.status == OK:
            self.ok += 1
            self.warned += bool(outcome.warning)
        elif outcome.status == NO_DATA:
            self.no_data += 1
        else:
            self.error += 1
        if outcome.status == ERROR:
            self.failed_items.add(outcome.item)
        else:
            self.failed_items.discard(outcome.item)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def failed(self) -> bool:
        """Some item's latest outcome is an error."""
        return bool(self.failed_items)


# ------------------------------------------------------------------------------ signals


class signals_to_flags:  # noqa: N801 - used as a context manager, reads like a function
    """Route SIGINT/SIGTERM to ``StopFlags`` for the duration of a run (main thread only).

    First SIGINT or SIGTERM: stop taking work, let in-flight items finish. Second SIGINT:
    cancel in-flight items.
    """

    def __init__(self, flags: StopFlags, on_signal: Callable[[int], None] | None = None) -> None:
        self.flags = flags
        self.on_signal = on_signal
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: object) -> None:
        self.flags.request(signum)
        if self.on_signal is not None:
            self.on_signal(signum)

    def __enter__(self) -> StopFlags:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self.flags

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def exit_code(summary: RunSummary, *, service: bool = False) -> int:
    """The exit code of a run that ended (docs/ARCHITECTURE.md, "Errors and exit codes").

    130 after Ctrl-C. Otherwise a run over a list of work (``process``, ``batch``,
    ``watch --once``) is 1 when an item's latest outcome in this run failed, else 0; a
    ``service`` (a watch running until stopped) is 0: its failed recordings are ``error``
    rows and a line in the summary, not a failed service. SIGTERM (systemd stop, kill) is
    a clean stop like the end of the work list. A run that itself went wrong (ledger
    unwritable, outcomes lost) does not get here: its error is exit 2.
    """
    if summary.interrupted_by == signal.SIGINT:
        return 130
    if service:
        return 0
    return 1 if summary.failed else 0


# ---------------------------------------------------------------------------------- run


class Dispatcher:
    """Submits tasks to an executor and finishes their outcomes, under the stop/cancel flags.

    Args:
        executor: where tasks run (from ``make_executor``).
        on_outcome: called in this process for each (task, outcome), in completion order,
            after the outcome is counted in ``summary`` (record it, publish it).
        flags: stop = take no new work; cancel = kill in-flight work.
        summary: counts of this run.
        on_cancel: called for each task killed by a cancel (it has no outcome).
    """

    def __init__(
        self,
        executor: Executor,
        on_outcome: Callable[[Any, Outcome], None],
        *,
        flags: StopFlags,
        summary: RunSummary,
        on_cancel: Callable[[Any], None] | None = None,
    ) -> None:
        self.executor = executor
        self.on_outcome = on_outcome
        self.on_cancel = on_cancel
        self.flags = flags
        self.summary = summary

    @property
    def accepting(self) -> bool:
        """A task can be submitted now: not stopping, and the executor has room."""
        return not self.flags.stop.is_set() and self.executor.idle > 0

    @property
    def busy(self) -> int:
        return self.executor.busy

    def submit(self, task: Any) -> None:
        self.executor.submit(task)

    def collect(self, timeout: float | None) -> int:
        """Cancel in-flight work if asked, wait up to ``timeout`` s for outcomes, finish them.

        Returns:
            How many outcomes were finished.
        """
        if self.flags.cancel.is_set():
            for task in self.executor.cancel():
                self.summary.not_started += 1
                log.warning("%s: cancelled", task.item)
                if self.on_cancel is not None:
                    self.on_cancel(task)
        if not self.executor.busy:
            return 0
        done = self.executor.collect(timeout)
        for task, outcome in done:
            tb = outcome.extra.pop("traceback", None)
            if tb:
                log.error("%s\n%s", outcome.error, tb.rstrip())
            self.summary.add(outcome)
            self.on_outcome(task, outcome)
        return len(done)

    def close(self) -> None:
        self.executor.close()
        self.summary.finished = time.time()
        if self.flags.stop.is_set():
            self.summary.interrupted_by = self.flags.signal or signal.SIGINT


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
    settings: Settings | None = None,
    summary: RunSummary | None = None,
) -> RunSummary:
    """Run ``fn`` over ``tasks`` and hand every outcome to ``on_outcome``, in completion order.

    Args:
        tasks: the work list (consumed lazily).
        fn: top-level task function (picklable by reference).
        workers: tasks at once.
        on_outcome: called in this process for each outcome (record it, publish it).
        reporter: progress callbacks.
        flags: stop/cancel flags (set by signal handlers or another thread).
        total: number of tasks, for the progress bar, if known.
        inline: a lone task that may run in this process (no worker processes).
        settings: passed to ``make_executor`` (a configured scheduler runs tasks on Dask).
        summary: counts to add to (a new summary if None).

    Returns:
        The run's summary; ``interrupted_by`` is set when the flags stopped it early.
    """
    reporter = reporter or Reporter()
    flags = flags or StopFlags()
    summary = summary if summary is not None else RunSummary()
    reporter.start(total)

    def finish(task: Any, outcome: Outcome) -> None:
        on_outcome(outcome)
        reporter.item_done(outcome)

    it = iter(tasks)
    exhausted = False
    dispatcher: Dispatcher | None = None
    try:
        try:
            executor = make_executor(
                fn,
                settings,
                workers=workers,
                inline=inline,
                announce=reporter.message,
                stop=flags.stop,
            )
        except StoppedStarting:
            # Stopped while waiting for the executor (a Dask scheduler that did not
            # answer yet): nothing ran, nothing is lost.
            summary.not_started += sum(1 for _ in it)
            summary.interrupted_by = flags.signal or signal.SIGINT
            return summary
        dispatcher = Dispatcher(executor, finish, flags=flags, summary=summary)
        flags.in_progress = lambda: dispatcher.busy if dispatcher is not None else 0
        while True:
            while not exhausted and dispatcher.accepting:
                task = next(it, None)
                if task is None:
                    exhausted = True
                    break
                dispatcher.submit(task)
                reporter.item_started(task)
            if dispatcher.busy == 0 and (exhausted or flags.stop.is_set()):
                break
            dispatcher.collect(timeout=0.25)
        if not exhausted:
            summary.not_started += sum(1 for _ in it)
    except RunAborted as e:
        summary.not_started += e.in_progress + (0 if exhausted else sum(1 for _ in it))
        raise e.with_counts(
            summary.ok + summary.no_data, summary.error, summary.not_started
        ) from None
    finally:
        if dispatcher is not None:
            dispatcher.close()
        else:
            summary.finished = time.time()
        reporter.close()
    return summary
