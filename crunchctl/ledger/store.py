"""The ledger: every attempt at every item, in Parquet files under one folder (DESIGN section 5).

This is the only module that imports polars or knows the Parquet layout; commands and the
engine talk to ``Ledger`` with ``Outcome`` records and get plain Python values or polars
frames back. Parsing the legacy state files lives in ``legacy.py``.

Storage layout of a ledger folder:

- ``part-<UTC yyyymmddTHHMMSS.ffffff>-<host>-<pid>-<uuid8>.parquet``: one file per flush
  (Parquet cannot be appended to, pola-rs/polars#21880). Names are unique per process and
  flush, so several processes can write one ledger at once without losing anything.
- ``compact-<UTC ts>-<uuid8>.parquet``: results of compaction (below).
- ``.<name>.tmp``: a file being written. Every file is written under a hidden temporary name
  in the same folder, fsynced, then ``os.replace``-d into place (polars#17358: write_parquet
  truncates in place), so readers never see half a file. Stale temporaries older than an
  hour are removed by compaction; a part file's temporary left by a process of this host
  that no longer runs (``kill -9`` during a flush) is removed by the next writer's first
  flush (issue 8: no temp files accumulate).
- ``.compact.lock``: ``fcntl.flock`` target. A compaction holds it exclusively; readers
  hold it shared while they list and read, so no file is deleted under them.

Rows (``SCHEMA``): one per attempt. ``row_id`` (uuid4 hex) is unique per row and is the
dedup key; ``seq`` increases monotonically within a process (it is ``time.time_ns()``
forced upwards, so it also orders rows of different processes roughly) and breaks ties of
``finished``. Timestamps are UTC microseconds. ``Outcome.extra`` is not stored.

Reading: the folder is listed here (both prefixes) and the list is handed to polars; no hive
partitioning, no glob by polars. Each file is read with the full ``SCHEMA``: columns an
older file lacks are inserted as nulls (``missing_columns="insert"``), columns this version
does not know are dropped (``extra_columns="ignore"``); a file whose types differ is read on
its own and cast (schema evolution). One damaged file never fails a read: after a failed
fast path (one scan over all files) every file is read on its own, unreadable ones are
skipped with a message in ``Ledger.warnings``; they are never deleted, moved or compacted.
Writers never take a lock. Where the lock file cannot be used (read-only folder) a reader
goes lock-free: a file vanishing between listing and reading, or a compact file appearing
meanwhile (another process compacted), makes the read start again from a fresh listing.

Compaction: after a flush, when there are more than ``COMPACT_AFTER_PARTS`` part files, the
writer takes ``.compact.lock`` without blocking (busy: skip), reads the part files plus the
compact files that are not much bigger than them (size tiers, so a million-row file is not
rewritten every few hundred records), drops duplicate ``row_id``s, writes one new compact
file atomically and then deletes exactly the inputs it read. A crash between the write and
the deletes leaves duplicate rows, which every read removes by ``row_id``; the latest row per
item is the same either way. ``Ledger.compact()`` merges everything into one file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import logging
import os
import pathlib
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from crunchctl import __version__
from crunchctl.errors import LedgerError
from crunchctl.run.outcome import ERROR, KIND_BATCH, KIND_IQ, NO_DATA, OK, RESET, STATUSES, Outcome

log = logging.getLogger("crunchctl.ledger")

_UTC_US = pl.Datetime("us", "UTC")

SCHEMA: dict[str, pl.DataType] = {
    "row_id": pl.String(),
    "seq": pl.Int64(),
    "item": pl.String(),
    "kind": pl.String(),
    "source": pl.String(),
    "status": pl.String(),
    "started": _UTC_US,
    "finished": _UTC_US,
    "duration_s": pl.Float64(),
    "size": pl.Int64(),
    "mtime_ns": pl.Int64(),
    "settings_digest": pl.String(),
    "products": pl.List(pl.String()),
    "error": pl.String(),
    "version": pl.String(),
    "host": pl.String(),
    "pid": pl.Int64(),
}
_COLUMNS = tuple(SCHEMA)
# Rows are buffered as tuples with timestamps as integer microseconds; cast when flushed.
_BUFFER_SCHEMA = {k: (pl.Int64() if v == _UTC_US else v) for k, v in SCHEMA.items()}

#: settings_digest of imported legacy rows: matches any settings (DESIGN section 5).
LEGACY_DIGEST = "legacy"
#: More part files than this after a flush triggers a compaction.
COMPACT_AFTER_PARTS = 32
#: A compact file joins an automatic compaction when it is at most this many times the
#: size of the inputs chosen so far (binary-counter tiers: each row is rewritten
#: O(log rows) times, and there are O(log rows) compact files).
_TIER_RATIO = 1.0
_READ_RETRIES = 10
_READ_LOCK_WAIT_S = 30.0
_STALE_TMP_S = 3600.0
# ``.part-<stamp>-<host tag>-<pid>-<uuid8>.parquet.tmp``: who wrote a part file's temporary.
_PART_TMP_RE = re.compile(r"^\.part-[0-9T.]+-([A-Za-z0-9._]+)-(\d+)-[0-9a-f]{8}\.parquet\.tmp$")
_LISTDIR_MIN = 256  # products queried in one folder before it is listed instead
_PART_PREFIX = "part-"
_COMPACT_PREFIX = "compact-"
_SUFFIX = ".parquet"
_LOCK_NAME = ".compact.lock"
_IMPORT_ERROR_TEXT = "imported from legacy progress file"

_HOSTNAME = socket.gethostname() or "unknown"
_HOST_TAG = re.sub(r"[^A-Za-z0-9.]+", "_", _HOSTNAME)[:64]  # for file names
_seq_lock = threading.Lock()
_last_seq = 0


def _next_seq() -> int:
    global _last_seq
    with _seq_lock:
        _last_seq = max(_last_seq + 1, time.time_ns())
        return _last_seq


def _us(seconds: float) -> int:
    return int(round(seconds * 1_000_000))


def _stamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%f")


def _iso(value: _dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")


def default_ledger_path() -> pathlib.Path:
    """Where the ledger lives when ``--ledger`` is not given.

    Returns:
        ``$CRUNCHCTL_STATE_DIR/ledger`` when that variable is set and not empty, else
        ``<platformdirs user_state_path>/ledger``. Nothing is created.
    """
    state = os.environ.get("CRUNCHCTL_STATE_DIR", "").strip()
    if state:
        return pathlib.Path(state).expanduser() / "ledger"
    from platformdirs import PlatformDirs

    return PlatformDirs("crunchctl", appauthor=False).user_state_path / "ledger"


class Ledger:
    """A ledger folder: buffered appends, reads that tolerate damage and concurrent writers.

    Use it as a context manager (or call ``close``): buffered rows are written on exit.

    Args:
        path: the ledger folder.
        flush_every: buffered rows that trigger a flush (one new part file).
        create: create the folder now. With ``create=False`` a missing folder reads as an
            empty ledger and is only created if something is flushed.

    Raises:
        LedgerError: the path is a file, or the folder cannot be created or written.
    """

    def __init__(
        self, path: str | os.PathLike, *, flush_every: int = 50, create: bool = True
    ) -> None:
        if flush_every < 1:
            raise ValueError("flush_every must be at least 1")
        self.path = pathlib.Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
        self.flush_every = flush_every
        self.warnings: list[str] = []
        self._buffer: list[tuple] = []
        self._lock = threading.RLock()
        self._damaged: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) when found
        self._swept = False  # dead writers' temporaries removed (first flush)
        if self.path.exists() and not self.path.is_dir():
            raise LedgerError(f"ledger path {self.path} is a file, not a folder")
        if create:
            self._ensure_folder()

    # ------------------------------------------------------------------ writing

    def record(self, outcome: Outcome) -> None:
        """Buffer one attempt; every ``flush_every`` rows the buffer is flushed."""
        row = _row(outcome)
        with self._lock:
            self._buffer.append(row)
            if len(self._buffer) >= self.flush_every:
                self._flush_locked()

    def record_many(self, outcomes: Iterable[Outcome]) -> None:
        """Buffer many attempts (flushing every ``flush_every`` rows, as ``record`` does)."""
        for outcome in outcomes:
            self.record(outcome)

    def flush(self) -> None:
        """Write the buffered rows as one new part file, atomically; then maybe compact.

        Raises:
            LedgerError: the file cannot be written (the rows stay buffered).
        """
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        """Flush; the ledger can still be used afterwards."""
        self.flush()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()
            return
        # Keep the original exception (an interrupt must still exit 130); report ours.
        try:
            self.flush()
        except LedgerError as err:
            log.error("%s", err)

    def _flush_locked(self) -> None:
        if not self._buffer:
            return
        frame = _frame_from_rows(self._buffer)
        self._ensure_folder()
        if not self._swept:
            self._swept = True
            self._remove_stale_tmp()
        unique = f"{_HOST_TAG}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        name = f"{_PART_PREFIX}{_stamp()}-{unique}{_SUFFIX}"
        self._write_atomic(frame, name)
        # The file is in place: these rows must never be written again.
        self._buffer = []
        try:
            self._maybe_compact()
        except Exception as exc:  # maintenance only: a flush that landed is a success
            log.warning("ledger %s: compaction skipped: %s", self.path, exc)

    def _ensure_folder(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise LedgerError(f"ledger path {self.path} is a file, not a folder") from None
        except OSError as exc:
            raise LedgerError(
                f"cannot create ledger folder {self.path}: {exc.strerror or exc}"
            ) from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise LedgerError(f"ledger folder {self.path} is not writable")

    def _write_atomic(self, frame: pl.DataFrame, name: str) -> pathlib.Path:
        final = self.path / name
        tmp = self.path / f".{name}.tmp"
        try:
            with open(tmp, "wb") as fh:
                frame.write_parquet(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            _unlink_quietly(tmp)
            raise LedgerError(f"cannot write ledger file {final}: {exc.strerror or exc}") from None
        except pl.exceptions.PolarsError as exc:
            # polars reports a failed write of the file (a full disk: ENOSPC) as a
            # ComputeError "... underlying IO error: <reason>", not as OSError (issue 8).
            _unlink_quietly(tmp)
            text = " ".join(str(exc).split())
            reason = text.split("underlying IO error: ", 1)[-1][:200]
            raise LedgerError(f"cannot write ledger file {final}: {reason}") from None
        except BaseException:
            _unlink_quietly(tmp)
            raise
        _fsync_dir(self.path)
        return final

    # ------------------------------------------------------------------ compaction

    def compact(self) -> None:
        """Merge all readable files into one compact file (waits for a running compaction)."""
        with self._lock:
            self._flush_locked()
        self._compact(full=True, wait=True)

    def _maybe_compact(self) -> None:
        parts = [f for f in self._list_files() if f[0].name.startswith(_PART_PREFIX)]
        if len(parts) > COMPACT_AFTER_PARTS:
            self._compact(full=False, wait=False)

    def _compact(self, *, full: bool, wait: bool) -> None:
        if not self.path.is_dir():
            return
        lock_path = self.path / _LOCK_NAME
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise LedgerError(f"cannot open {lock_path}: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                return  # another process is compacting
            self._compact_locked(full)
        finally:
            os.close(fd)  # releases the flock

    def _compact_locked(self, full: bool) -> None:
        self._remove_stale_tmp()
        listing = [f for f in self._list_files() if not self._is_known_damaged(*f)]
        parts = [(p, s) for p, s in listing if p.name.startswith(_PART_PREFIX)]
        compacts = sorted(
            ((p, s) for p, s in listing if p.name.startswith(_COMPACT_PREFIX)), key=lambda f: f[1]
        )
        if full:
            inputs = parts + compacts
            if len(inputs) < 2:
                return
        else:
            if len(parts) <= COMPACT_AFTER_PARTS:
                return  # someone compacted while we waited for the listing
            inputs, total = list(parts), sum(s for _, s in parts)
            for p, s in compacts:
                if s > _TIER_RATIO * total:
                    break
                inputs.append((p, s))
                total += s
        frame, read_ok = self._read_files([p for p, _ in inputs], None, None)
        if read_ok is None:
            return  # an input vanished: somebody else changed the folder; try next time
        if len(read_ok) < 2:
            return  # nothing to merge (the others were damaged)
        frame = _dedup(frame)
        name = f"{_COMPACT_PREFIX}{_stamp()}-{uuid.uuid4().hex[:8]}{_SUFFIX}"
        self._write_atomic(frame, name)
        for p in read_ok:  # damaged inputs were not read, so they are not deleted
            _unlink_quietly(p)
        _fsync_dir(self.path)
        log.debug("ledger %s: compacted %d files into %s", self.path, len(read_ok), name)

    def _remove_stale_tmp(self) -> None:
        """Remove temporaries older than an hour, and part temporaries whose writer (a
        process of this host) is gone: nobody will ever rename them."""
        cutoff = time.time() - _STALE_TMP_S
        try:
            with os.scandir(self.path) as it:
                for entry in it:
                    if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                        try:
                            if entry.stat().st_mtime < cutoff or _dead_writer(entry.name):
                                os.unlink(entry.path)
                        except OSError:
                            pass
        except OSError:
            pass

    # ------------------------------------------------------------------ reading

    def _list_files(self) -> list[tuple[pathlib.Path, int]]:
        try:
            with os.scandir(self.path) as it:
                found = []
                for entry in it:
                    name = entry.name
                    if not name.endswith(_SUFFIX) or not (
                        name.startswith(_PART_PREFIX) or name.startswith(_COMPACT_PREFIX)
                    ):
                        continue
                    try:
                        if entry.is_file():
                            found.append((pathlib.Path(entry.path), entry.stat().st_size))
                    except FileNotFoundError:
                        continue
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            raise LedgerError(f"ledger path {self.path} is a file, not a folder") from None
        except OSError as exc:
            raise LedgerError(
                f"cannot read ledger folder {self.path}: {exc.strerror or exc}"
            ) from None
        found.sort()
        return found

    def _is_known_damaged(self, path: pathlib.Path, size: int) -> bool:
        known = self._damaged.get(str(path))
        if known is None:
            return False
        try:
            st = path.stat()
        except OSError:
            return True
        return known == (st.st_size, st.st_mtime_ns)

    def _mark_damaged(self, path: pathlib.Path, exc: BaseException) -> None:
        try:
            st = path.stat()
            self._damaged[str(path)] = (st.st_size, st.st_mtime_ns)
        except OSError:
            return
        message = f"ledger file {path} is damaged ({_damage_reason(path, exc)}): skipped"
        if message not in self.warnings:
            self.warnings.append(message)
        log.warning("%s", message)

    def _read_files(
        self, files: list[pathlib.Path], columns: list[str] | None, predicate: pl.Expr | None
    ) -> tuple[pl.DataFrame, list[pathlib.Path] | None]:
        """Read ``files``; returns (rows, files read) or (empty, None) if a file vanished."""
        schema = {c: SCHEMA[c] for c in (columns or _COLUMNS)}
        if not files:
            return pl.DataFrame(schema=schema), []
        try:
            return _scan(files, columns, predicate).collect(), files
        except Exception:
            if any(not p.exists() for p in files):
                return pl.DataFrame(schema=schema), None
        frames, read_ok = [], []
        for p in files:
            try:
                frames.append(_read_one(p, columns, predicate))
                read_ok.append(p)
            except Exception as exc:
                if not p.exists():
                    return pl.DataFrame(schema=schema), None
                self._mark_damaged(p, exc)
        if not frames:
            return pl.DataFrame(schema=schema), read_ok
        return pl.concat(frames, how="vertical", rechunk=False), read_ok

    @contextlib.contextmanager
    def _read_lock(self):
        """Shared flock on ``.compact.lock`` while listing and reading: no compaction can
        delete files under a reader. Yields False (lock-free, retrying reads) when the lock
        file cannot be opened (read-only folder) or a compaction holds it too long."""
        lock_path = self.path / _LOCK_NAME
        fd = None
        for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
            try:
                fd = os.open(lock_path, flags, 0o666)
                break
            except OSError:
                continue
        if fd is None:
            yield False
            return
        try:
            deadline = time.monotonic() + _READ_LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    locked = True
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        locked = False
                        break
                    time.sleep(0.01)
                except OSError:
                    locked = False
                    break
            yield locked
        finally:
            os.close(fd)

    def _read_consistent(
        self, columns: list[str] | None, predicate: pl.Expr | None, locked: bool
    ) -> pl.DataFrame:
        for attempt in range(_READ_RETRIES):
            listing = self._list_files()
            files = [p for p, s in listing if not self._is_known_damaged(p, s)]
            frame, read_ok = self._read_files(files, columns, predicate)
            if locked and read_ok is not None:
                return frame
            if read_ok is not None:
                # Lock-free: a listing taken while a compaction renames its output in and
                # deletes its inputs may show neither; a compact file that is new now
                # reveals that, so read again.
                before = {p.name for p, _ in listing}
                if not any(
                    p.name.startswith(_COMPACT_PREFIX) and p.name not in before
                    for p, _ in self._list_files()
                ):
                    return frame
            time.sleep(0.02 * (attempt + 1))  # a file vanished: let the compaction finish
        raise LedgerError(f"ledger {self.path} kept changing while being read; try again")

    def _read(
        self,
        columns: list[str] | None = None,
        predicate: pl.Expr | None = None,
        *,
        dedup: bool = True,
    ) -> pl.DataFrame:
        """All rows of all readable files plus the buffer, deduplicated by ``row_id``.

        ``dedup=False`` is for callers that only look at the latest row per item: a
        duplicate row (compaction overlap) cannot change that, and ``row_id`` is the
        costliest column to read.
        """
        if columns is not None:
            wanted = set(columns) | ({"row_id"} if dedup else set())
            columns = [c for c in _COLUMNS if c in wanted]
        with self._read_lock() as locked:
            frame = self._read_consistent(columns, predicate, locked)
        with self._lock:
            buffered = _frame_from_rows(self._buffer) if self._buffer else None
        if buffered is not None:
            lf = buffered.lazy()
            if predicate is not None:
                lf = lf.filter(predicate)
            if columns is not None:
                lf = lf.select(columns)
            frame = pl.concat([frame, lf.collect()], how="vertical", rechunk=False)
        return _dedup(frame) if dedup else frame

    def scan(self) -> pl.LazyFrame:
        """Every row (readable files and unflushed buffer), deduplicated by ``row_id``.

        The rows are read now (so damaged or vanishing files are dealt with here) and
        returned as a LazyFrame with ``SCHEMA``; an empty ledger gives an empty frame.
        """
        return self._read().lazy()

    def latest(self, kind: str | None = None) -> pl.DataFrame:
        """The latest row per ``(kind, item)``, by ``(finished, seq)``.

        Args:
            kind: only this kind (``iq``, ``batch``); None for all.
        """
        predicate = None if kind is None else pl.col("kind") == kind
        return _latest(self._read(predicate=predicate, dedup=False))

    def has_source(self, source: str) -> bool:
        """Whether any row has exactly this ``source`` (a legacy import happens once)."""
        return self._read(["source"], pl.col("source") == source, dedup=False).height > 0

    def sources(self) -> list[str]:
        """The distinct sources of all rows, sorted (cheap: reads one column)."""
        frame = self._read(["source"], dedup=False)
        return sorted(s for s in frame["source"].unique().to_list() if s is not None)

    def done_items(
        self,
        kind: str,
        candidates: Sequence[tuple[str, int | None, int | None]],
        settings_digest: str | None,
        *,
        check_products: bool = True,
    ) -> set[str]:
        """Which candidates are done, i.e. need no new attempt (DESIGN section 5).

        An item is done when its latest row for ``(kind, item)`` is ``ok``, with the same
        size and mtime_ns (None matches None), the same settings digest (or the legacy
        digest, which matches anything), and, with ``check_products``, all its products exist.

        Args:
            kind: ``iq`` or ``batch``.
            candidates: ``(item, size, mtime_ns)`` per item.
            settings_digest: digest of the current product-shaping settings; None accepts
                any settings (``status`` asks "done at all?", not "done with mine?").
            check_products: look at the file system for the products.

        Returns:
            The done items; every other candidate is due.
        """
        if not candidates:
            return set()
        items, sizes, mtimes = zip(*candidates)
        cand = pl.DataFrame(
            {"item": items, "_size": sizes, "_mtime": mtimes},
            schema={"item": pl.String(), "_size": pl.Int64(), "_mtime": pl.Int64()},
        ).unique(subset="item", keep="last")
        columns = ["item", "kind", "status", "finished", "seq", "size", "mtime_ns",
                   "settings_digest", "products"]
        predicate = (pl.col("kind") == kind) & pl.col("item").is_in(cand["item"].implode())
        latest = _latest(self._read(columns, predicate, dedup=False))
        passed = latest.join(cand, on="item", how="inner").filter(
            (pl.col("status") == OK)
            & pl.col("size").eq_missing(pl.col("_size"))
            & pl.col("mtime_ns").eq_missing(pl.col("_mtime"))
            & (
                pl.lit(settings_digest is None)
                | (pl.col("settings_digest") == (settings_digest or ""))
                | (pl.col("settings_digest") == LEGACY_DIGEST)
            )
        )
        if not check_products:
            return set(passed["item"].to_list())
        items, products = passed["item"].to_list(), passed["products"].to_list()
        exists = _exists_checker(p for ps in products if ps for p in ps)
        return {item for item, ps in zip(items, products) if not ps or all(map(exists, ps))}

    def status(
        self,
        *,
        since: float | None = None,
        item_glob: str | None = None,
        source: str | None = None,
        errors_only: bool = False,
        latest_errors: int = 10,
    ) -> dict[str, Any]:
        """Totals for ``crunchctl status`` (DESIGN section 8), JSON-serialisable.

        Filters select attempts (rows): ``since`` (UNIX seconds) keeps rows finished at or
        after it; ``item_glob`` is an fnmatch pattern, matched against the last path
        component when it contains no ``/`` and against the whole item otherwise;
        ``source`` matches exactly, or as a prefix before ``:`` (``watch`` matches
        ``watch:/data``), or as a glob when it contains ``*?[``. ``errors_only`` keeps the
        items whose latest status is ``error``. Items are counted by their latest status
        among the selected rows. Throughput counts ``ok`` attempts per hour between the
        first and last selected attempt, leaving out ``reset`` and ``import:`` rows.

        Returns:
            ``{"ledger", "rows", "items", "by_status", "attempts_by_status", "by_source",
            "first_activity", "last_activity", "throughput_per_hour", "latest_errors",
            "warnings"}``; ``by_status`` and ``attempts_by_status`` always list every status.
        """
        predicate = _filters(since=since, item_glob=item_glob, source=source)
        columns = ["row_id", "seq", "item", "kind", "source", "status", "finished", "error"]
        rows = self._read(columns, predicate)
        latest = _latest(rows)
        if errors_only:
            latest = latest.filter(pl.col("status") == ERROR)
            rows = rows.join(latest.select("kind", "item"), on=["kind", "item"], how="semi")

        def counts(frame: pl.DataFrame, key: str) -> dict[str, int]:
            out = dict.fromkeys(STATUSES, 0)
            for value, n in frame.group_by(key).len().iter_rows():
                out[value] = int(n)
            return out

        by_source: dict[str, dict[str, int]] = {}
        for src, status, n in (
            latest.group_by("source", "status").len().sort("source", "status").iter_rows()
        ):
            by_source.setdefault(src, dict.fromkeys(STATUSES, 0))[status] = int(n)

        first = rows["finished"].min() if rows.height else None
        last = rows["finished"].max() if rows.height else None
        work = rows.filter(
            (pl.col("status") != RESET) & ~pl.col("source").str.starts_with("import:")
        )
        throughput = None
        if work.height >= 2:
            span = (work["finished"].max() - work["finished"].min()).total_seconds()
            if span > 0:
                ok = work.filter(pl.col("status") == OK).height
                throughput = round(ok / (span / 3600.0), 3)
        errors = (
            rows.filter(pl.col("status") == ERROR)
            .sort(["finished", "seq"], descending=True, nulls_last=True)
            .head(max(0, latest_errors))
        )
        return {
            "ledger": str(self.path),
            "rows": rows.height,
            "items": latest.height,
            "by_status": counts(latest, "status"),
            "attempts_by_status": counts(rows, "status"),
            "by_source": by_source,
            "first_activity": _iso(first),
            "last_activity": _iso(last),
            "throughput_per_hour": throughput,
            "latest_errors": [
                {"item": r["item"], "source": r["source"], "finished": _iso(r["finished"]),
                 "error": r["error"]}
                for r in errors.iter_rows(named=True)
            ],
            "warnings": list(self.warnings),
        }

    # ------------------------------------------------------------------ reset

    def select_for_reset(
        self,
        *,
        statuses: Sequence[str] | None = None,
        item_glob: str | None = None,
        source: str | None = None,
        all_items: bool = False,
    ) -> pl.DataFrame:
        """The latest rows whose done-state a reset would forget (DESIGN section 8).

        Filters combine with AND and apply to each item's latest row (``source`` is the
        source of that row; matching as in ``status``). Items already reset are left out.
        With no filter and not ``all_items`` nothing is selected.

        Returns:
            Latest rows (``SCHEMA``), sorted by kind and item.
        """
        if not (statuses or item_glob or source or all_items):
            return pl.DataFrame(schema=SCHEMA)
        latest = _latest(self._read(predicate=_filters(item_glob=item_glob), dedup=False))
        latest = latest.filter(pl.col("status") != RESET)
        if statuses:
            latest = latest.filter(pl.col("status").is_in(list(statuses)))
        if source:
            latest = latest.filter(_source_expr(source))
        return latest.sort("kind", "item")

    def reset(self, rows: pl.DataFrame, *, source: str = "reset") -> int:
        """Append one ``reset`` row per ``(kind, item)`` in ``rows`` and flush; history stays.

        Returns:
            The number of items reset.
        """
        if rows.height == 0:
            return 0
        now = _us(time.time())
        if "finished" in rows.columns:
            # The reset row must be the latest even if the row it forgets carries a later
            # clock (another host, a skewed clock): never earlier than that row + 1 ms.
            keys = (
                rows.group_by("kind", "item", maintain_order=True)
                .agg(pl.col("finished").max().dt.epoch("us"))
                .iter_rows()
            )
        else:
            keys = ((k, i, None) for k, i in rows.select("kind", "item").unique().iter_rows())
        new = []
        for kind, item, finished in keys:
            when = max(now, finished + 1000 if finished is not None else now) / 1e6
            new.append(_row(Outcome(item=item, kind=kind, source=source, status=RESET,
                                    started=when, finished=when)))
        with self._lock:
            self._buffer.extend(new)  # one flush, one file: the reset lands whole or not
            self._flush_locked()
        return len(new)


# ---------------------------------------------------------------------- legacy import


def import_legacy(ledger: Ledger, legacy_file: str | os.PathLike) -> tuple[int, int]:
    """Import a legacy state file as ``ok``/``error``/``no_data`` rows (DESIGN section 5).

    The TOML tracking file gives ``iq`` items (absolute paths, fingerprint taken now when
    the file exists); the progress JSON gives ``batch`` items. Rows have settings digest
    ``legacy`` (matches any settings), no products, and source ``import:<abs legacy path>``.
    An item listed more than once in the file gets one row (ok beats no_data beats error).
    All rows are written in one flush.

    Returns:
        ``(added, already_present)``: items already imported from this file are skipped.

    Raises:
        ConfigError: the legacy file cannot be read or parsed.
    """
    from crunchctl.ledger.legacy import FORMAT_TOML, read_legacy

    fmt, entries = read_legacy(legacy_file)
    source = f"import:{os.path.abspath(os.fspath(legacy_file))}"
    kind = KIND_IQ if fmt == FORMAT_TOML else KIND_BATCH
    rank = {ERROR: 0, NO_DATA: 1, OK: 2}
    chosen: dict[str, str] = {}
    for entry in entries:
        item = os.path.abspath(entry.item) if kind == KIND_IQ else entry.item
        if rank.get(entry.status, -1) >= rank.get(chosen.get(item, ""), -1):
            chosen[item] = entry.status
    present = set(
        ledger._read(["item", "kind", "source"],
                     (pl.col("source") == source) & (pl.col("kind") == kind), dedup=False
                     )["item"].to_list()
    )
    now = time.time()
    new = []
    for item, status in chosen.items():
        if item in present:
            continue
        size = mtime_ns = None
        if kind == KIND_IQ:
            try:
                st = os.stat(item)
                size, mtime_ns = st.st_size, st.st_mtime_ns
            except OSError:
                pass
        new.append(_row(Outcome(
            item=item, kind=kind, source=source, status=status, started=now, finished=now,
            size=size, mtime_ns=mtime_ns, settings_digest=LEGACY_DIGEST, products=[],
            error=_IMPORT_ERROR_TEXT if status == ERROR else None,
        )))
    if new:
        with ledger._lock:
            ledger._buffer.extend(new)
            ledger._flush_locked()
    return len(new), len(chosen) - len(new)


# ---------------------------------------------------------------------- helpers


def _row(o: Outcome) -> tuple:
    return (
        uuid.uuid4().hex, _next_seq(), o.item, o.kind, o.source, o.status,
        _us(o.started), _us(o.finished), o.duration, o.size, o.mtime_ns,
        o.settings_digest, list(o.products), o.error, __version__, _HOSTNAME, os.getpid(),
    )


def _frame_from_rows(rows: list[tuple]) -> pl.DataFrame:
    data = dict(zip(_COLUMNS, map(list, zip(*rows))))
    frame = pl.DataFrame(data, schema=_BUFFER_SCHEMA)
    return frame.with_columns(pl.col("started", "finished").cast(_UTC_US))


def _scan(files: list[pathlib.Path], columns: list[str] | None, predicate: pl.Expr | None):
    lf = pl.scan_parquet(
        [str(p) for p in files], schema=SCHEMA, missing_columns="insert",
        extra_columns="ignore", glob=False, hive_partitioning=False, cache=False,
    )
    if predicate is not None:
        lf = lf.filter(predicate)
    if columns is not None:
        lf = lf.select(columns)
    return lf


def _read_one(path: pathlib.Path, columns: list[str] | None, predicate: pl.Expr | None):
    try:
        return _scan([path], columns, predicate).collect()
    except Exception:
        # Maybe only the types differ (schema evolution): read as stored, then conform.
        raw = pl.read_parquet(path)
    exprs = [
        pl.col(c).cast(t, strict=False) if c in raw.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in SCHEMA.items()
    ]
    lf = raw.lazy().select(exprs)
    if predicate is not None:
        lf = lf.filter(predicate)
    if columns is not None:
        lf = lf.select(columns)
    return lf.collect()


def _exists_checker(paths: Iterable[str]):
    """``os.path.exists`` for many paths: a folder holding many of them is listed once
    (half the cost of a stat per file); the rest are stat-ed."""
    if os.sep != "/" or os.altsep:
        return os.path.exists
    counts = Counter(p.rpartition("/")[0] for p in paths)
    listed: dict[str, set[str]] = {}
    for folder, n in counts.items():
        if n >= _LISTDIR_MIN and folder:
            try:
                listed[folder] = set(os.listdir(folder))
            except FileNotFoundError:
                listed[folder] = set()
            except OSError:
                pass  # unreadable folder: stat each path
    if not listed:
        return os.path.exists
    exists = os.path.exists

    def check(path: str) -> bool:
        folder, _, name = path.rpartition("/")
        names = listed.get(folder)
        return exists(path) if names is None else name in names

    return check


def _dedup(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop rows whose ``row_id`` was already seen (compaction overlap)."""
    if frame.height < 2:
        return frame
    ids = frame["row_id"]
    # Distinct hashes prove distinct ids: the common case costs one hash pass.
    if ids.null_count() == 0 and ids.hash().n_unique() == frame.height:
        return frame
    return frame.filter(pl.col("row_id").is_null() | pl.col("row_id").is_first_distinct())


def _latest(frame: pl.DataFrame) -> pl.DataFrame:
    """The latest row per ``(kind, item)`` by ``(finished, seq)``, in ``frame``'s order."""
    if frame.height < 2:
        return frame
    # Most items have one row: an item whose hash is unique is its own latest row (exact:
    # distinct hashes prove distinct items). Only the rest is sorted, by index.
    shared = frame["item"].hash().is_duplicated()
    if not shared.any():
        return frame
    keys = frame.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), "kind", "item", "finished", "seq"
    ).filter(shared)
    last = keys.sort(["finished", "seq"], nulls_last=False).unique(
        subset=["kind", "item"], keep="last", maintain_order=False
    )["_i"]
    return frame.filter((~shared).scatter(last, True))


def _filters(
    *, since: float | None = None, item_glob: str | None = None, source: str | None = None
) -> pl.Expr | None:
    parts = []
    if since is not None:
        since_dt = _dt.datetime.fromtimestamp(since, tz=_dt.timezone.utc)
        parts.append(pl.col("finished") >= pl.lit(since_dt, dtype=_UTC_US))
    if item_glob:
        parts.append(_item_expr(item_glob))
    if source:
        parts.append(_source_expr(source))
    if not parts:
        return None
    expr = parts[0]
    for p in parts[1:]:
        expr = expr & p
    return expr


def _item_expr(pattern: str) -> pl.Expr:
    seps = "/\\" if os.sep == "\\" else "/"
    if any(s in pattern for s in seps):
        return pl.col("item").str.contains(f"(?s)^{_glob_regex(pattern)}$")
    # No separator: match the last path component, like find -name.
    sep_class = "[" + "".join(_escape_char(s) for s in seps) + "]"
    body = _glob_regex(pattern, any_char=f"[^{sep_class[1:-1]}]")
    return pl.col("item").str.contains(f"(?s)(^|{sep_class}){body}$")


def _source_expr(source: str) -> pl.Expr:
    if any(c in source for c in "*?["):
        return pl.col("source").str.contains(f"(?s)^{_glob_regex(source)}$")
    return (pl.col("source") == source) | pl.col("source").str.starts_with(source + ":")


_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


def _escape_char(c: str) -> str:
    return "\\" + c if c in _REGEX_META else c


def _glob_regex(pattern: str, any_char: str = ".") -> str:
    """fnmatch pattern -> Rust-regex body (``*``, ``?``, ``[seq]``, ``[!seq]``)."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(f"{any_char}*")
        elif c == "?":
            out.append(any_char)
        elif c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            j = pattern.find("]", j)
            if j < 0:
                out.append("\\[")
                continue
            body = pattern[i:j]
            i = j + 1
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            chars = []
            for k, ch in enumerate(body):
                if ch == "-" and 0 < k < len(body) - 1:
                    chars.append("-")
                else:
                    chars.append(_escape_char(ch))
            out.append("[" + ("^" if negate else "") + "".join(chars) + "]")
        else:
            out.append(_escape_char(c))
    return "".join(out)


def _damage_reason(path: pathlib.Path, exc: BaseException) -> str:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(max(0, size - 4))
            tail = fh.read(4)
    except OSError as err:
        return f"cannot read: {err.strerror or err}"
    if size == 0:
        return "empty file"
    if head != b"PAR1":
        return "not a Parquet file"
    if tail != b"PAR1":
        return "truncated"
    text = " ".join(str(exc).split())
    return text[:160] or type(exc).__name__


def _dead_writer(tmp_name: str) -> bool:
    """Whether a part file's temporary was left by a process of this host that is gone."""
    m = _PART_TMP_RE.match(tmp_name)
    if m is None or m.group(1) != _HOST_TAG:
        return False
    pid = int(m.group(2))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, someone else's
        return False
    return False


def _unlink_quietly(path: os.PathLike) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(path: pathlib.Path) -> None:
    # Makes the rename durable (crash safety); some file systems refuse, which is fine.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
