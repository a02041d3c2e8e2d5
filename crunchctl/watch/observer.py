"""The file-system observer of ``crunchctl watch``: the only module that imports watchdog.

Owns observer setup (inotify & co. through watchdog, or our own polling for network
shares), the watched folder going away and coming back, and restarting a dead observer.
It only enqueues paths: whether a recording is ready or done is ``queue.py``'s business.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from crunchctl.watch.scan import matches

log = logging.getLogger("crunchctl.watcher")

#: What the handler puts on the queue: ("file", path) or ("dir", path).
FILE = "file"
DIR = "dir"

#: Seconds between restart attempts of an observer that died; doubles up to max.
RESTART_BACKOFF = 1.0
RESTART_BACKOFF_MAX = 30.0
#: Seconds over which the poller stats every known file once (in-place rewrites of old
#: recordings are noticed within this; new and removed names within one poll).
SWEEP_SECONDS = 60.0
#: Files written less than this many seconds ago (or "in the future") are stat'ed on
#: every poll: they are the ones a recorder may still be writing.
HOT_SECONDS = 300.0


def _make_handler(sink: queue.Queue, patterns: Sequence[str], recursive: bool) -> Any:
    from watchdog.events import FileSystemEventHandler

    class _Handler(FileSystemEventHandler):
        """Puts matching paths on the queue. Never raises: an exception here kills the
        observer thread for good."""

        def on_any_event(self, event: Any) -> None:
            try:
                kind = event.event_type
                if kind in ("opened", "closed_no_write"):
                    return
                # A move: the new name may be ready, the old one is gone (forget it).
                paths = [event.src_path, event.dest_path] if kind == "moved" else [event.src_path]
                for p in paths:
                    p = os.fsdecode(p)
                    if event.is_directory:
                        # A folder created or moved in under a recursive watch: its files
                        # may come with no events of their own.
                        if recursive and kind in ("created", "moved"):
                            sink.put((DIR, p))
                    elif matches(os.path.basename(p), patterns):
                        sink.put((FILE, p))
            except Exception:  # noqa: BLE001
                log.exception("watch event handler failed on %r", event)

    return _Handler()


class ScanPoller(threading.Thread):
    """Polls a folder with ``os.scandir`` and puts changed paths on ``sink``.

    Cheaper than a stat of every file on every poll (watchdog's polling observer): a
    folder is listed again only when its mtime changed (a name was added, removed or
    renamed), and every folder at least once per ``SWEEP_SECONDS``; files written in the
    last ``HOT_SECONDS`` are stat'ed on every poll, the others a rolling share per poll so
    that each is stat'ed once per ``SWEEP_SECONDS``. A version is (size, mtime_ns,
    ctime_ns). Profiled on 50,000 recordings (bench/bench_watch_scale.py): listing and
    diffing every name on every poll was most of the idle cost.

    A root folder that cannot be listed sets :attr:`gone` and emits nothing (no flood of
    "removed" paths during a share outage); :class:`FolderWatcher` deals with it.
    """

    def __init__(
        self,
        folder: str,
        patterns: Sequence[str],
        recursive: bool,
        interval: float,
        sink: queue.Queue,
    ) -> None:
        super().__init__(name="crunchctl-poller", daemon=True)
        self.folder = folder
        self.patterns = tuple(patterns)
        self.recursive = recursive
        self.interval = interval
        self.sink = sink
        self.gone = False
        self._stop_event = threading.Event()
        self._known: dict[str, tuple[int, int, int] | None] = {}
        # folder -> (its mtime_ns when listed, when listed, matching paths, sub-folders)
        self._dirs: dict[str, tuple[int, float, list[str], list[str]]] = {}
        self._hot: set[str] = set()
        self._order: list[str] = []  # sweep order
        self._cursor = 0

    # The watchdog observer's interface, as FolderWatcher uses it.
    def stop(self) -> None:
        self._stop_event.set()

    @property
    def emitters(self) -> tuple[threading.Thread, ...]:
        return (self,)

    def _list(self) -> tuple[set[str], bool] | None:
        """(matching paths under the folder, whether any folder was listed again); None
        if the root cannot be looked at."""
        names: set[str] = set()
        relisted = False
        now = time.time()
        dirs: dict[str, tuple[int, float, list[str], list[str]]] = {}
        stack = [self.folder]
        while stack:
            here = stack.pop()
            try:
                mtime = os.stat(here).st_mtime_ns
            except OSError:
                if here == self.folder:
                    return None
                continue  # a sub-folder removed meanwhile
            cached = self._dirs.get(here)
            # A folder whose mtime is within 2 s of now may change again within the same
            # timestamp tick (coarse clocks, NFS): list it until it is older.
            if (
                cached is not None
                and cached[0] == mtime
                and now - cached[1] < SWEEP_SECONDS
                and now - mtime / 1e9 > 2.0
            ):
                dirs[here] = cached
                names.update(cached[2])
                stack.extend(cached[3])
                continue
            try:
                with os.scandir(here) as it:
                    entries = list(it)
            except OSError:
                if here == self.folder:
                    return None
                continue
            relisted = True
            found, subdirs = [], []
            for e in entries:
                try:
                    is_dir = self.recursive and e.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir and not e.name.startswith("."):
                    subdirs.append(e.path)
                if matches(e.name, self.patterns):
                    found.append(e.path)
            dirs[here] = (mtime, now, found, subdirs)
            names.update(found)
            stack.extend(subdirs)
        self._dirs = dirs
        return names, relisted

    @staticmethod
    def _version(path: str) -> tuple[int, int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _set(self, path: str, version: tuple[int, int, int] | None, hot_after: float) -> None:
        self._known[path] = version
        if version is None or version[1] > hot_after:
            self._hot.add(path)

    def snapshot(self) -> None:
        """The first look: every matching file stat'ed (before the session's own scan)."""
        listed = self._list()
        self.gone = listed is None
        hot_after = (time.time() - HOT_SECONDS) * 1e9
        for p in listed[0] if listed else ():
            self._set(p, self._version(p), hot_after)
        self._order = list(self._known)

    def poll(self) -> None:
        """One poll: emit paths that appeared, disappeared or changed."""
        listed = self._list()
        if listed is None:
            self.gone = True
            return
        self.gone = False
        names, relisted = listed
        changed: list[str] = []
        known = self._known
        hot_after = (time.time() - HOT_SECONDS) * 1e9
        if relisted:
            new = [p for p in names if p not in known]
            removed = [p for p in known if p not in names]
            for p in removed:
                del known[p]
                self._hot.discard(p)
                changed.append(p)
            for p in new:
                self._set(p, self._version(p), hot_after)
                changed.append(p)
            if new or removed:
                self._order = list(known)
                self._cursor = 0
        # Hot files every poll; a rolling share of everything else.
        share = math.ceil(len(self._order) * min(1.0, self.interval / SWEEP_SECONDS))
        sweep = self._order[self._cursor : self._cursor + share]
        self._cursor = self._cursor + share if self._cursor + share < len(self._order) else 0
        for p in dict.fromkeys([*self._hot, *sweep]):
            if p not in known:
                self._hot.discard(p)
                continue
            v = self._version(p)
            if v != known[p]:
                known[p] = v
                changed.append(p)
            if v is not None and v[1] <= hot_after:
                self._hot.discard(p)
            elif v is None or v[1] > hot_after:
                self._hot.add(p)
        for p in dict.fromkeys(changed):
            self.sink.put((FILE, p))

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the poller must outlive any one surprise
                log.exception("polling %s failed; trying again next poll", self.folder)


class FolderWatcher:
    """Watches one folder and feeds ``("file"|"dir", path)`` into ``sink``.

    Args:
        folder: the folder to watch (absolute).
        patterns: file-name patterns (fnmatch, case-insensitive), e.g. ``formats.patterns()``.
        recursive: watch sub-folders too.
        poll: None for the platform's native observer (inotify, FSEvents, ...); seconds for
            polling (:class:`ScanPoller`; network shares deliver no events).
        sink: the queue the handler puts paths on.

    :meth:`check` (called every second or so) notices the folder going away (a share
    unmounted, the folder renamed) and coming back, each logged once; while it is gone
    nothing is observed and nothing spins: one ``stat`` of the folder per check.
    """

    def __init__(
        self,
        folder: str,
        patterns: Sequence[str],
        recursive: bool,
        poll: float | None,
        sink: queue.Queue,
    ) -> None:
        self.folder = folder
        self.patterns = tuple(patterns)
        self.recursive = recursive
        self.poll = poll
        self.sink = sink
        self.restarts = 0
        #: True while the folder is gone; ``note`` says what the last check changed.
        self.gone = False
        self.note = ""
        self._observer: Any = None
        self._identity: tuple[int, int] | None = None
        self._next_attempt = 0.0
        self._backoff = RESTART_BACKOFF

    @property
    def kind(self) -> str:
        return f"polling every {self.poll:g} s" if self.poll else "file-system events"

    def _new_observer(self) -> Any:
        if self.poll:
            poller = ScanPoller(self.folder, self.patterns, self.recursive, self.poll, self.sink)
            poller.snapshot()
            if poller.gone:
                raise FileNotFoundError(2, "No such file or directory", self.folder)
            return poller
        from watchdog.observers import Observer

        obs = Observer()
        obs.schedule(
            _make_handler(self.sink, self.patterns, self.recursive),
            self.folder,
            recursive=self.recursive,
        )
        obs.daemon = True
        return obs

    def _folder_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the folder, None when it is gone or not a folder."""
        try:
            st = os.stat(self.folder)
        except OSError:  # missing, a dead mount (ESTALE, EIO), no permission
            return None
        return (st.st_dev, st.st_ino) if os.path.isdir(self.folder) else None

    def start(self) -> None:
        """Start observing.

        Raises:
            OSError: the folder cannot be watched (missing, not readable, no inotify
                watches left).
        """
        identity = self._folder_identity()
        obs = self._new_observer()
        obs.start()
        self._observer = obs
        self._identity = identity

    def alive(self) -> bool:
        """Whether the observer and all its emitter threads still run.

        A watchdog emitter stops for good when its folder disappears while the observer
        thread itself lives on, so the emitters are checked too.
        """
        obs = self._observer
        if obs is None or not obs.is_alive():
            return False
        emitters = list(getattr(obs, "emitters", ()))
        return bool(emitters) and all(e.is_alive() for e in emitters)

    def check(self, now: float | None = None) -> bool:
        """Notice the folder going and coming back; restart a dead observer.

        Returns:
            True when observing started again (the folder is back, or the observer was
            restarted): the caller rescans, since events meanwhile were lost.
        """
        now = time.monotonic() if now is None else now
        self.note = ""
        identity = self._folder_identity()
        if identity is None:
            if not self.gone:
                self.gone = True
                self._stop_observer()
                self.note = (
                    f"{self.folder}: the watched folder is gone (share unmounted, "
                    f"moved or deleted?); waiting for it to come back"
                )
                log.warning("%s", self.note)
            return False
        if self.gone or identity != self._identity:
            # Back (or replaced by another folder of the same name: an inotify watch
            # would still follow the old one).
            self._stop_observer()
            if not self._restart(now, quiet=True):
                return False
            was_gone, self.gone = self.gone, False
            self.note = (
                f"{self.folder}: the watched folder is back; rescanning it"
                if was_gone
                else f"{self.folder}: the watched folder was replaced; "
                f"watching the new one and rescanning it"
            )
            # The caller says the note on the console (it returns True): the log file only.
            log.warning("%s", self.note, extra={"file_only": True})
            return True
        if self.alive():
            return False
        if now < self._next_attempt:
            return False
        self._stop_observer()
        if not self._restart(now):
            return False
        self.note = (
            f"observer on {self.folder} had stopped (events while it was down are "
            f"lost); restarted ({self.kind}) and rescanning the folder"
        )
        log.warning("%s", self.note, extra={"file_only": True})  # the caller says the note
        return True

    def _restart(self, now: float, quiet: bool = False) -> bool:
        try:
            self.start()
        except OSError as e:
            if not quiet:
                log.warning(
                    "observer on %s stopped and cannot be restarted yet (%s); retrying in %.0f s",
                    self.folder,
                    e.strerror or e,
                    self._backoff,
                )
            self._next_attempt = now + self._backoff
            self._backoff = min(RESTART_BACKOFF_MAX, self._backoff * 2)
            return False
        self.restarts += 1
        self._backoff = RESTART_BACKOFF
        self._next_attempt = 0.0
        return True

    def _stop_observer(self) -> None:
        obs, self._observer = self._observer, None
        if obs is None:
            return
        try:
            obs.stop()
            obs.join(timeout=5)
        except Exception:  # noqa: BLE001 - a broken observer must not stop the watch
            log.debug("stopping the observer failed", exc_info=True)

    def stop(self) -> None:
        self._stop_observer()
