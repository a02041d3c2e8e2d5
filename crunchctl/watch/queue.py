"""The recordings a watch knows about, and which of them are ready, in what order.

Paths come in (events, scans, timers) as *dirty*; :meth:`RecordingQueue.evaluate` moves each
to *waiting* (incomplete, settling: re-checked on a timer) or *ready* (oldest first); the
session takes ready ones, marks them *in flight*, and reports back when they finish. A
version (size, mtime) is attempted once per session; a new version is processed again.

Readiness: a recording its format proves complete (``.tiq``: every byte its header
announces) must then keep its size and mtime for ``readiness.QUIET`` seconds; one its format
cannot judge must keep them for ``settle`` seconds; one seen incomplete is re-checked by a
cheap stat every ``RECHECK_MIN`` seconds while it grows, backing off to ``RECHECK_MAX``.
"""

from __future__ import annotations

import logging
import math
import os
import stat as _stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crunchctl.formats import recording_files
from crunchctl.watch.readiness import (
    QUIET,
    RECHECK_MAX,
    RECHECK_MIN,
    SettleTracker,
    readiness,
    stalled,
    written_long_ago,
)
from crunchctl.watch.scan import Version, entry_version, matches, recording_version, scan_folder

if TYPE_CHECKING:
    from crunchctl.config import Settings
    from crunchctl.ledger.store import Ledger
    from crunchctl.watch.options import WatchOptions
    from crunchctl.watch.scan import ResetFollower

log = logging.getLogger("crunchctl.watch")

#: Events for one path are evaluated at most this often (a writer fires thousands).
MIN_GAP = 0.05
#: Paths evaluated per loop turn (a big backlog must not delay the first submission).
EVAL_BATCH = 256
NEVER = math.inf
#: Reasons of recordings that are as good as queued (not shown as pending).
_QUIET_REASONS = ("complete", "settling")


@dataclass
class Waiting:
    """A recording that is not ready yet, and when to look at it again."""

    version: Version
    reason: str
    next_check: float
    interval: float = RECHECK_MIN
    last_check: float = 0.0
    checks: int = 0


#: Bytes read from each end of a recording to tell a same-size, same-mtime replacement.
SAMPLE = 65536


def _sample(path: str) -> bytes:
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(SAMPLE))
        size = os.fstat(f.fileno()).st_size
        if size > SAMPLE:
            f.seek(max(SAMPLE, size - SAMPLE))
            h.update(f.read(SAMPLE))
    return h.digest()


def _identity(ctime_ns: int, sample: bytes) -> bytes:
    """ctime (8 bytes) and sample digest in one bytes object."""
    return (ctime_ns & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "little") + sample


_VERSION = struct.Struct("<qq")  # size, mtime_ns


class Attempted:
    """The version attempted or done per recording, and the identity (``_identity``) of
    the files this watch processed, packed in one bytes object per recording.

    A watch keeps one entry per recording it has seen for as long as it runs (days, tens
    of thousands of recordings): one small object each, not a tuple, two integers and a
    second dict entry (docs/ARCHITECTURE.md, flat memory). Reads give the version back as
    a ``(size, mtime_ns)`` tuple.
    """

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, path: object) -> bool:
        return path in self._d

    def get(self, path: str, default: Version | None = None) -> Version | None:
        packed = self._d.get(path)
        return default if packed is None else _VERSION.unpack_from(packed)

    def __setitem__(self, path: str, version: Version) -> None:
        """Set the version; a known identity is kept (``set_identity`` changes it)."""
        old = self._d.get(path)
        self._d[path] = _VERSION.pack(*version) + (old[_VERSION.size :] if old else b"")

    def __delitem__(self, path: str) -> None:
        del self._d[path]

    def pop(self, path: str, default: Version | None = None) -> Version | None:
        packed = self._d.pop(path, None)
        return default if packed is None else _VERSION.unpack_from(packed)

    def identity(self, path: str) -> bytes | None:
        packed = self._d.get(path)
        if packed is None or len(packed) <= _VERSION.size:
            return None
        return packed[_VERSION.size :]

    def set_identity(self, path: str, identity: bytes | None) -> None:
        """Set (or with None, drop) the identity of a recording with a version."""
        packed = self._d.get(path)
        if packed is not None:
            self._d[path] = packed[: _VERSION.size] + (identity or b"")


class RecordingQueue:
    """Per-path state of one watch: dirty, waiting, ready, in flight, attempted.

    Args:
        options: patterns, recursion, settle time, once.
        settings: the run's settings (formats read with them).
        wanted: whether a path belongs to this watch (not our own products).
        on_waiting: called when a recording starts waiting for a reason worth showing.
    """

    def __init__(
        self,
        options: WatchOptions,
        settings: Settings,
        *,
        wanted: Callable[[str], bool],
        on_waiting: Callable[[str, str], None],
    ) -> None:
        self.options = options
        self.settings = settings
        self.wanted = wanted
        self.on_waiting = on_waiting
        # Version attempted or done; for the files this watch processed also their ctime
        # and sample digest: tells a replacement with the same size and mtime (``cp -p``,
        # ``rsync -t``) from a repeated event.
        self.attempted = Attempted()
        self.ready: dict[str, Version] = {}  # insertion order = work order
        self.inflight: dict[str, Version] = {}
        self.recheck: set[str] = set()  # changed while in flight
        self.waiting: dict[str, Waiting] = {}
        self.dirty: dict[str, None] = {}  # to evaluate now, ordered
        self.quiet = SettleTracker(0.0 if options.once else QUIET)
        self.settle = SettleTracker(options.settle)
        self.incomplete: set[str] = set()  # ready as they are (--incomplete-after)

    # ------------------------------------------------------------------ in

    def mark(self, path: str) -> None:
        """Look at ``path`` on the next turn (a SigMF meta file: its pair's data file, the
        one ledger item of the pair, docs/formats.md)."""
        from crunchctl.formats import item_path

        self.dirty.setdefault(item_path(path, self.settings.format), None)

    def known(self, path: str) -> bool:
        return (
            path in self.attempted
            or path in self.inflight
            or path in self.ready
            or path in self.waiting
        )

    def scan_dir(self, folder: str) -> None:
        for p, _, _ in scan_folder(
            folder, self.options.patterns, self.options.recursive, self.settings.format
        ):
            if self.wanted(p):
                self.mark(p)

    # ------------------------------------------------------------------ evaluating

    def evaluate_due(self, now: float) -> None:
        """Evaluate waiting recordings whose timer is due and up to ``EVAL_BATCH`` dirty ones."""
        for path, entry in list(self.waiting.items()):
            if entry.next_check <= now:
                self.mark(path)
        for _ in range(min(EVAL_BATCH, len(self.dirty))):
            path = next(iter(self.dirty))
            del self.dirty[path]
            self.evaluate(path, now)

    def evaluate(self, path: str, now: float) -> None:
        """Decide what to do with a path that had an event, a scan hit or a timer."""
        prev = self.waiting.get(path)
        if prev is not None and now < prev.last_check + MIN_GAP:
            # Coalesce a writer's stream of events: look again a little later.
            prev.next_check = min(prev.next_check, prev.last_check + MIN_GAP)
            return
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if os.path.islink(path):  # a dangling link named like a recording: its error
                self._bad_entry(path)  # goes to the ledger
            else:
                self.forget(path)
            return
        except OSError as e:
            self._wait(path, (-1, -1), f"cannot read: {e.strerror or e}", now, None)
            return
        if _stat.S_ISDIR(st.st_mode):
            if self.options.recursive:
                self.scan_dir(path)
            if matches(os.path.basename(path), self.options.patterns):
                self._bad_entry(path)  # a folder named like a recording
            return
        if not _stat.S_ISREG(st.st_mode):
            return
        if path in self.inflight:
            self.recheck.add(path)
            return
        version = (st.st_size, st.st_mtime_ns)
        if len(recording_files(path, self.settings.format)) > 1:
            # A SigMF pair: an edit of its meta file alone is a new version too.
            version = recording_version(path, self.settings.format) or version
        if self.attempted.get(path) == version:
            if not self._replaced(path, st.st_ctime_ns):
                self.forget(path)  # this version was done already: a repeated event
                return
            log.info(
                "%s: replaced by another file of the same size and mtime; processing it again", path
            )
            del self.attempted[path]
        if self.ready.get(path) == version:
            return
        self.ready.pop(path, None)
        state = readiness(path, self.settings)
        if state.complete is False:
            self.quiet.forget(path)
            if stalled(version[1], time.time(), self.settings.incomplete_after):
                # The recorder stopped writing it: process what is there (readiness.py).
                self.waiting.pop(path, None)
                self.incomplete.add(path)
                self.ready[path] = version
                return
            self._wait(path, version, state.reason or "incomplete", now, None)
            return
        self.incomplete.discard(path)
        tracker = self.quiet if state.complete else self.settle
        settled = tracker.observe(path, version[0], version[1], now)
        if not settled and tracker is self.quiet:
            # Last written longer ago than the quiet time: no copy tool is about to touch it.
            settled = written_long_ago(version[1], time.time())
        if settled:
            tracker.forget(path)
            self.waiting.pop(path, None)
            self.ready[path] = version
        else:
            what = (
                "complete, checking it stays unchanged"
                if tracker is self.quiet
                else f"settling ({self.options.settle:g} s unchanged needed)"
            )
            self._wait(path, version, what, now, tracker.due(path))

    def _bad_entry(self, path: str) -> None:
        """Queue a path that is not a regular file once, so processing records its error."""
        version = entry_version(path)
        if version is None:
            return
        if self.attempted.get(path) != version and path not in self.inflight:
            self.waiting.pop(path, None)
            self.ready[path] = version

    def _wait(
        self, path: str, version: Version, reason: str, now: float, settle_due: float | None
    ) -> None:
        prev = self.waiting.get(path)
        if not reason.startswith(_QUIET_REASONS) and (
            prev is None or prev.reason.startswith(_QUIET_REASONS)
        ):
            log.info("%s: waiting, %s", path, reason)
            self.on_waiting(path, reason)
        if prev is None:
            entry = Waiting(version, reason, now, RECHECK_MIN, now, 1)
        else:
            entry = prev
            entry.interval = (
                RECHECK_MIN if entry.version != version else min(RECHECK_MAX, entry.interval * 2)
            )
            entry.version, entry.reason = version, reason
            entry.last_check = now
            entry.checks += 1
        # --once judges what is there now: incomplete recordings and files that kept
        # changing over one settle interval are reported as pending, not waited for.
        final = self.options.once and (reason.startswith("incomplete") or entry.checks >= 2)
        if final:
            entry.next_check = NEVER
        elif settle_due is not None:
            entry.next_check = max(settle_due, now + 0.001)
        else:
            entry.next_check = now + entry.interval
        self.waiting[path] = entry

    def forget(self, path: str) -> None:
        self.incomplete.discard(path)
        self.waiting.pop(path, None)
        self.ready.pop(path, None)
        self.quiet.forget(path)
        self.settle.forget(path)

    # ------------------------------------------------------------------ out

    def take_ready(self) -> tuple[str, Version] | None:
        """The oldest ready recording still as it was judged (changed ones are re-evaluated)."""
        while self.ready:
            path, version = next(iter(self.ready.items()))
            del self.ready[path]
            if recording_version(path, self.settings.format) == version:
                return path, version
            self.mark(path)  # changed or gone since it was judged ready
        return None

    def started(self, path: str, version: Version) -> None:
        self.inflight[path] = version
        self.attempted[path] = version
        try:
            self.attempted.set_identity(path, _identity(os.stat(path).st_ctime_ns, _sample(path)))
        except OSError:
            self.attempted.set_identity(path, None)

    def _replaced(self, path: str, ctime_ns: int) -> bool:
        """Whether a file with the size and mtime this watch processed is another file.

        A new ctime alone is not enough (a chmod sets it too): then the first and last
        ``SAMPLE`` bytes decide. Recordings done before this watch started have no
        identity here: the ledger knows size and mtime only.
        """
        known = self.attempted.identity(path)
        if known is None or known[:8] == _identity(ctime_ns, b""):
            return False
        try:
            sample = _sample(path)
        except OSError:
            return False
        self.attempted.set_identity(path, _identity(ctime_ns, sample))
        return sample != known[8:]

    def finished(self, path: str, version: Version | None) -> None:
        """A recording's outcome is in; ``version`` is the one the worker actually read."""
        version = self.inflight.pop(path, None) if version is None else version
        self.inflight.pop(path, None)
        if version is not None:
            self.attempted[path] = version
        if path in self.recheck:
            self.recheck.discard(path)
            self.mark(path)

    def cancelled(self, path: str) -> None:
        self.inflight.pop(path, None)
        self.attempted.pop(path, None)

    def pick_up_resets(self, follower: ResetFollower, ledger: Ledger) -> list[str]:
        """Queue recordings that ``crunchctl reset`` made due since the last call.

        Returns:
            The recordings queued again.
        """
        from crunchctl.recordings.run import split_due

        found = [p for p in follower.items() if p not in self.inflight]
        if not found:
            return []
        due, _ = split_due(found, self.settings, ledger)
        for p in due:
            self.retry(p)
        return due

    def retry(self, path: str) -> None:
        """Try this recording again even if its version was attempted."""
        self.attempted.pop(path, None)
        self.mark(path)

    # ------------------------------------------------------------------ views

    def pending(self) -> list[tuple[str, str]]:
        """(path, reason) of recordings waiting for a reason worth showing."""
        return [
            (p, e.reason) for p, e in self.waiting.items() if not e.reason.startswith("complete")
        ]

    def queued(self) -> int:
        """Ready, about to be looked at, or complete and in their short quiet check."""
        quiet = sum(1 for e in self.waiting.values() if e.reason.startswith("complete"))
        return len(self.ready) + quiet + len(self.dirty)

    def next_timer(self, now: float, horizon: float) -> float:
        if self.dirty:
            return now
        return min([horizon, *(e.next_check for e in self.waiting.values())])

    def drained(self) -> bool:
        """Nothing left to evaluate, submit or wait for (``--once`` is done)."""
        return (
            not self.dirty
            and not self.ready
            and not self.inflight
            and all(e.next_check == NEVER for e in self.waiting.values())
        )
