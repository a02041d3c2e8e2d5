"""The ledger folder: Parquet part files, flushes, compaction and the read lock.

The only code that knows the Parquet layout (docs/ledger.md); ``Ledger`` is the surface the
rest of crunchctl uses. Questions about rows are answered in ``query.py`` and ``status.py``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import pathlib
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import polars as pl

from crunchctl import __version__
from crunchctl.errors import LedgerError
from crunchctl.ledger import default_ledger_path, files, query  # noqa: F401 (re-exported)
from crunchctl.ledger.query import UTC_US as _UTC_US, ResetTarget
from crunchctl.outcome import RESET, Outcome

log = logging.getLogger("crunchctl.ledger")
# Commands that set up no logging (status) print the ledger's warnings themselves; without
# this the interpreter's last-resort handler would print each of them a second time.
log.addHandler(logging.NullHandler())

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
    "product_kinds": pl.List(pl.String()),
    "error": pl.String(),
    "version": pl.String(),
    "host": pl.String(),
    "pid": pl.Int64(),
    # The peaks product of a recording, JSON (docs/ledger.md); null in rows without it.
    "peaks": pl.String(),
    # An ok row's warning (docs/ledger.md); null in older files, where it was in ``error``.
    "warning": pl.String(),
}
_COLUMNS = tuple(SCHEMA)
# Rows are buffered as tuples with timestamps as integer microseconds; cast when flushed.
_BUFFER_SCHEMA = {k: (pl.Int64() if v == _UTC_US else v) for k, v in SCHEMA.items()}

#: More part files than this after a flush triggers a compaction.
COMPACT_AFTER_PARTS = 32
#: A compact file joins an automatic compaction when it is at most this many times the
#: size of the inputs chosen so far (binary-counter tiers: each row is rewritten
#: O(log rows) times, and there are O(log rows) compact files).
_TIER_RATIO = 1.0
_READ_RETRIES = 10
_STALE_TMP_S = 3600.0
# ``.part-<stamp>-<host tag>-<pid>-<uuid8>.parquet.tmp``: who wrote a part file's temporary.
_PART_TMP_RE = re.compile(r"^\.part-[0-9T.]+-([A-Za-z0-9._]+)-(\d+)-[0-9a-f]{8}\.parquet\.tmp$")
_PART_PREFIX = "part-"
_COMPACT_PREFIX = "compact-"
_SUFFIX = ".parquet"
_LOCK_NAME = ".compact.lock"

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


class Ledger:
    """A ledger folder: buffered appends, reads that tolerate damage and concurrent writers.

    Use it as a context manager (or call ``flush``): buffered rows are written on exit.

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
        #: Messages about damaged files found by reads (each once), for people.
        self.warnings: list[str] = []
        self._buffer: list[tuple] = []
        self._lock = threading.RLock()
        self._damaged: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) when found
        self._swept = False  # dead writers' temporaries removed (first flush)
        self._failing: str | None = None  # why the last write failed (rows kept buffered)
        if self.path.exists() and not self.path.is_dir():
            raise self._folder_error(NotADirectoryError(), "use")
        if create:
            self._ensure_folder()

    def _folder_error(self, exc: OSError, doing: str) -> LedgerError:
        # mkdir says FileExistsError for a file at the path itself (NotADirectoryError:
        # a file higher up, so the folder cannot be created); a listing NotADirectoryError.
        if isinstance(exc, FileExistsError) or (
            isinstance(exc, NotADirectoryError) and doing != "create"
        ):
            return LedgerError(f"ledger path {self.path} is a file, not a folder")
        return LedgerError(f"cannot {doing} ledger folder {self.path}: {exc.strerror or exc}")

    # ------------------------------------------------------------------ writing

    def record(self, outcome: Outcome) -> None:
        """Buffer one attempt; every ``flush_every`` rows the buffer is flushed.

        While the ledger cannot be written (a full disk) rows are only buffered: the
        caller's next ``flush`` tries again, so one failure is not reported per row.
        """
        row = _row(outcome)
        with self._lock:
            self._buffer.append(row)
            if len(self._buffer) >= self.flush_every and self._failing is None:
                self._flush_locked()

    @property
    def unwritten(self) -> int:
        """Rows recorded but not yet in a file (lost from the ledger if the process ends)."""
        with self._lock:
            return len(self._buffer)

    def record_many(self, outcomes: Iterable[Outcome]) -> None:
        """Buffer many attempts (flushing every ``flush_every`` rows, as ``record`` does)."""
        for outcome in outcomes:
            self.record(outcome)

    def append(self, outcomes: Iterable[Outcome]) -> int:
        """Write these rows (and anything buffered) now, in one file: all land or none.
        Returns how many were given; raises LedgerError as ``flush`` does."""
        rows = [_row(o) for o in outcomes]
        if rows:
            with self._lock:
                self._buffer.extend(rows)
                self._flush_locked()
        return len(rows)

    def flush(self) -> None:
        """Write the buffered rows as one new part file, atomically; then maybe compact.

        Raises:
            LedgerError: the file cannot be written (the rows stay buffered).
        """
        with self._lock:
            self._flush_locked()

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
        try:
            # In memory first: a full disk is then a plain OSError (ENOSPC) with its reason.
            self._write_atomic(frame, name, in_memory=True)
        except LedgerError as exc:
            self._write_failed(exc)
        if self._failing is not None:
            log.warning(
                "ledger %s can be written again: the %d outcomes kept in memory are now recorded",
                self.path,
                len(self._buffer),
            )
            self._failing = None
        # The file is in place: these rows must never be written again.
        self._buffer = []
        try:
            self._maybe_compact()
        except Exception as exc:  # maintenance only: a flush that landed is a success
            log.warning("ledger %s: compaction skipped: %s", self.path, exc)

    def _write_failed(self, exc: LedgerError) -> None:
        """A flush failed (a full disk): keep the rows, say so loudly once, raise."""
        n = len(self._buffer)
        # The same words on every failed attempt (no part file's random name): callers
        # that retry can tell a new state from the same one.
        reason = str(exc).split(f"{_SUFFIX}: ", 1)[-1]
        if self._failing is None:
            log.error(
                "LEDGER NOT WRITTEN: cannot write to the ledger folder %s: %s. "
                "Outcomes are kept in memory and written as soon as the ledger can be "
                "written again; if crunchctl stops before that, they are lost from the "
                "ledger and those recordings are processed again by the next run "
                "(their products are rewritten)",
                self.path,
                reason,
            )
        self._failing = reason
        raise LedgerError(
            f"cannot write to the ledger folder {self.path}: {reason}; "
            f"{n} outcome{'s' if n != 1 else ''} not in the ledger "
            f"(kept in memory; lost from the ledger if crunchctl stops now, "
            f"and processed again by the next run)"
        ) from None

    def _ensure_folder(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._folder_error(exc, "create") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise LedgerError(f"ledger folder {self.path} is not writable")

    def _write_atomic(
        self, frame: pl.DataFrame, name: str, *, in_memory: bool = False
    ) -> pathlib.Path:
        # A hidden temporary, fsynced, then renamed: readers never see half a file.
        final = self.path / name
        tmp = self.path / f".{name}.tmp"
        try:
            with open(tmp, "wb") as fh:
                if in_memory:
                    import io

                    buf = io.BytesIO()
                    frame.write_parquet(buf)
                    fh.write(buf.getbuffer())
                else:
                    frame.write_parquet(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            files.unlink_quietly(tmp)
            raise LedgerError(f"cannot write ledger file {final}: {exc.strerror or exc}") from None
        except pl.exceptions.PolarsError as exc:
            # polars reports a failed write of the file (a full disk: ENOSPC) as a
            # ComputeError "... underlying IO error: <reason>", not as OSError.
            files.unlink_quietly(tmp)
            text = " ".join(str(exc).split())
            reason = text.split("underlying IO error: ", 1)[-1][:200]
            raise LedgerError(f"cannot write ledger file {final}: {reason}") from None
        except BaseException:
            files.unlink_quietly(tmp)
            raise
        files.fsync_dir(self.path)
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
            with files.exclusive_lock(lock_path, wait=wait) as held:
                if held:  # else another process is compacting
                    self._compact_locked(full)
        except OSError as exc:
            raise LedgerError(f"cannot open {lock_path}: {exc.strerror or exc}") from None

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
            files.unlink_quietly(p)
        files.fsync_dir(self.path)
        log.debug("ledger %s: compacted %d files into %s", self.path, len(read_ok), name)

    def _remove_stale_tmp(self) -> None:
        """Remove temporaries older than an hour, and part temporaries whose writer (a
        process of this host) is gone: nobody will ever rename them."""
        cutoff = time.time() - _STALE_TMP_S
        with contextlib.suppress(OSError), os.scandir(self.path) as it:
            for e in it:
                if (
                    e.name.startswith(".")
                    and e.name.endswith(".tmp")
                    and (e.stat().st_mtime < cutoff or _dead_writer(e.name))
                ):
                    files.unlink_quietly(e.path)

    # ------------------------------------------------------------------ reading files

    def _list_files(self) -> list[tuple[pathlib.Path, int]]:
        found = []
        try:
            with os.scandir(self.path) as it:
                for entry in it:
                    name = entry.name
                    if not name.endswith(_SUFFIX) or not name.startswith(
                        (_PART_PREFIX, _COMPACT_PREFIX)
                    ):
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        if entry.is_file():
                            found.append((pathlib.Path(entry.path), entry.stat().st_size))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._folder_error(exc, "read") from None
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
        message = f"ledger file {path} is damaged ({files.damage_reason(path, exc)}): skipped"
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning("%s", message)

    def _read_files(
        self, files: list[pathlib.Path], columns: list[str] | None, predicate: pl.Expr | None
    ) -> tuple[pl.DataFrame, list[pathlib.Path] | None]:
        """Read ``files``; returns (rows, files read) or (empty, None) if a file vanished."""
        empty = pl.DataFrame(schema={c: SCHEMA[c] for c in (columns or _COLUMNS)})
        if not files:
            return empty, []
        try:
            return _scan(files, columns, predicate).collect(), files
        except Exception:
            if any(not p.exists() for p in files):
                return empty, None
        frames, read_ok = [], []
        for p in files:  # one at a time: skip the damaged ones, keep the rest
            try:
                frames.append(_read_one(p, columns, predicate))
                read_ok.append(p)
            except Exception as exc:
                if not p.exists():
                    return empty, None
                reason = _io_failure(exc)
                if reason is not None:
                    # Not damage: its rows exist but cannot be read now (EIO, EACCES on a
                    # share). Reading on without them would take done work for not done.
                    raise LedgerError(f"cannot read ledger file {p}: {reason}") from None
                self._mark_damaged(p, exc)
        if not frames:
            return empty, read_ok
        return pl.concat(frames, how="vertical", rechunk=False), read_ok

    def _read_lock(self) -> contextlib.AbstractContextManager[bool]:
        """No compaction deletes files under a reader (see ``files.shared_lock``)."""
        return files.shared_lock(self.path / _LOCK_NAME)

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

    # ------------------------------------------------------------------ reading rows

    def read(
        self,
        columns: Sequence[str] | None = None,
        where: pl.Expr | None = None,
        *,
        dedup: bool = True,
    ) -> pl.DataFrame:
        """Rows of all readable files plus the unflushed buffer, with ``SCHEMA`` types.

        Args:
            columns: the columns wanted (None: all), returned in ``SCHEMA`` order.
            where: a polars predicate applied while reading.
            dedup: drop rows whose ``row_id`` was already seen (a compaction that crashed
                before deleting its inputs). Callers that look only at the latest row per
                item may pass False: a duplicate cannot change it, and ``row_id`` is the
                costliest column to read.
        """
        cols = None
        if columns is not None:
            wanted = set(columns) | ({"row_id"} if dedup else set())
            cols = [c for c in _COLUMNS if c in wanted]
        with self._read_lock() as locked:
            frame = self._read_consistent(cols, where, locked)
        with self._lock:
            buffered = _frame_from_rows(self._buffer) if self._buffer else None
        if buffered is not None:
            frame = pl.concat(
                [frame, _select(buffered.lazy(), cols, where).collect()],
                how="vertical",
                rechunk=False,
            )
        frame = _dedup(frame) if dedup else frame
        if columns is not None and dedup and "row_id" not in columns:
            frame = frame.drop("row_id")
        return frame

    def scan(self) -> pl.LazyFrame:
        """Every row (readable files and unflushed buffer), deduplicated by ``row_id``.

        The rows are read now (so damaged or vanishing files are dealt with here) and
        returned as a LazyFrame with ``SCHEMA``; an empty ledger gives an empty frame.
        """
        return self.read().lazy()

    def latest(
        self,
        kind: str | None = None,
        where: pl.Expr | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """The latest row per ``(kind, item)``, by ``(finished, seq)``.

        Args:
            kind: only this kind (``iq``, ``batch``); None for all.
            where: only rows matching this predicate are considered.
            columns: columns wanted besides those that order the rows.
        """
        if kind is not None:
            by_kind = pl.col("kind") == kind
            where = by_kind if where is None else where & by_kind
        if columns is not None:
            columns = [*columns, "kind", "item", "finished", "seq"]
        return query.latest(self.read(columns, where, dedup=False))

    def folder_latest(
        self, folders: Sequence[str], *, kind: str = "iq", errors: int = 5
    ) -> dict[str, dict[str, Any]]:
        """The latest attempt of every item directly in ``folders``, per folder (the
        control-room page's counts).

        Returns:
            ``{folder: {"names": ..., "counts": ..., "errors": ...}}`` for each folder that
            has items: ``names`` is a polars frame of the items' file names (``name``) and
            latest ``status``, sorted by name (one compact column per folder, not a Python
            object per recording: a watched folder holds tens of thousands); ``counts`` is
            ``{status: number of items}``; ``errors`` holds the newest ``errors`` items whose
            latest status is ``error``, as ``{"item", "error", "finished"}`` (UNIX seconds).
        """
        if not folders:
            return {}
        parent = pl.col("item").str.replace(r"/[^/]*$", "")
        frame = self.latest(kind, where=parent.is_in(list(folders)), columns=["status", "error"])
        frame = frame.with_columns(
            parent.alias("_folder"), pl.col("item").str.extract(r"([^/]*)$").alias("name")
        )
        out: dict[str, dict[str, Any]] = {}
        for (folder,), part in frame.group_by("_folder"):
            failed = (
                part.filter(pl.col("status") == "error")
                .sort(["finished", "seq"], descending=True, nulls_last=True)
                .head(errors)
            )
            out[folder] = {
                "names": part.select("name", "status").sort("name").rechunk(),
                "counts": dict(part.group_by("status").len().iter_rows()),
                "errors": [
                    {
                        "item": r["item"],
                        "error": r["error"],
                        "finished": r["finished"].timestamp() if r["finished"] else None,
                    }
                    for r in failed.iter_rows(named=True)
                ],
            }
        return out

    def has_source(self, source: str) -> bool:
        """Whether any row has exactly this ``source`` (a legacy import happens once)."""
        return self.read(["source"], pl.col("source") == source, dedup=False).height > 0

    def sources(self) -> list[str]:
        """The distinct sources of all rows, sorted (cheap: reads one column)."""
        frame = self.read(["source"], dedup=False)
        return sorted(s for s in frame["source"].unique().to_list() if s is not None)

    def done_items(
        self,
        kind: str,
        candidates: Sequence[tuple[str, int | None, int | None]],
        settings_digest: str | Callable[[str, Sequence[str | None]], str] | None,
        *,
        products: str | Iterable[str] | None = None,
        check_products: bool = True,
    ) -> set[str]:
        """Which candidates are done, i.e. need no new attempt (docs/ledger.md).

        Args:
            kind: ``iq`` or ``batch``.
            candidates: ``(item, size, mtime_ns)`` per item.
            settings_digest: digest of the current product-shaping settings, or a callable
                giving it per item and the product kinds of its row (``identity.Digests``);
                None accepts any settings (``status`` asks "done at all?", not "done with
                mine?").
            products: the product kinds the current settings ask for (``"png,zoom"``):
                each must have been recorded by the latest ``ok`` row and exist. None: every
                product the row recorded must exist.
            check_products: look at the file system for the products.

        Returns:
            The done items; every other candidate is due.
        """
        if not candidates:
            return set()
        cand = query.candidates_frame(candidates)
        wanted = query.wanted_kinds(products)
        columns = ["status", "size", "mtime_ns", "settings_digest", "products"]
        if wanted is not None or callable(settings_digest):  # read only when they matter
            columns.append("product_kinds")
        latest = self.latest(kind, pl.col("item").is_in(cand["item"].implode()), columns)
        return query.done(latest, cand, settings_digest, wanted, check_products)

    def due_reasons(
        self,
        kind: str,
        candidates: Sequence[tuple[str, int | None, int | None]],
        settings_digest: str | Callable[[str, Sequence[str | None]], str] | None,
        *,
        products: str | Iterable[str] | None = None,
    ) -> dict[str, str]:
        """Why each candidate :meth:`done_items` finds not done is due (``new``, ``changed
        since it was done``, ``settings changed``, ``product missing: ...``); done ones are
        left out. For ``--dry-run``: the same rule, said in words (docs/ledger.md)."""
        if not candidates:
            return {}
        cand = query.candidates_frame(candidates)
        wanted = query.wanted_kinds(products)
        columns = ["status", "size", "mtime_ns", "settings_digest", "products", "product_kinds"]
        latest = self.latest(kind, pl.col("item").is_in(cand["item"].implode()), columns)
        done = query.done(latest, cand, settings_digest, wanted, True)
        return query.why_due(latest, cand, settings_digest, wanted, done)

    def product_owners(self, paths: Sequence[str], kind: str = "iq") -> dict[str, str]:
        """``{product path: item}`` for those of ``paths`` some row lists as a product: the
        item of the newest such row (who made the file now there; docs/ledger.md)."""
        if not paths:
            return {}
        wanted = pl.Series(list(paths), dtype=pl.String()).implode()
        where = (pl.col("kind") == kind) & pl.col("products").list.eval(
            pl.element().is_in(wanted)
        ).list.any()
        frame = self.read(["item", "products", "finished", "seq"], where, dedup=False)
        frame = (
            frame.sort(["finished", "seq"], nulls_last=False)
            .explode("products")
            .filter(pl.col("products").is_in(wanted))
        )
        return dict(zip(frame["products"].to_list(), frame["item"].to_list()))

    # ------------------------------------------------------------------ reset

    def select_for_reset(
        self,
        *,
        statuses: Sequence[str] | None = None,
        item_glob: str | None = None,
        source: str | None = None,
        all_items: bool = False,
    ) -> list[ResetTarget]:
        """The items whose done-state a reset would forget, sorted by kind and item.

        Filters combine with AND and apply to each item's latest row (``source`` is the
        source of that row; matching as in ``status``). Items already reset are left out.
        With no filter and not ``all_items`` nothing is selected.
        """
        if not (statuses or item_glob or source or all_items):
            return []
        latest = self.latest(where=query.filters(item_glob=item_glob), columns=["status", "source"])
        return query.reset_targets(latest, statuses=statuses, source=source)

    def reset(self, targets: Sequence[ResetTarget], *, source: str = "reset") -> int:
        """Append one ``reset`` row per target in one file; history stays.

        Returns:
            The number of items reset.
        """
        now = _us(time.time())
        # The reset row must be the latest even if the row it forgets carries a later
        # clock (another host, a skewed clock): never earlier than that row + 1 ms.
        when = {(t.kind, t.item): max(now, (t.finished_us or 0) + 1000) / 1e6 for t in targets}
        return self.append(
            Outcome(item=item, kind=kind, source=source, status=RESET, started=w, finished=w)
            for (kind, item), w in when.items()
        )


# ---------------------------------------------------------------------- helpers


def _row(o: Outcome) -> tuple:
    products = list(o.products)
    return (
        uuid.uuid4().hex,
        _next_seq(),
        o.item,
        o.kind,
        o.source,
        o.status,
        _us(o.started),
        _us(o.finished),
        o.duration,
        o.size,
        o.mtime_ns,
        o.settings_digest,
        products,
        query.product_kinds(o.item, products),
        o.error,
        __version__,
        _HOSTNAME,
        os.getpid(),
        o.extra.get("peaks"),
        o.warning,
    )


def _frame_from_rows(rows: list[tuple]) -> pl.DataFrame:
    data = dict(zip(_COLUMNS, map(list, zip(*rows))))
    frame = pl.DataFrame(data, schema=_BUFFER_SCHEMA)
    return frame.with_columns(pl.col("started", "finished").cast(_UTC_US))


def _select(lf: pl.LazyFrame, columns: list[str] | None, predicate: pl.Expr | None):
    if predicate is not None:
        lf = lf.filter(predicate)
    return lf if columns is None else lf.select(columns)


def _scan(files: list[pathlib.Path], columns: list[str] | None, predicate: pl.Expr | None):
    # Columns an older file lacks are inserted as nulls, unknown ones are dropped.
    lf = pl.scan_parquet(
        [str(p) for p in files],
        schema=SCHEMA,
        missing_columns="insert",
        extra_columns="ignore",
        glob=False,
        hive_partitioning=False,
        cache=False,
    )
    return _select(lf, columns, predicate)


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
    return _select(raw.lazy().select(exprs), columns, predicate).collect()


_OS_ERROR_RE = re.compile(r"\(os error \d+\)")


def _io_failure(exc: BaseException) -> str | None:
    """Why reading a file failed when the reason is the file system, not its content (an
    ``OSError``, or polars' words for one); None for damaged content (docs/ledger.md)."""
    text = " ".join(str(exc).split())
    match = _OS_ERROR_RE.search(text)
    if match is not None:  # "Permission denied (os error 13): <a shortened path>"
        return text[: match.end()][-200:]
    if isinstance(exc, OSError):
        return exc.strerror or text or type(exc).__name__
    return None


def _dedup(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop rows whose ``row_id`` was already seen (compaction overlap)."""
    if frame.height < 2:
        return frame
    ids = frame["row_id"]
    # Distinct hashes prove distinct ids: the common case costs one hash pass.
    if ids.null_count() == 0 and ids.hash().n_unique() == frame.height:
        return frame
    return frame.filter(pl.col("row_id").is_null() | pl.col("row_id").is_first_distinct())


def _dead_writer(tmp_name: str) -> bool:
    """Whether a part file's temporary was left by a process of this host that is gone."""
    m = _PART_TMP_RE.match(tmp_name)
    return m is not None and m.group(1) == _HOST_TAG and files.pid_gone(int(m.group(2)))
