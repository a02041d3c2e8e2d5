"""One ``crunchctl watch`` session: backlog, then live events, fed to the shared recordings
path (``recordings/run.py``) through the engine's dispatcher, until stopped.

The loop joins the parts: the observer (``observer.py``) and scans put paths on the
:class:`~crunchctl.watch.queue.RecordingQueue`, ready recordings go to the executor,
outcomes are recorded and published by a ``RecordingRun``, and the watch's record
(``record.py``) tells ``status`` what is watched. Outcomes reach the ledger within
``recordings.FLUSH_INTERVAL`` seconds; web copies are made as each recording finishes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from crunchctl.config import Settings
from crunchctl.errors import ConfigError, LedgerError
from crunchctl.outcome import ERROR, Outcome
from crunchctl.recordings.run import Page, RecordingRun, prepare_output
from crunchctl.run import engine, memory
from crunchctl.watch.alerts import Alerts
from crunchctl.watch.lock import WatchLock
from crunchctl.watch.options import WatchOptions, check_options
from crunchctl.watch.queue import RecordingQueue
from crunchctl.watch.record import WatchRecord
from crunchctl.watch.report import QuietAlarm, WatchReporter, WatchResult, WatchSnapshot
from crunchctl.watch.scan import ResetFollower, iter_recordings, oldest_first
from crunchctl.words import count

if TYPE_CHECKING:
    from crunchctl.ledger.store import Ledger

log = logging.getLogger("crunchctl.watch")

#: Seconds between liveness checks of the observer.
CHECK_INTERVAL = 1.0
#: Full rescans as a safety net against lost events (inotify queue overflow), s.
RESCAN_INTERVAL = 300.0
#: Seconds between looks for recordings ``crunchctl reset`` made due (watch/scan.py).
RESET_INTERVAL = 30.0
#: Seconds between the attempts to read a ledger that failed to read, before a watch stops.
LEDGER_RETRY_DELAYS = (1.0, 3.0)
#: Seconds between panel updates.
UPDATE_INTERVAL = 0.25
#: Window of the rate shown in the panel, s.
RATE_WINDOW = 300.0


class Watch:
    """One watch session: call :meth:`run` once.

    Args:
        options: folder, patterns, settle, poll, once.
        settings: resolved settings (output, www, workers, numerics).
        ledger: where outcomes go and done-state comes from.
        reporter: panel or log lines.
        flags: stop/cancel flags (signal handlers set them).
        page: the control-room page of the web folder, or None.
    """

    def __init__(
        self,
        options: WatchOptions,
        settings: Settings,
        ledger: Ledger,
        reporter: WatchReporter | None = None,
        flags: engine.StopFlags | None = None,
        page: Page | None = None,
    ) -> None:
        self.options = options
        self.settings = settings
        self.ledger = ledger
        self.reporter = reporter or WatchReporter()
        self.flags = flags or engine.StopFlags()
        self.flags.in_progress = lambda: len(self.queue.inflight)
        self.run_ = RecordingRun(
            settings, ledger, source=options.source, keep_outcomes=False, page=page
        )
        self.summary = self.run_.summary
        self.events: queue.Queue = queue.Queue()
        self.watcher: Any = None
        self.dispatcher: engine.Dispatcher | None = None
        # Never take our own products for recordings (a --pattern '*' with the output
        # folder inside the watched one would loop).
        self.excluded = tuple(
            os.path.join(os.path.abspath(d), "")
            for d in (str(settings.output_dir()), settings.www_path, str(ledger.path))
            if d
        )
        self.queue = RecordingQueue(
            options, settings, wanted=self._wanted, on_waiting=self.reporter.waiting
        )
        self.record = WatchRecord(ledger.path, options.folder, options.patterns, options.recursive)
        self.failed: set[str] = set()  # failed this session
        self.retry_at: dict[str, float] = {}  # output-side failures, when to retry
        self._finished: deque[float] = deque()
        self._last: Outcome | None = None
        self._last_published: list[str] = []
        self._published = 0
        self._outcomes = 0
        self._last_event: float | None = None
        self._recorded = False
        self._resets: ResetFollower | None = None
        self._changed: set[str] = set()  # processed before this version (docs/ARCHITECTURE.md)
        self._stop_error: str | None = None
        self.alerts = Alerts(settings.on_alert, options.folder, settings.alert_timeout)
        self.quiet = QuietAlarm(settings.quiet_after, options.folder, notify=self.alerts.send)

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> WatchSnapshot:
        now = time.time()
        while self._finished and self._finished[0] < now - RATE_WINDOW:
            self._finished.popleft()
        window = min(RATE_WINDOW, max(60.0, now - self.summary.started))
        return WatchSnapshot(
            folder=self.options.folder,
            observer="one scan, --once"
            if self.options.once
            else (self.watcher.kind if self.watcher else ""),
            started=self.summary.started,
            queued=self.queue.queued(),
            in_progress=list(self.queue.inflight),
            done=self.summary.ok,
            failed=self.summary.error,
            no_data=self.summary.no_data,
            skipped=self.summary.skipped,
            rate_per_min=len(self._finished) * 60.0 / window,
            last=self._last,
            last_published=list(self._last_published),
            pending=self.queue.pending(),
            restarts=self.watcher.restarts if self.watcher else 0,
            stopping=self.flags.stop.is_set(),
            quiet_since=self.quiet.since,
        )

    # ------------------------------------------------------------------ scanning

    def _wanted(self, path: str) -> bool:
        return path.startswith(self.options.folder + os.sep) and not path.startswith(self.excluded)

    def rescan(self, *, retry_failed: bool = False) -> None:
        """Scan the folder; what the ledger says is done is remembered, the rest evaluated.

        A rescan of a folder the events kept up with finds nothing new: it keeps no list of
        the folder's files and does not read the ledger. The ledger is asked about the files
        no event announced (the backlog at the start, or events lost); files an event did
        announce are evaluated as new, as they would be a moment later anyway
        (docs/ARCHITECTURE.md, flat memory).

        Args:
            retry_failed: forget this session's failures first, so they are tried again
                (after an outage, a failure may only have been the folder going away).
        """
        q = self.queue
        if retry_failed:
            for p in self.failed:
                q.attempted.pop(p, None)
            self.failed.clear()
        changed = oldest_first(
            (p, size, mtime)
            for p, size, mtime in iter_recordings(
                self.options.folder,
                self.options.patterns,
                self.options.recursive,
                self.settings.format,
            )
            if p not in q.inflight and q.attempted.get(p) != (size, mtime) and self._wanted(p)
        )
        unknown = [p for p, _, _ in changed if not q.known(p) and p not in q.dirty]
        if unknown:
            due = set(self._plan(unknown))
            asked = set(unknown)  # a list here made a 50,000-file start take minutes
            for p, size, mtime in changed:
                if p in asked and p not in due:
                    q.attempted[p] = (size, mtime)
        for p, size, mtime in changed:
            if q.attempted.get(p) != (size, mtime):
                q.mark(p)

    def _plan(self, paths: list[str]) -> list[str]:
        """The due ones of ``paths``; a ledger that cannot be read is asked again a few
        times, then the watch stops: a failed read is never taken for "nothing is done",
        which would process the whole folder again (docs/ledger.md).

        Raises:
            LedgerError: the ledger could not be read (or the watch was stopped meanwhile).
        """
        for delay in (*LEDGER_RETRY_DELAYS, None):
            try:
                return self.run_.plan(paths)
            except LedgerError as e:
                if delay is None:
                    raise
                log.warning("%s; trying again in %g s", e, delay)
                if self.flags.stop.wait(delay):
                    raise
        raise AssertionError("unreachable")

    def _pick_up_resets(self) -> None:
        if self._resets is None:
            self._resets = ResetFollower(self.ledger, self.options.folder, self.options.recursive)
        try:
            again = self.queue.pick_up_resets(self._resets, self.ledger)
        except LedgerError as e:
            log.warning("looking for reset recordings: %s", e)
            return
        if again:
            log.info(
                "%s reset in the ledger; processing %s again",
                count(len(again), "recording was", "recordings were"),
                "it" if len(again) == 1 else "them",
                extra={"console": True},
            )

    def _drain_events(self, timeout: float) -> None:
        from crunchctl.watch.observer import DIR

        try:
            kind, path = (
                self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()
            )
        except queue.Empty:
            return
        self._last_event = time.time()
        while True:
            if not self._wanted(path):
                pass
            elif kind == DIR:
                self.queue.scan_dir(path)
            else:
                if not self.queue.known(path) and path not in self.queue.dirty:
                    self.quiet.arrived(path, self._last_event)
                self.queue.mark(path)
            try:
                kind, path = self.events.get_nowait()
            except queue.Empty:
                return

    # ------------------------------------------------------------------ work

    def _dispatcher(self) -> engine.Dispatcher | None:
        """The dispatcher, started on first use; None if a stop came while it started."""
        if self.dispatcher is None:
            from crunchctl.quicklook.task import process_recording
            from crunchctl.run.executor import StoppedStarting, make_executor

            try:
                executor = make_executor(
                    process_recording,
                    self.settings,
                    announce=self.reporter.message,
                    stop=self.flags.stop,
                )
            except StoppedStarting:
                return None  # stopped while waiting for a Dask scheduler: nothing ran
            self.dispatcher = engine.Dispatcher(
                executor,
                self._finish,
                flags=self.flags,
                summary=self.summary,
                on_cancel=self._cancelled,
            )
        return self.dispatcher

    def _submit(self) -> None:
        if not self.queue.ready or self.flags.stop.is_set():
            return
        d = self._dispatcher()
        if d is None:
            return
        while self.queue.ready and d.accepting:
            taken = self.queue.take_ready()
            if taken is None:
                return
            path, version = taken
            # A lone recording gets every core for its FFT (latency).
            alone = d.busy == 0 and not self.queue.ready
            (task,) = self.run_.tasks([path], fft_workers=(os.cpu_count() or 1) if alone else 1)
            before = self.queue.attempted.get(path)
            if before is not None and before != version:
                self._changed.add(path)
            if path in self.queue.incomplete:
                task = dataclasses.replace(task, partial=True)
            d.submit(task)
            self.queue.started(path, version)

    def _finish(self, task: Any, outcome: Outcome) -> None:
        if outcome.item in self._changed:
            self._changed.discard(outcome.item)
            outcome.extra["note"] = "changed, processed again"
        published = self.run_.finish(outcome)
        self._outcomes += 1
        self._finished.append(time.time())
        self._last = outcome
        if published:
            self._last_published = published
            self._published += len(published)
        path = outcome.item
        read = None
        if outcome.size is not None and outcome.mtime_ns is not None:
            read = (outcome.size, outcome.mtime_ns)  # the version the worker actually read
        if outcome.status == ERROR:
            self.failed.add(path)
            if outcome.extra.get("retry") and not self.options.once:  # --once: no later
                # Output folder gone or disk full: the recording may be fine; try again.
                delay = self.options.retry_after
                self.retry_at[path] = time.monotonic() + delay
                log.warning("%s: will try again in %g s", path, delay)
            self.alerts.send(
                "failed", item=path, error=outcome.error, retry=bool(outcome.extra.get("retry"))
            )
        else:
            self.failed.discard(path)
        self.queue.finished(path, read)
        self.reporter.item_done(outcome, published)

    def _cancelled(self, task: Any) -> None:
        self.queue.cancelled(task.item)

    # ------------------------------------------------------------------ the loop

    def _start(self) -> None:
        from crunchctl.watch.observer import FolderWatcher

        opts = self.options
        if not opts.once:
            # Observer first, then the scan: nothing written in between is missed.
            self.watcher = FolderWatcher(
                opts.folder, opts.patterns, opts.recursive, opts.poll, self.events
            )
            try:
                self.watcher.start()
            except OSError as e:  # e.g. no inotify watches left for a big recursive tree
                raise ConfigError(
                    f"{opts.folder}: cannot watch the folder: "
                    f"{e.strerror or e} (--poll SECONDS needs no file-system "
                    f"events)"
                ) from None
            self._dispatcher()  # workers warm before the first recording: lower latency
        self.record.start()
        self._recorded = True

    def _turn(self, now: float, timers: dict[str, float]) -> bool:
        """One loop turn before waiting; False when the loop is over."""
        opts, q = self.options, self.queue
        if self.flags.stop.is_set():  # the command said so as the signal came
            return bool(q.inflight)
        if self.watcher is not None:
            if now >= timers["check"]:
                timers["check"] = now + CHECK_INTERVAL
                if self.watcher.check(now):
                    self.reporter.message(self.watcher.note)
                    self.rescan(retry_failed=True)
            if now >= timers["rescan"]:
                timers["rescan"] = now + RESCAN_INTERVAL
                if not self.watcher.gone:
                    self.rescan()
            if now >= timers["resets"]:
                timers["resets"] = now + RESET_INTERVAL
                self._pick_up_resets()
        for path in [p for p, t in self.retry_at.items() if t <= now]:
            del self.retry_at[path]
            q.retry(path)
        q.evaluate_due(now)
        self._submit()
        if not opts.once:
            self.quiet.check(time.time())
        return not (opts.once and q.drained())

    def run(self) -> WatchResult:
        """Backlog (oldest first), then live events until stopped (or drained, --once).

        Raises:
            UsageError: the output folder cannot be created or written.
            ConfigError: the folder cannot be watched (no inotify watches left).
            LedgerError: the ledger cannot be written at the end.
        """
        prepare_output(self.settings)  # before anything is started that would need closing
        try:
            self._start()
            self.rescan()
            self.reporter.start(self.snapshot())
            # The reporter shows this line on the console; the log file keeps it.
            log.info(
                "watching %s (%s, patterns %s%s), backlog %d",
                self.options.folder,
                "once" if self.options.once else self.watcher.kind,
                " ".join(self.options.patterns),
                ", recursive" if self.options.recursive else "",
                len(self.queue.dirty),
                extra={"file_only": True},
            )
            self.quiet.start(time.time())
            self._loop()
        except Exception as e:
            self._stop_error = str(e) or type(e).__name__
            raise
        finally:
            try:
                self._close()
            finally:
                self._stopped()
        pending = self.queue.pending()
        self.summary.not_started += len(self.queue.waiting) - len(pending)
        return WatchResult(self.summary, pending, self._published, self._outcomes)

    def _loop(self) -> None:
        start = time.monotonic()
        timers = {
            "check": start + CHECK_INTERVAL,
            "rescan": start + RESCAN_INTERVAL,
            "resets": start + RESET_INTERVAL,
            "update": 0.0,
            "give_back": start + memory.GIVE_BACK_INTERVAL,
        }
        while True:
            now = time.monotonic()
            d = self.dispatcher
            if d is not None:
                d.collect(0)  # also cancels in-flight work after a second Ctrl-C
            if not self._turn(now, timers):
                break
            # Wait for outcomes or events, whichever comes first, until the next timer.
            horizon = now + UPDATE_INTERVAL
            flush_at = self.run_.next_flush()
            wait = max(
                0.0,
                min(self.queue.next_timer(now, horizon), flush_at or horizon) - time.monotonic(),
            )
            if d is not None and d.busy:
                d.collect(min(wait, 0.05))
                self._drain_events(0)
            else:
                self._drain_events(wait)
            self.run_.flush()
            if time.monotonic() >= timers["update"]:
                timers["update"] = time.monotonic() + UPDATE_INTERVAL
                self.reporter.update(self.snapshot())
                self.record.beat(
                    queue=self.queue.queued(),
                    last_event=self._last_event,
                    last_recording=self._last,
                    quiet_since=self.quiet.since,
                )
            if time.monotonic() >= timers["give_back"]:
                # Days of running: freed buffers must not pile up (run/memory.py).
                timers["give_back"] = time.monotonic() + memory.GIVE_BACK_INTERVAL
                memory.give_back()

    def _stopped(self) -> None:
        """The ``stopped`` alert, after the last outcome was recorded; waits (bounded) for
        the alerts still queued to go out."""
        if not self.alerts.enabled:
            return
        s, sig = self.summary, self.flags.signal
        reason = (
            "error"
            if self._stop_error
            else (
                {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}.get(sig, "signal")
                if self.flags.stop.is_set()
                else "done"
            )
        )
        self.alerts.send(
            "stopped",
            reason=reason,
            error=self._stop_error,
            ok=s.ok,
            failed=s.error,
            no_data=s.no_data,
            pending=len(self.queue.pending()),
        )
        self.alerts.close()

    def _close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.dispatcher is not None:
            self.dispatcher.close()
        else:
            self.summary.finished = time.time()
            if self.flags.stop.is_set():
                self.summary.interrupted_by = self.flags.signal or signal.SIGINT
        if self.flags.stop.is_set():
            self.summary.not_started += len(self.queue.ready)
        try:
            self.run_.flush(final=True)
        finally:
            if self._recorded:
                self.record.stop()
            self.reporter.close(self.snapshot())


def run_watch(
    options: WatchOptions,
    settings: Settings,
    ledger: Ledger,
    *,
    reporter: WatchReporter | None = None,
    flags: engine.StopFlags | None = None,
    page: Page | None = None,
) -> WatchResult:
    """Watch a folder: the one call behind ``crunchctl watch``.

    Takes the single-watcher lock for (folder, ledger), processes the backlog oldest first,
    then every new or changed recording once it is complete, until ``flags`` stop it (or,
    with ``options.once``, until the backlog is drained).

    Args:
        options: folder, patterns, recursion, settle time, polling, once.
        settings: resolved settings (output, www, workers, numerics).
        ledger: the open ledger; outcomes are recorded and flushed within
            ``recordings.FLUSH_INTERVAL`` seconds.
        reporter: live panel or plain lines.
        flags: stop/cancel flags; first set stop (in-flight work finishes), cancel kills it.
        page: the control-room page of the web folder (the command builds it), or None.

    Returns:
        Counts, the recordings still pending (path, reason) and the web copies written.

    Raises:
        UsageError: the folder does not exist, an option is out of range, or the output
            folder cannot be written.
        LedgerBusyError: another watch holds this folder and ledger.
    """
    check_options(options)
    with WatchLock(ledger.path, options.folder):
        return Watch(options, settings, ledger, reporter, flags, page).run()
