"""The executor seam: what the engine and ``watch`` need from whatever runs tasks, and the
one factory that chooses it (the local process pool, one task in this process, or Dask).

Every command gets its executor from :func:`make_executor`; nothing else constructs one.
See docs/ARCHITECTURE.md, "Rules every command follows".
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from crunchctl.outcome import Outcome

if TYPE_CHECKING:
    from crunchctl.config import Settings

#: Everything a recording task imports: worker processes import it as they start, so no
#: task pays for it (the local pool's forkserver preloads it; Dask's local workers too).
WORKER_PRELOAD = (
    "crunchctl.quicklook.task",
    "crunchctl.quicklook.render",
    "numpy",
    "scipy.fft",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
)


class Task(Protocol):
    """What an executor runs: small, picklable, with an identity and a failure outcome."""

    @property
    def item(self) -> str: ...

    def failure(self, message: str, started: float) -> Outcome: ...


class Cancelled(KeyboardInterrupt):
    """Raised by the signal handler into a task running in this process (a second Ctrl-C);
    the inline executor turns it into that task's cancellation, as a pool kills a worker."""


class StoppedStarting(Exception):  # noqa: N818 - a state, not a failure
    """A stop signal arrived while an executor was starting (waiting for a scheduler)."""


#: A top-level (picklable by reference) function turning one task into its outcome.
TaskFn = Callable[[Any], Outcome]


class Executor(Protocol):
    """Runs tasks somewhere and hands back their outcomes; never raises for a task.

    A task that raises or whose worker dies comes back as ``task.failure(...)`` (an
    ``error`` outcome); the executor goes on with fresh workers.
    """

    @property
    def idle(self) -> int:
        """Tasks that can be submitted now without queueing."""

    @property
    def busy(self) -> int:
        """Tasks submitted and not yet collected or cancelled."""

    def running(self) -> list[Any]:
        """The tasks submitted and not yet collected."""

    def submit(self, task: Any) -> None:
        """Start a task; only call while ``idle`` > 0."""

    def collect(self, timeout: float | None) -> list[tuple[Any, Outcome]]:
        """Wait up to ``timeout`` s for finished tasks; return (task, outcome) pairs."""

    def cancel(self) -> list[Any]:
        """Stop every running task at once; return those tasks (they have no outcome)."""

    def close(self) -> None:
        """Release workers; running tasks are abandoned."""


def run_inline(task: Any, fn: TaskFn) -> Outcome:
    """Run one task in this process, with the same error wrapping as a worker."""
    started = time.time()
    try:
        return fn(task)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - one task's bug is that task's error
        outcome = task.failure(f"{task.item}: internal error: {type(e).__name__}: {e}", started)
        outcome.extra["traceback"] = traceback.format_exc()
        return outcome


class InlineExecutor:
    """One task at a time in this process (a lone recording: no worker start-up cost).

    ``collect`` runs the submitted task; it cannot be cancelled from outside, so the
    signal handler cancels it by raising :class:`Cancelled` into it.
    """

    def __init__(self, fn: TaskFn) -> None:
        self.fn = fn
        self._task: Any = None

    @property
    def idle(self) -> int:
        return 0 if self._task is not None else 1

    @property
    def busy(self) -> int:
        return 1 - self.idle

    def running(self) -> list[Any]:
        return [] if self._task is None else [self._task]

    def submit(self, task: Any) -> None:
        if self._task is not None:
            raise RuntimeError("the inline executor runs one task at a time")
        self._task = task

    def collect(self, timeout: float | None) -> list[tuple[Any, Outcome]]:
        task = self._task
        if task is None:
            return []
        try:
            outcome = run_inline(task, self.fn)
        except Cancelled:
            return []  # still running as far as the engine knows: its cancel() takes it
        self._task = None
        return [(task, outcome)]

    def cancel(self) -> list[Any]:
        task, self._task = self._task, None
        return [] if task is None else [task]

    def close(self) -> None:
        self._task = None


def warm_up(settings: Settings) -> None:
    """Start now what the run's executor can start before the run is planned.

    ``--scheduler local`` forks its workers from a forkserver that imports Dask and the
    numerics for a few seconds; started here, that runs on another core while this process
    opens the ledger and plans (docs/ARCHITECTURE.md, "Where tasks run").
    """
    if settings.scheduler == "local":
        from crunchctl.run.dask import start_local_forkserver

        start_local_forkserver()


def make_executor(
    fn: TaskFn,
    settings: Settings | None = None,
    *,
    workers: int | None = None,
    inline: bool = False,
    announce: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> Executor:
    """The executor of a run: the single place that chooses where tasks run.

    Args:
        fn: the task function (top level, picklable by reference).
        settings: resolved settings; ``settings.scheduler`` set sends tasks to Dask
            (``crunchctl.run.dask.DaskExecutor(fn, settings, workers=...)``).
        workers: tasks at once [default: ``settings.workers``, else 1].
        inline: a lone task that may run in this process (ignored with a scheduler).
        announce: shows the user a line about the executor (the Dask dashboard link, or
            that it waits for the scheduler).
        stop: set by a stop signal; ends a wait for a Dask scheduler.

    Raises:
        ConfigError: a scheduler is configured but the Dask executor cannot be used.
        StoppedStarting: ``stop`` was set while waiting for the scheduler.
    """
    if workers is None:
        workers = settings.workers if settings is not None and settings.workers else 1
    if settings is not None and settings.scheduler:
        try:
            from crunchctl.run.dask import DaskExecutor
        except ImportError as e:
            from crunchctl.errors import ConfigError

            raise ConfigError(
                f"scheduler {settings.scheduler!r}: the Dask executor cannot be loaded ({e})"
            ) from None
        return DaskExecutor(fn, settings, workers=workers, announce=announce, stop=stop)
    if inline:
        return InlineExecutor(fn)
    from crunchctl.run.local import LocalPool

    return LocalPool(fn, workers)
