"""The core of ``crunchctl watch`` (DESIGN section 6, issue 4): backlog, readiness, workers.

Turns paths (from a folder scan or the observer in ``watcher``) into tasks once their
recording is complete, feeds them to an executor (``run.executor.make_executor``), records every outcome in the
ledger and publishes web copies. Also owns the single-watcher lock and
:func:`pending_recordings` for ``status``. Leaves watchdog to ``watcher``, rich to the CLI,
Parquet to ``ledger``.

Readiness rules:

- ``.tiq``: the header says how many bytes to expect (TIQ.md); once they are all there and
  the size and mtime have not changed for ``TIQ_QUIET`` seconds (copy tools set the mtime
  right after the last byte; a file whose mtime is already that old needs no wait), the
  recording is ready. A recording seen incomplete is
  re-checked by a cheap stat every ``RECHECK_MIN`` seconds while it grows (so ``--poll``
  latency does not depend on the polling interval once a recording is known), backing off
  to ``RECHECK_MAX`` when it stops growing; it is reported as pending, never processed half.
- other patterns: size and mtime unchanged for ``settle`` seconds (:class:`SettleTracker`).
- a version (size, mtime) is attempted once per session; a new version is processed again.
  The ledger decides for files found by a scan (backlog, rescan after an observer restart).

Outcomes reach the ledger within ``FLUSH_INTERVAL`` seconds; web copies are made as each
recording finishes. Two watches of one folder on one ledger: the second refuses to start
(:class:`WatchLock`) rather than sharing the work, which would need per-recording claims
that every watcher sees at once, for a case (two watchers on one recorder) that is a mistake.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import queue
import signal
import socket
import stat as _stat
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crunchctl.run import engine
from crunchctl.config import Settings
from crunchctl.errors import ConfigError, IncompleteRecording, ItemError, LedgerBusyError, \
    LedgerError, TiqError, UsageError
from crunchctl.run.outcome import ERROR, Outcome

if TYPE_CHECKING:
    from crunchctl.ledger.store import Ledger

log = logging.getLogger("crunchctl.watch")

#: Seconds a complete ``.tiq`` must keep its size and mtime before it is processed.
TIQ_QUIET = 0.1
#: Seconds between own stats of a recording being written (fastest, and after backing off).
RECHECK_MIN = 0.25
RECHECK_MAX = 5.0
#: Events for one path are evaluated at most this often (a writer fires thousands).
MIN_GAP = 0.05
#: Longest delay between an outcome and its ledger flush, s.
FLUSH_INTERVAL = 0.5
#: Seconds between liveness checks of the observer.
CHECK_INTERVAL = 1.0
#: Full rescans as a safety net against lost events (inotify queue overflow), s.
RESCAN_INTERVAL = 300.0
#: Paths evaluated per loop turn (a big backlog must not delay the first submission).
EVAL_BATCH = 256
#: Seconds between panel updates.
UPDATE_INTERVAL = 0.25
#: Window of the rate shown in the panel, s.
RATE_WINDOW = 300.0

_NEVER = math.inf


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class WatchOptions:
    """What to watch and how.

    Args:
        folder: the recorder's folder (made absolute).
        pattern: file-name pattern, fnmatch, case-insensitive (``*.tiq``).
        recursive: include sub-folders.
        settle: seconds a non-``.tiq`` file's size and mtime must stay unchanged.
        poll: None for file-system events; seconds between polls for network shares.
        once: drain the backlog and return; incomplete recordings are reported as pending.
        retry_after: seconds before a recording whose products or web copies could not be
            written is tried again (its failure was the output side's, not its own).
    """

    folder: str
    pattern: str = "*.tiq"
    recursive: bool = False
    settle: float = 2.0
    poll: float | None = None
    once: bool = False
    retry_after: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", os.path.abspath(os.path.expanduser(self.folder)))

    @property
    def source(self) -> str:
        """The ledger's source column for this watch."""
        return f"watch:{self.folder}"


def check_options(options: WatchOptions) -> None:
    """Raise UsageError for a folder that is not there or values that make no sense."""
    if not os.path.exists(options.folder):
        raise UsageError(f"{options.folder}: folder to watch does not exist")
    if not os.path.isdir(options.folder):
        raise UsageError(f"{options.folder}: is not a folder")
    if not options.pattern:
        raise UsageError("--pattern must not be empty")
    if not options.settle >= 0 or not math.isfinite(options.settle):
        raise UsageError(f"--settle {options.settle}: expected seconds, 0 or more")
    if options.poll is not None and (not options.poll > 0 or not math.isfinite(options.poll)):
        raise UsageError(f"--poll {options.poll}: expected a positive number of seconds")


# ------------------------------------------------------------------------------ settle


class SettleTracker:
    """Decides when a file has settled: size and mtime unchanged for ``settle`` seconds.

    Pure: it is fed observations ``(path, size, mtime_ns, now)`` and never looks at a clock
    or a file system, so it is easy to test.

    Args:
        settle: seconds a (size, mtime) must be observed unchanged; 0 settles at once.
    """

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._seen: dict[str, tuple[int, int, float]] = {}

    def observe(self, path: str, size: int, mtime_ns: int, now: float) -> bool:
        """Record an observation; return True when the file has settled.

        The clock starts at the first observation of a (size, mtime) pair; any change
        restarts it.
        """
        prev = self._seen.get(path)
        if prev is None or (prev[0], prev[1]) != (size, mtime_ns):
            self._seen[path] = (size, mtime_ns, now)
            return self.settle <= 0
        return now - prev[2] >= self.settle

    def due(self, path: str) -> float | None:
        """When the file will have settled if nothing changes (None if unknown)."""
        prev = self._seen.get(path)
        return None if prev is None else prev[2] + self.settle

    def forget(self, path: str) -> None:
        self._seen.pop(path, None)

    def __contains__(self, path: object) -> bool:
        return path in self._seen

    def __len__(self) -> int:
        return len(self._seen)


# -------------------------------------------------------------------------------- scan


def is_tiq(path: str) -> bool:
    return path.lower().endswith(".tiq")


def scan_folder(folder: str, pattern: str, recursive: bool) -> list[tuple[str, int, int]]:
    """Matching files under ``folder`` as (path, size, mtime_ns), oldest first.

    Folders and dangling links whose names match are listed too (size 0), so processing
    records their error. Hidden files and folders are skipped; a folder that cannot be read is logged and
    skipped (a share outage must not stop the watch).
    """
    from crunchctl.watch.observer import matches

    found: list[tuple[str, int, int]] = []
    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(here) as it:
                entries = list(it)
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("%s: cannot list the folder: %s", here, e.strerror or e)
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                if is_dir and recursive and not entry.name.startswith("."):
                    stack.append(entry.path)
                if not matches(entry.name, pattern):
                    continue
                if is_dir or entry.is_symlink():
                    # A folder or a dangling link named like a recording gets its error in
                    # the ledger (TIQ.md, bad files) instead of being ignored.
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        st = entry.stat(follow_symlinks=False)
                    if is_dir or not _stat.S_ISREG(st.st_mode):
                        found.append((entry.path, 0, st.st_mtime_ns))
                        continue
                else:
                    st = entry.stat()
            except OSError:
                continue
            if _stat.S_ISREG(st.st_mode):
                found.append((entry.path, st.st_size, st.st_mtime_ns))
    found.sort(key=lambda f: (f[2], f[0]))
    return found


def _entry_fingerprint(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a regular file; (0, mtime_ns) of a folder or dangling link."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        try:
            return (0, os.lstat(path).st_mtime_ns)
        except OSError:
            return None
    except OSError:
        return None
    return (st.st_size if _stat.S_ISREG(st.st_mode) else 0, st.st_mtime_ns)


def _short(message: str, path: str) -> str:
    """An error message without the leading path (the panel shows the name already)."""
    prefix = path + ": "
    return message[len(prefix):] if message.startswith(prefix) else message


def tiq_state(path: str) -> tuple[bool, str]:
    """(complete, reason) of a ``.tiq`` per its header.

    A file that is not a readable TIQ recording counts as complete: processing it records
    the error in the ledger (TIQ.md: each bad file gets a clear error).
    """
    from crunchctl.formats import tiq

    try:
        tiq.check_complete(tiq.read_header(path))
    except IncompleteRecording as e:
        return False, "incomplete: " + _short(str(e), path)
    except TiqError:
        return True, ""
    return True, ""


def pending_recordings(folder: str, pattern: str, recursive: bool, settings: Settings,
                       ledger: Ledger | None) -> list[tuple[str, str]]:
    """Recordings in a watched folder that are not done, with the reason, oldest first.

    For ``crunchctl status`` (DESIGN section 8: pending items of a watched folder). Nothing
    about pending recordings is stored in the ledger: this looks at the folder and asks
    the ledger which recordings are done for ``settings``.

    Args:
        folder: the watched folder.
        pattern: file-name pattern of the watch (``*.tiq``).
        recursive: include sub-folders.
        settings: the settings the watch runs with (done-state depends on them).
        ledger: the ledger; None treats every recording as not done.

    Returns:
        ``(path, reason)`` per recording not done. Reasons: ``incomplete: ...`` (a
        ``.tiq`` shorter than its header says: still being written, or cut) or
        ``not done yet`` (new, changed, failed last time, or settings changed).
    """
    from crunchctl.run.recordings import split_due

    paths = [p for p, _, _ in scan_folder(os.path.abspath(folder), pattern, recursive)]
    due, _ = split_due(paths, settings, ledger)
    out = []
    for p in due:
        complete, reason = tiq_state(p) if is_tiq(p) else (True, "")
        out.append((p, reason if not complete else "not done yet"))
    return out


# -------------------------------------------------------------------------------- lock


def lock_path(ledger_dir: str | os.PathLike, folder: str) -> Path:
    """The lock file of watches of ``folder`` on the ledger in ``ledger_dir``."""
    key = hashlib.sha1(os.path.realpath(folder).encode()).hexdigest()[:12]
    return Path(ledger_dir) / f"watch-{key}.lock"


class WatchLock:
    """One ``watch`` per folder and ledger: ``fcntl.flock`` on a file in the ledger folder.

    The lock holds while the process lives (the kernel drops it when the process dies, so
    a crash leaves no stale lock). The file's content (JSON: pid, host, since, folder,
    pattern, recursive, and ``stopped`` once it ended) names the holder in the message of
    a second watcher, and tells ``status`` which folders are watched (:func:`watches`).
    """

    def __init__(self, ledger_dir: str | os.PathLike, folder: str, *,
                 pattern: str = "*.tiq", recursive: bool = False) -> None:
        self.path = lock_path(ledger_dir, folder)
        self.folder = folder
        self.ledger_dir = str(ledger_dir)
        self.info: dict[str, Any] = {"folder": folder, "pattern": pattern,
                                     "recursive": recursive}
        self._fd: int | None = None

    def acquire(self, wait: float = 0.3) -> None:
        """Take the lock, trying for ``wait`` seconds (a ``status`` probe holds it briefly).

        Raises:
            LedgerBusyError: another watch holds it (the message names it).
            LedgerError: the lock file cannot be created.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise LedgerError(f"cannot create the watch lock {self.path}: "
                              f"{e.strerror or e}") from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise LedgerError(f"cannot lock {self.path}: {e.strerror or e}") from None
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LedgerBusyError(self._busy_message()) from None
                time.sleep(0.1)
        self.info.update(pid=os.getpid(), host=socket.gethostname(), since=_now_iso())
        self._write(fd)
        self._fd = fd

    def _write(self, fd: int) -> None:
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(self.info) + "\n").encode(), 0)
        except OSError as e:  # the lock itself holds; only the description is missing
            log.warning("cannot write %s: %s", self.path, e.strerror or e)

    def _busy_message(self) -> str:
        holder: dict[str, Any] = {}
        for _ in range(20):  # the holder writes its details right after locking
            holder = _read_json(self.path)
            if holder.get("pid") and not holder.get("stopped"):
                break
            time.sleep(0.05)
        who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
               f"since {holder.get('since', '?')}") if holder else "details unknown"
        return (f"another crunchctl watch is already watching {self.folder} with the ledger "
                f"{self.ledger_dir} ({who}); stop it first (two watchers would process "
                f"the same recordings)")

    def release(self) -> None:
        if self._fd is not None:
            self.info["stopped"] = _now_iso()
            self._write(self._fd)
            os.close(self._fd)  # releases the flock
            self._fd = None

    def __enter__(self) -> WatchLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def watches(ledger_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The watches that have used a ledger, for ``status``.

    Returns:
        One dict per watched folder: ``folder``, ``pattern``, ``recursive``, ``pid``,
        ``host``, ``since``, ``stopped`` (when it ended, or None) and ``running`` (a watch
        holds the lock now).
    """
    out = []
    for path in sorted(Path(ledger_dir).glob("watch-*.lock")):
        info = _read_json(path)
        if not info.get("folder"):
            continue
        running = False
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            running = True
        finally:
            os.close(fd)  # also drops the probe's shared lock at once
        out.append({"folder": info["folder"], "pattern": info.get("pattern", "*.tiq"),
                    "recursive": bool(info.get("recursive")), "pid": info.get("pid"),
                    "host": info.get("host"), "since": info.get("since"),
                    "stopped": None if running else info.get("stopped"),
                    "running": running})
    return out


# ---------------------------------------------------------------------------- reporting


@dataclass
class WatchSnapshot:
    """What the live panel shows; built by the loop every ``UPDATE_INTERVAL`` seconds."""

    folder: str
    observer: str
    started: float
    queued: int = 0
    in_progress: list[str] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    no_data: int = 0
    skipped: int = 0
    rate_per_min: float = 0.0  # finished per minute over the last 5 min (1 min at least)
    last: Outcome | None = None
    last_published: list[str] = field(default_factory=list)
    pending: list[tuple[str, str]] = field(default_factory=list)
    restarts: int = 0
    stopping: bool = False


class WatchReporter:
    """Callbacks of a watch; the CLI plugs in a rich panel or plain lines, tests nothing."""

    def start(self, snapshot: WatchSnapshot) -> None: ...
    def update(self, snapshot: WatchSnapshot) -> None: ...
    def item_started(self, path: str) -> None: ...
    def item_done(self, outcome: Outcome, published: list[str]) -> None: ...
    def waiting(self, path: str, reason: str) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self, snapshot: WatchSnapshot) -> None: ...


@dataclass
class WatchResult:
    """What a watch did, for the exit code and the final summary."""

    summary: engine.RunSummary
    pending: list[tuple[str, str]] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    outcomes: int = 0


# -------------------------------------------------------------------------------- loop


@dataclass
class _Pending:
    fp: tuple[int, int]
    reason: str
    next_check: float
    interval: float = RECHECK_MIN
    last_check: float = 0.0
    checks: int = 0


def _new_pool(settings: Settings) -> Any:
    from crunchctl.quicklook.task import process_recording
    from crunchctl.run.executor import make_executor

    return make_executor(process_recording, settings)


class Watch:
    """One watch session: call :meth:`run` once.

    Args:
        options: folder, pattern, settle, poll, once.
        settings: resolved settings (output, www, workers, numerics).
        ledger: where outcomes go and done-state comes from.
        reporter: panel or log lines.
        flags: stop/cancel flags (signal handlers set them).
    """

    def __init__(self, options: WatchOptions, settings: Settings, ledger: Ledger,
                 reporter: WatchReporter | None = None,
                 flags: engine.StopFlags | None = None) -> None:
        from crunchctl.run.recordings import Publisher

        self.options = options
        self.settings = settings
        self.ledger = ledger
        self.reporter = reporter or WatchReporter()
        self.flags = flags or engine.StopFlags()
        self.summary = engine.RunSummary()
        self.publisher = Publisher(settings.www_path)
        self.events: queue.Queue = queue.Queue()
        self.watcher: Any = None
        self.pool: Any = None
        # Never take our own products for recordings (a --pattern '*' with the output
        # folder inside the watched one would loop).
        self.excluded = tuple(os.path.join(os.path.abspath(d), "") for d in
                              (str(settings.output_dir()), settings.www_path,
                               str(ledger.path)) if d)
        self.failed: set[str] = set()
        self.retry_at: dict[str, float] = {}              # output-side failures, when to retry
        self._stop_announced = False

        self.attempted: dict[str, tuple[int, int]] = {}   # version attempted or done
        self.ready: dict[str, tuple[int, int]] = {}       # insertion order = work order
        self.inflight: dict[str, tuple[int, int]] = {}
        self.recheck: set[str] = set()                    # changed while in flight
        self.pending: dict[str, _Pending] = {}
        self.dirty: dict[str, None] = {}                  # to evaluate now, ordered
        self.tiq_tracker = SettleTracker(0.0 if options.once else TIQ_QUIET)
        self.tracker = SettleTracker(options.settle)
        self._stems: dict[str, str] = {}
        self._finished: deque[float] = deque()
        self._last: Outcome | None = None
        self._last_published: list[str] = []
        self._published: list[str] = []
        self._outcomes = 0
        self._unflushed = False
        self._last_flush = 0.0

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> WatchSnapshot:
        now = time.time()
        while self._finished and self._finished[0] < now - RATE_WINDOW:
            self._finished.popleft()
        window = min(RATE_WINDOW, max(60.0, now - self.summary.started))
        # A complete .tiq in its short quiet check is as good as queued.
        quiet = [p for p, e in self.pending.items() if e.reason.startswith("complete")]
        return WatchSnapshot(
            folder=self.options.folder,
            observer="one scan, --once" if self.options.once else (
                self.watcher.kind if self.watcher else ""),
            started=self.summary.started,
            queued=len(self.ready) + len(quiet) + len(self.dirty),
            in_progress=list(self.inflight), done=self.summary.ok,
            failed=self.summary.error, no_data=self.summary.no_data,
            skipped=self.summary.skipped,
            rate_per_min=len(self._finished) * 60.0 / window, last=self._last,
            last_published=list(self._last_published),
            pending=[(p, e.reason) for p, e in self.pending.items()
                     if not e.reason.startswith("complete")],
            restarts=self.watcher.restarts if self.watcher else 0,
            stopping=self.flags.stop.is_set())

    # ------------------------------------------------------------------ scanning

    def _wanted(self, path: str) -> bool:
        return path.startswith(self.options.folder + os.sep) and not path.startswith(
            self.excluded)

    def rescan(self, *, retry_failed: bool = False) -> None:
        """Scan the folder; what the ledger says is done is remembered, the rest evaluated.

        Args:
            retry_failed: forget this session's failures first, so they are tried again
                (after an outage, a failure may only have been the folder going away).
        """
        if retry_failed:
            for p in self.failed:
                self.attempted.pop(p, None)
            self.failed.clear()
        files = [f for f in scan_folder(self.options.folder, self.options.pattern,
                                        self.options.recursive) if self._wanted(f[0])]
        unknown = [p for p, _, _ in files
                   if p not in self.attempted and p not in self.inflight
                   and p not in self.ready and p not in self.pending]
        if unknown:
            from crunchctl.run.recordings import split_due

            try:
                _, done = split_due(unknown, self.settings, self.ledger)
            except LedgerError as e:
                log.error("%s; treating %d recordings as not done", e, len(unknown))
                done = []
            done_set = set(done)
            for p, size, mtime in files:
                if p in done_set:
                    self.attempted[p] = (size, mtime)
            self.summary.skipped += len(done)
            if done:
                log.info("%s: %d recordings already done", self.options.folder, len(done))
        for p, size, mtime in files:  # oldest first
            if p in self.inflight:
                continue
            if self.attempted.get(p) == (size, mtime):
                continue
            self.dirty.setdefault(p, None)

    def _scan_dir(self, folder: str) -> None:
        for p, _, _ in scan_folder(folder, self.options.pattern, self.options.recursive):
            if self._wanted(p):
                self.dirty.setdefault(p, None)

    # ------------------------------------------------------------------ readiness

    def _drain_events(self, timeout: float) -> None:
        from crunchctl.watch.observer import DIR

        try:
            kind, path = self.events.get(timeout=timeout) if timeout > 0 \
                else self.events.get_nowait()
        except queue.Empty:
            return
        while True:
            if not self._wanted(path):
                pass
            elif kind == DIR:
                self._scan_dir(path)
            else:
                self.dirty.setdefault(path, None)
            try:
                kind, path = self.events.get_nowait()
            except queue.Empty:
                return

    def _forget(self, path: str) -> None:
        self.pending.pop(path, None)
        self.ready.pop(path, None)
        self.tracker.forget(path)
        self.tiq_tracker.forget(path)

    def _wait(self, path: str, fp: tuple[int, int], reason: str, now: float,
              settle_due: float | None) -> None:
        prev = self.pending.get(path)
        final = False
        quiet = reason.startswith(("complete", "settling"))
        if not quiet and (prev is None or prev.reason.startswith(("complete", "settling"))):
            log.info("%s: waiting, %s", path, reason)
            self.reporter.waiting(path, reason)
        if prev is None:
            entry = _Pending(fp, reason, now, RECHECK_MIN, now, 1)
        else:
            entry = prev
            entry.interval = (RECHECK_MIN if entry.fp != fp
                              else min(RECHECK_MAX, entry.interval * 2))
            entry.fp, entry.reason = fp, reason
            entry.last_check = now
            entry.checks += 1
        if self.options.once:
            # --once judges what is there now: incomplete recordings and files that kept
            # changing over one settle interval are reported as pending, not waited for.
            final = reason.startswith("incomplete") or entry.checks >= 2
        if final:
            entry.next_check = _NEVER
        elif settle_due is not None:
            entry.next_check = max(settle_due, now + 0.001)
        else:
            entry.next_check = now + entry.interval
        self.pending[path] = entry

    def evaluate(self, path: str, now: float) -> None:
        """Decide what to do with a path that had an event, a scan hit or a timer."""
        prev = self.pending.get(path)
        if prev is not None and now < prev.last_check + MIN_GAP:
            # Coalesce a writer's stream of events: look again a little later.
            prev.next_check = min(prev.next_check, prev.last_check + MIN_GAP)
            return
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if os.path.islink(path):  # a dangling link named like a recording: its error
                self._bad_entry(path)  # goes to the ledger (TIQ.md, bad files)
            else:
                self._forget(path)
            return
        except OSError as e:
            self._wait(path, (-1, -1), f"cannot read: {e.strerror or e}", now, None)
            return
        if _stat.S_ISDIR(st.st_mode):
            if self.options.recursive:
                self._scan_dir(path)
            from crunchctl.watch.observer import matches

            if matches(os.path.basename(path), self.options.pattern):
                self._bad_entry(path)  # a folder named like a recording
            return
        if not _stat.S_ISREG(st.st_mode):
            return
        if path in self.inflight:
            self.recheck.add(path)
            return
        fp = (st.st_size, st.st_mtime_ns)
        if self.attempted.get(path) == fp:
            self._forget(path)  # this version was done already: a repeated event
            return
        if self.ready.get(path) == fp:
            return
        self.ready.pop(path, None)
        if is_tiq(path):
            complete, reason = tiq_state(path)
            if not complete:
                self.tiq_tracker.forget(path)
                self._wait(path, fp, reason, now, None)
                return
            tracker = self.tiq_tracker
        else:
            tracker = self.tracker
        settled = tracker.observe(path, fp[0], fp[1], now)
        if not settled and tracker is self.tiq_tracker:
            # Last written longer ago than the quiet time (moved in, or found by a scan):
            # no copy tool is about to touch it.
            settled = time.time() - fp[1] / 1e9 >= TIQ_QUIET
        if settled:
            tracker.forget(path)
            self.pending.pop(path, None)
            self.ready[path] = fp
        else:
            what = "complete, checking it stays unchanged" if tracker is self.tiq_tracker \
                else f"settling ({self.options.settle:g} s unchanged needed)"
            self._wait(path, fp, what, now, tracker.due(path))

    def _bad_entry(self, path: str) -> None:
        """Queue a path that is not a regular file once, so processing records its error."""
        fp = _entry_fingerprint(path)
        if fp is None:
            return
        if self.attempted.get(path) != fp and path not in self.inflight:
            self.pending.pop(path, None)
            self.ready[path] = fp

    def _evaluate_due(self, now: float) -> None:
        for path, entry in list(self.pending.items()):
            if entry.next_check <= now:
                self.dirty.setdefault(path, None)
        for _ in range(min(EVAL_BATCH, len(self.dirty))):
            path = next(iter(self.dirty))
            del self.dirty[path]
            self.evaluate(path, now)

    # ------------------------------------------------------------------ submitting

    def _task(self, path: str, fft_workers: int) -> Any:
        from crunchctl.run.recordings import make_tasks

        task = make_tasks([path], self.settings, source=self.options.source,
                          fft_workers=fft_workers)[0]
        owner = self._stems.get(task.stem)
        if owner is not None and owner != path:
            # Same stem from another sub-folder this session (DESIGN section 4).
            task = make_tasks([owner, path], self.settings, source=self.options.source,
                              fft_workers=fft_workers)[1]
        self._stems.setdefault(task.stem, path)
        return task

    def _submit(self) -> None:
        while self.ready and not self.flags.stop.is_set():
            if self.pool is None:
                self.pool = _new_pool(self.settings)
            if not self.pool.idle:
                return
            path, fp = next(iter(self.ready.items()))
            del self.ready[path]
            now_fp = _entry_fingerprint(path)
            if now_fp != fp:  # changed or gone since it was judged ready
                self.dirty.setdefault(path, None)
                continue
            # A lone recording gets every core for its FFT (latency, issue 4).
            alone = self.pool.busy == 0 and not self.ready
            task = self._task(path, (os.cpu_count() or 1) if alone else 1)
            self.pool.submit(task)
            self.inflight[path] = fp
            self.attempted[path] = fp
            self.reporter.item_started(path)

    # ------------------------------------------------------------------ outcomes

    def _finish(self, outcome: Outcome) -> None:
        tb = outcome.extra.pop("traceback", None)
        if tb:
            log.error("%s\n%s", outcome.error, tb.rstrip())
        published = self.publisher.publish_and_log(outcome)
        try:
            self.ledger.record(outcome)
        except LedgerError as e:  # the row stays buffered; the line must not stop
            log.error("%s; the rows stay buffered and are written later", e)
        self._unflushed = True
        self.summary.add(outcome)
        self._outcomes += 1
        self._finished.append(time.time())
        self._last = outcome
        if published:
            self._last_published = published
            self._published.extend(published)
        path = outcome.item
        fp = self.inflight.pop(path, None)
        if outcome.size is not None and outcome.mtime_ns is not None:
            fp = (outcome.size, outcome.mtime_ns)  # the version the worker actually read
        if fp is not None:
            self.attempted[path] = fp
        if outcome.status == ERROR:
            self.failed.add(path)
            if outcome.extra.get("retry"):
                # Output folder gone or disk full: the recording may be fine; try again.
                delay = self.options.retry_after
                self.retry_at[path] = time.monotonic() + delay
                log.warning("%s: will try again in %g s", path, delay)
        else:
            self.failed.discard(path)
        if path in self.recheck:
            self.recheck.discard(path)
            self.dirty.setdefault(path, None)
        self.reporter.item_done(outcome, published)

    def _flush(self, now: float, *, final: bool = False) -> None:
        if not self._unflushed:
            return
        if not final and now - self._last_flush < FLUSH_INTERVAL:
            return
        try:
            self.ledger.flush()
        except LedgerError as e:
            if final:
                raise
            log.error("%s; the rows stay buffered and are written later", e)
        else:
            self._unflushed = False
        self._last_flush = now

    # ------------------------------------------------------------------ the loop

    def _next_timer(self, now: float) -> float:
        if self.dirty:
            return now
        nxt = now + UPDATE_INTERVAL
        for entry in self.pending.values():
            nxt = min(nxt, entry.next_check)
        if self._unflushed:
            nxt = min(nxt, self._last_flush + FLUSH_INTERVAL)
        return nxt

    def _idle_once(self) -> bool:
        """--once: nothing left to evaluate, submit or wait for."""
        return (not self.dirty and not self.ready and not self.inflight
                and all(e.next_check == _NEVER for e in self.pending.values()))

    def run(self) -> WatchResult:
        """Backlog (oldest first), then live events until stopped (or drained, --once).

        Raises:
            ConfigError: the output folder cannot be written, or the folder cannot be
                watched (no inotify watches left).
            LedgerError: the ledger cannot be written at the end.
        """
        from crunchctl.quicklook.products import clean_stale_temps, ensure_output_dir
        from crunchctl.watch.observer import FolderWatcher

        opts = self.options
        try:
            ensure_output_dir(self.settings.output_dir())
            clean_stale_temps(self.settings.output_dir())
        except ItemError as e:
            raise ConfigError(str(e)) from None
        if not opts.once:
            # Observer first, then the scan: nothing written in between is missed.
            self.watcher = FolderWatcher(opts.folder, opts.pattern, opts.recursive, opts.poll,
                                         self.events)
            try:
                self.watcher.start()
            except OSError as e:  # e.g. no inotify watches left for a big recursive tree
                raise ConfigError(f"{opts.folder}: cannot watch the folder: "
                                  f"{e.strerror or e} (--poll SECONDS needs no file-system "
                                  f"events)") from None
            self.pool = _new_pool(self.settings)  # warm workers: lower latency
        self.rescan()
        self.reporter.start(self.snapshot())
        log.info("watching %s (%s, pattern %s%s), backlog %d", opts.folder,
                 "once" if opts.once else self.watcher.kind, opts.pattern,
                 ", recursive" if opts.recursive else "", len(self.dirty))
        next_check = time.monotonic() + CHECK_INTERVAL
        next_rescan = time.monotonic() + RESCAN_INTERVAL
        next_update = 0.0
        try:
            while True:
                now = time.monotonic()
                if self.flags.cancel.is_set() and self.pool is not None:
                    for task in self.pool.cancel():
                        log.warning("%s: cancelled", task.item)
                        self.inflight.pop(task.item, None)
                        self.attempted.pop(task.item, None)
                        self.summary.not_started += 1
                if self.flags.stop.is_set():
                    if not self._stop_announced:
                        self._stop_announced = True
                        log.warning("stopping: no new work%s", (
                            f"; waiting for {len(self.inflight)} recordings in progress "
                            f"(Ctrl-C again cancels them)") if self.inflight else "")
                    if not self.inflight:
                        break
                else:
                    if self.watcher is not None:
                        if now >= next_check:
                            next_check = now + CHECK_INTERVAL
                            if self.watcher.check(now):
                                self.reporter.message(
                                    f"observer restarted; rescanning {opts.folder}")
                                self.rescan(retry_failed=True)
                        if now >= next_rescan:
                            next_rescan = now + RESCAN_INTERVAL
                            self.rescan()
                    for path in [p for p, t in self.retry_at.items() if t <= now]:
                        del self.retry_at[path]
                        self.attempted.pop(path, None)
                        self.dirty.setdefault(path, None)
                    self._evaluate_due(now)
                    self._submit()
                    if opts.once and self._idle_once():
                        break
                # Wait for outcomes or events, whichever comes first, until the next timer.
                wait = max(0.0, min(self._next_timer(now) - time.monotonic(), UPDATE_INTERVAL))
                if self.pool is not None and self.pool.busy:
                    for _task, outcome in self.pool.collect(timeout=min(wait, 0.05)):
                        self._finish(outcome)
                    self._drain_events(0)
                else:
                    self._drain_events(wait)
                self._flush(time.monotonic())
                if time.monotonic() >= next_update:
                    next_update = time.monotonic() + UPDATE_INTERVAL
                    self.reporter.update(self.snapshot())
        finally:
            if self.watcher is not None:
                self.watcher.stop()
            if self.pool is not None:
                self.pool.close()
            self.summary.finished = time.time()
            if self.flags.stop.is_set():
                self.summary.interrupted_by = self.flags.signal or signal.SIGINT
                self.summary.not_started += len(self.ready)
            try:
                self._flush(time.monotonic(), final=True)
            finally:
                self.reporter.close(self.snapshot())
        pending = [(p, e.reason) for p, e in self.pending.items()
                   if not e.reason.startswith("complete")]
        self.summary.not_started += len(self.pending) - len(pending)
        return WatchResult(self.summary, pending, self._published, self._outcomes)


def run_watch(options: WatchOptions, settings: Settings, ledger: Ledger, *,
              reporter: WatchReporter | None = None,
              flags: engine.StopFlags | None = None) -> WatchResult:
    """Watch a folder (DESIGN section 6): the one call behind ``crunchctl watch``.

    Takes the single-watcher lock for (folder, ledger), processes the backlog oldest first,
    then every new or changed recording once it is complete, until ``flags`` stop it (or,
    with ``options.once``, until the backlog is drained).

    Args:
        options: folder, pattern, recursion, settle time, polling, once.
        settings: resolved settings (output, www, workers, numerics).
        ledger: the open ledger; outcomes are recorded and flushed within
            ``FLUSH_INTERVAL`` seconds.
        reporter: live panel or plain lines.
        flags: stop/cancel flags; first set stop (in-flight work finishes), cancel kills it.

    Returns:
        Counts, the recordings still pending (path, reason) and the web copies written.

    Raises:
        UsageError: the folder does not exist or an option is out of range.
        LedgerBusyError: another watch holds this folder and ledger.
        ConfigError: the output folder cannot be written.
    """
    check_options(options)
    with WatchLock(ledger.path, options.folder, pattern=options.pattern,
                   recursive=options.recursive):
        return Watch(options, settings, ledger, reporter, flags).run()
