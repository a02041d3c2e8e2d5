"""Looking at a watched folder without watchdog: matching names, listing recordings oldest
first, and which of them are pending (not done), for ``watch``'s backlog and ``status``.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import re
import stat as _stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crunchctl.config import Settings
    from crunchctl.ledger.store import Ledger

log = logging.getLogger("crunchctl.watch")

#: One file version: (size, mtime_ns).
Version = tuple[int, int]


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether a file name matches one of the watch patterns.

    Case-insensitive (recorders on Windows shares write ``.TIQ`` too); hidden files
    (``.name``, e.g. macOS ``._name.tiq`` resource forks, rsync temporaries) never match.
    """
    if name.startswith("."):
        return False
    return _matcher(tuple(patterns))(name) is not None


@functools.lru_cache(maxsize=32)
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], object]:
    # One compiled regex for all patterns: a poll of 50,000 names calls this per name.
    joined = "|".join(f"(?:{fnmatch.translate(p.lower())})" for p in patterns)
    return re.compile(joined, re.IGNORECASE | re.DOTALL).match


def scan_folder(
    folder: str, patterns: Sequence[str], recursive: bool, forced: str | None = None
) -> list[tuple[str, int, int]]:
    """Recordings under ``folder`` with a matching file, as (item, size, mtime_ns), oldest
    first (see :func:`iter_recordings`).

    Folders and dangling links whose names match are listed too (size 0), so processing
    records their error. Hidden files and folders are skipped; a folder that cannot be
    read is logged and skipped (a share outage must not stop the watch).
    """
    return oldest_first(iter_recordings(folder, patterns, recursive, forced))


def iter_recordings(
    folder: str, patterns: Sequence[str], recursive: bool, forced: str | None = None
) -> Iterator[tuple[str, int, int]]:
    """:func:`iter_folder`'s files as recordings: a recording of several files (a SigMF
    pair) once, as its ledger item with the version of all its files (docs/formats.md)."""
    from crunchctl.formats import recording_files

    seen: set[str] = set()  # items of several files met so far (this listing only)
    for path, size, mtime in iter_folder(folder, patterns, recursive):
        files = recording_files(path, forced)
        if len(files) == 1:
            yield path, size, mtime
            continue
        item = files[0]
        if item in seen:
            continue
        seen.add(item)
        version = recording_version(item, forced)
        if version is not None:
            yield (item, *version)
        else:  # its item is not there (a meta file without its data): the file itself
            seen.discard(item)
            yield path, size, mtime


def oldest_first(files: Iterable[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) tuples by mtime, then path: the order a backlog is processed."""
    return sorted(files, key=lambda f: (f[2], f[0]))


def iter_folder(
    folder: str, patterns: Sequence[str], recursive: bool
) -> Iterator[tuple[str, int, int]]:
    """:func:`scan_folder`'s files in the order the folders list them: a caller that keeps
    few of them (a watch's rescan) holds no list of the whole folder."""
    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            listing = os.scandir(here)
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("%s: cannot list the folder: %s", here, e.strerror or e)
            continue
        with listing:
            yield from _matching(listing, here, patterns, recursive, stack)


def _matching(
    listing: Iterator[os.DirEntry],
    here: str,
    patterns: Sequence[str],
    recursive: bool,
    stack: list[str],
) -> Iterator[tuple[str, int, int]]:
    """The matching entries of one folder's listing; sub-folders go onto ``stack``."""
    while True:
        try:
            entry = next(listing)
        except StopIteration:
            return
        except OSError as e:  # the share went away while listing
            log.warning("%s: cannot list the folder: %s", here, e.strerror or e)
            return
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_dir and recursive and not entry.name.startswith("."):
                stack.append(entry.path)
            if not matches(entry.name, patterns):
                continue
            if is_dir:
                version: Version | None = (0, entry.stat(follow_symlinks=False).st_mtime_ns)
            elif entry.is_symlink() or _stat.S_ISREG(entry.stat().st_mode):
                version = entry_version(entry.path)
            else:
                continue  # a pipe or device named like a recording: reading could block
        except OSError:
            continue
        if version is not None:
            yield (entry.path, *version)


def entry_version(path: str) -> Version | None:
    """(size, mtime_ns) of a regular file; (0, mtime_ns) of a folder, a dangling link or
    anything else named like a recording (processing records its error); None if gone."""
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


def recording_version(path: str, forced: str | None = None) -> Version | None:
    """:func:`entry_version` of a recording over all its files (a SigMF pair: the summed
    sizes and the newest mtime, as the ledger stores it: ``identity.fingerprint``)."""
    from crunchctl.formats import recording_files

    version = entry_version(path)
    files = recording_files(path, forced)
    if version is None or len(files) == 1:
        return version
    from crunchctl.identity import fingerprint

    size, mtime = fingerprint(path, forced)
    return version if size is None or mtime is None else (size, mtime)


def pending_recordings(
    folder: str,
    patterns: Sequence[str],
    recursive: bool,
    ledger: Ledger | None,
    settings: Settings | None = None,
) -> list[tuple[str, str]]:
    """Recordings in a watched folder that are not done, with the reason, oldest first.

    Nothing about pending recordings is stored: this looks at the folder and asks the
    ledger which recordings are done.

    Args:
        folder: the watched folder.
        patterns: the watch's file-name patterns.
        recursive: include sub-folders.
        ledger: the ledger; None treats every recording as not done.
        settings: the watch's settings: done means done with them; None means done with
            any settings (``status`` cannot know a watcher's settings).

    Returns:
        ``(path, reason)`` per recording not done: the format's reason (``incomplete: ...``:
        still being written, or cut) or ``not done yet`` (new, changed, failed, or
        settings changed).
    """
    from crunchctl.outcome import KIND_IQ
    from crunchctl.watch.readiness import pending_reason

    forced = settings.format if settings is not None else None
    files = scan_folder(os.path.abspath(folder), patterns, recursive, forced)
    done: set[str] = set()
    if ledger is not None and files:
        from crunchctl.identity import Digests

        digest = Digests(settings) if settings is not None else None
        done = set(ledger.done_items(KIND_IQ, files, digest))
    return [(p, pending_reason(p, settings)) for p, _, _ in files if p not in done]


def plan_once(
    folder: str,
    patterns: Sequence[str],
    recursive: bool,
    settings: Settings,
    ledger: Ledger | None,
    excluded: Sequence[str] = (),
) -> list[Any]:
    """``watch --once --dry-run``: what the watch would do with each recording of the
    folder, oldest first, and why (``recordings.run.Planned``); nothing is written.
    Incomplete recordings are waited for, as the watch does (``readiness.py``)."""
    import time

    from crunchctl.recordings.run import Planned, plan_files
    from crunchctl.watch.readiness import readiness, stalled

    files = [
        (p, mtime)
        for p, _, mtime in scan_folder(
            os.path.abspath(folder), patterns, recursive, settings.format
        )
        if not p.startswith(tuple(excluded))
    ]
    waiting: dict[str, str] = {}
    for p, mtime in files:
        state = readiness(p, settings)
        if state.complete is False and not stalled(mtime, time.time(), settings.incomplete_after):
            waiting[p] = state.reason or "incomplete"
    planned = {
        x.item: x for x in plan_files([p for p, _ in files if p not in waiting], settings, ledger)
    }
    return [planned[p] if p in planned else Planned(p, "wait", waiting[p]) for p, _ in files]


class ResetFollower:
    """Finds ``reset`` rows of a watched folder's recordings written since the last look,
    so a running watch processes what ``crunchctl reset`` made due (docs/ledger.md).

    The ledger is read only when its folder listing changed (every write is a new file);
    rows are looked for from a minute before the last look, for writers on other hosts
    whose clocks run behind. Whether a found item is still due is the ledger's done rule.
    """

    #: Seconds of clock difference between hosts that are tolerated.
    SLACK = 60.0

    def __init__(self, ledger: Ledger, folder: str, recursive: bool) -> None:
        import time

        self.ledger = ledger
        self.prefix = os.path.join(folder, "")
        self.recursive = recursive
        self.since = time.time()
        self._listing: tuple[str, ...] = ()

    def _signature(self) -> tuple[str, ...]:
        try:
            with os.scandir(self.ledger.path) as it:
                return tuple(sorted(e.name for e in it if e.name.endswith(".parquet")))
        except OSError:
            return ()

    def items(self) -> list[str]:
        """Recordings of the folder reset since the last call (may repeat a few)."""
        import datetime as _dt
        import time

        import polars as pl

        listing = self._signature()
        if listing == self._listing:
            return []
        self._listing = listing
        now = time.time()
        since = _dt.datetime.fromtimestamp(self.since - self.SLACK, _dt.timezone.utc)
        self.since = now
        where = (
            (pl.col("status") == "reset")
            & (pl.col("finished") >= since)
            & pl.col("item").str.starts_with(self.prefix)
        )
        frame = self.ledger.read(["item"], where, dedup=False)
        items = frame["item"].unique().to_list()
        if not self.recursive:
            items = [p for p in items if os.path.dirname(p) == self.prefix[:-1]]
        return sorted(items)
