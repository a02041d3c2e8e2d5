"""The file-system observer of ``crunchctl watch``: the only module that imports watchdog.

Owns observer setup (inotify & co., or polling for network shares), an event handler that
only enqueues paths, and the liveness check that restarts a dead observer. It never
decides whether a recording is ready or done: that is ``queue.py``'s business.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from collections.abc import Sequence
from typing import Any

from crunchctl.watch.scan import matches

log = logging.getLogger("crunchctl.watcher")

#: What the handler puts on the queue: ("file", path) or ("dir", path).
FILE = "file"
DIR = "dir"

#: Seconds between restart attempts of an observer whose folder is gone; doubles up to max.
RESTART_BACKOFF = 1.0
RESTART_BACKOFF_MAX = 30.0


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
                paths = [event.src_path, event.dest_path] if kind == "moved" \
                    else [event.src_path]
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


class FolderWatcher:
    """A watchdog observer on one folder that feeds ``("file"|"dir", path)`` into ``sink``.

    Args:
        folder: the folder to watch (absolute).
        patterns: file-name patterns (fnmatch, case-insensitive), e.g. ``("*.tiq",)``.
        recursive: watch sub-folders too.
        poll: None for the platform's native observer (inotify, FSEvents, ...); seconds for
            a polling observer that stat-walks the folder at that interval (network shares
            deliver no events).
        sink: the queue the handler puts paths on.
    """

    def __init__(self, folder: str, patterns: Sequence[str], recursive: bool, poll: float | None,
                 sink: queue.Queue) -> None:
        self.folder = folder
        self.patterns = tuple(patterns)
        self.recursive = recursive
        self.poll = poll
        self.sink = sink
        self.restarts = 0
        self._observer: Any = None
        self._next_attempt = 0.0
        self._backoff = RESTART_BACKOFF

    @property
    def kind(self) -> str:
        return f"polling every {self.poll:g} s" if self.poll else "file-system events"

    def _new_observer(self) -> Any:
        if self.poll:
            from watchdog.observers.polling import PollingObserver

            obs = PollingObserver(timeout=self.poll)
        else:
            from watchdog.observers import Observer

            obs = Observer()
        obs.schedule(_make_handler(self.sink, self.patterns, self.recursive), self.folder,
                     recursive=self.recursive)
        obs.daemon = True
        return obs

    def start(self) -> None:
        """Start observing.

        Raises:
            OSError: the folder cannot be watched (missing, not readable, no inotify
                watches left).
        """
        obs = self._new_observer()
        obs.start()
        self._observer = obs

    def alive(self) -> bool:
        """Whether the observer and all its emitter threads still run.

        A polling emitter stops for good when its folder disappears (share outage) while
        the observer thread itself lives on, so the emitters are checked too.
        """
        obs = self._observer
        if obs is None or not obs.is_alive():
            return False
        emitters = list(getattr(obs, "emitters", ()))
        return bool(emitters) and all(e.is_alive() for e in emitters)

    def check(self, now: float | None = None) -> bool:
        """Restart a dead observer; return True when it was restarted (the caller rescans).

        A folder that is still gone is retried later with a growing back-off; each failure
        and the restart are logged as warnings.
        """
        if self.alive():
            return False
        now = time.monotonic() if now is None else now
        if now < self._next_attempt:
            return False
        self._stop_observer()
        try:
            self.start()
        except OSError as e:
            log.warning("observer on %s stopped and cannot be restarted yet (%s); retrying "
                        "in %.0f s", self.folder, e.strerror or e, self._backoff)
            self._next_attempt = now + self._backoff
            self._backoff = min(RESTART_BACKOFF_MAX, self._backoff * 2)
            return False
        self.restarts += 1
        self._backoff = RESTART_BACKOFF
        self._next_attempt = 0.0
        log.warning("observer on %s had stopped (events while it was down are lost); "
                    "restarted (%s) and rescanning the folder", self.folder, self.kind)
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
