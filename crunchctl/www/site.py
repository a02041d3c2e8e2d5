"""Keeping the control-room page current: run outcomes in, status.json and index.html out.

``WebPage`` is driven by the publisher of ``process`` and ``watch``: :meth:`WebPage.note`
after each recording, :meth:`WebPage.tick` from the watch loop (heartbeat), and
:meth:`WebPage.close` at the end of a run. It never raises: the page failing to be written
is logged, and processing goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crunchctl import __version__, formats
from crunchctl.www import history, night, page, status_doc

if TYPE_CHECKING:
    from crunchctl.config import Settings
    from crunchctl.ledger.store import Ledger
    from crunchctl.outcome import Outcome

log = logging.getLogger("crunchctl.www")

#: A watch rewrites status.json at least this often, even when idle, s.
HEARTBEAT_S = 10.0
#: After a new outcome, status.json is rewritten at most this often (a fast backlog), s.
DIRTY_GAP_S = 2.0
#: The page reuses the ledger's counts read less than this long ago, with this run's
#: outcomes on top (another process may have added rows; reading a big ledger takes a
#: while, and reading it on every write of a busy watch made the watch's memory grow with
#: the ledger), s.
LEDGER_REREAD_S = 60.0
_COMMANDS = ("process", "watch", "demo", "batch")


def _command() -> str:
    for arg in sys.argv[1:]:
        if arg in _COMMANDS:
            return f"crunchctl {arg}"
    return "crunchctl"


def _watches(ledger_path: Path) -> list[dict[str, Any]]:
    """The watches known to the ledger (their records say whether they still run)."""
    from crunchctl.watch.record import known_watches

    return [{**w, "since": w.get("since") or w.get("started")} for w in known_watches(ledger_path)]


def _suffix(name: str) -> str:
    name = name.lower()
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _statuses_of(names: Any, wanted: Any) -> dict[str, str]:
    """``{name: status}`` of the ``wanted`` names in a folder's ``names`` frame (a few)."""
    import polars as pl

    return dict(names.filter(pl.col("name").is_in(list(wanted))).iter_rows())


def _recording_names(folder: str, suffixes: set[str]) -> Iterator[str]:
    """Names of the files in ``folder`` named like its recordings (not hidden ones)."""
    try:
        # One entry at a time: a list of a big folder's entries was a peak that grew with it.
        with os.scandir(folder) as it:
            for e in it:
                name = e.name
                if name.startswith(".") or _suffix(name) not in suffixes:
                    continue
                try:
                    if e.is_file():
                        yield name
                except OSError:
                    continue
    except OSError:
        return


#: Names checked against the ledger at once when the page counts pending recordings.
_PENDING_BATCH = 4096


def _count_pending(names: Iterable[str], attempted: Any) -> int:
    """How many of ``names`` are not in ``attempted`` (a polars column; None: none are)."""
    import itertools

    import polars as pl

    names = iter(names)
    known = attempted.implode() if attempted is not None else None
    n = 0
    while batch := list(itertools.islice(names, _PENDING_BATCH)):
        if known is None:
            n += len(batch)
        else:
            n += int((~pl.Series(batch, dtype=pl.String).is_in(known)).sum())
    return n


def _title_lines(png: str | None) -> list[str] | None:
    """A quicklook's title and subtitle, as its PNG holds them in text (None: none)."""
    from crunchctl.quicklook.render import png_text

    text = png_text(png) if png else {}
    lines = [text[k] for k in ("Title", "Description") if text.get(k)]
    return lines or None


class WebPage:
    """The page of one web folder, as one process sees it.

    Args:
        www: the web folder.
        settings: ``www_history``, ``www_stale_after`` and ``www_refresh`` are used.
        ledger: counts and errors come from its latest row per recording; None for only
            this run's outcomes.
    """

    def __init__(
        self, www: str | os.PathLike, settings: Settings, ledger: Ledger | None = None
    ) -> None:
        self.www = Path(www)
        self.settings = settings
        self.ledger = ledger
        self.keep = max(1, int(settings.www_history))
        self._recorders: dict[str, dict[str, Any]] = {}
        # This run's outcomes by item that the last ledger read did not show yet (it
        # shows the others): a minute of them at most, not every outcome of a long watch.
        self._rows: dict[str, dict[str, Any]] = {}
        self._seen: set[str] = set()  # recorder folders this run had recordings in
        self._own: set[str] = set()  # history files this process wrote (relative paths)
        self._dirty = True
        self._last_write = -1e18
        self._warned: set[str] = set()
        self._acquired: tuple[Any, Any] = (None, None)  # (item, finished), its acquisition
        self._cleaned = False
        # When the ledger was last read, for which folders, and what it said (folder_latest).
        self._ledger_cache: tuple[float, list[str], dict[str, Any]] = (-1e18, [], {})
        self.writes = 0
        prev = status_doc.load(self.www / status_doc.STATUS_NAME)
        if prev:
            self._merge_recorders(prev)

    # ------------------------------------------------------------------ hooks

    def note(self, outcome: Outcome, published: list[str]) -> None:
        """Take one finished recording (any status); its images go into the history."""
        try:
            self._note(outcome, published)
        except Exception as e:  # noqa: BLE001 - the page must never stop a run
            self._warn(f"{self.www}: control-room page: cannot add {outcome.item}: {e}")
        self._dirty = True
        self._maybe_write(DIRTY_GAP_S)

    def is_latest(self, outcome: Outcome) -> bool:
        """Whether ``outcome`` would be its recorder's latest recording: the newest by
        acquisition start, else by processing time (``status_doc.order_key``), as the
        history strip is ordered. The fixed-name copies ``<folder>.png`` follow this."""
        try:
            rec = self._recorders.get(history.folder_key(outcome.item))
            latest = rec and rec["latest"]
            return not latest or (
                status_doc.order_key(self._probe(outcome)) >= status_doc.order_key(latest)
            )
        except Exception as e:  # noqa: BLE001 - the page must never stop a run
            self._warn(f"{self.www}: control-room page: cannot order {outcome.item}: {e}")
            return True

    def _probe(self, outcome: Outcome) -> dict[str, Any]:
        """The page's entry of ``outcome`` without images (its acquisition start is read
        once: the publisher asks, then the page notes the same outcome)."""
        key = (outcome.item, outcome.finished)
        if self._acquired[0] != key:
            self._acquired = (key, status_doc.acquisition_start(outcome.item, outcome.products))
        return status_doc.make_entry(
            outcome.item,
            processed=outcome.finished,
            acquired=self._acquired[1],
            images={},
            warning=outcome.warning,
        )

    def tick(self) -> None:
        """Called often by a watch: rewrite when something changed or the heartbeat is due."""
        self._maybe_write(DIRTY_GAP_S if self._dirty else HEARTBEAT_S)

    def close(self) -> None:
        """The run ends: write the final status (the heartbeat then ages in the page)."""
        self.write(final=True)

    # ------------------------------------------------------------------ state

    def _note(self, outcome: Outcome, published: list[str]) -> None:
        from crunchctl.outcome import KIND_IQ, OK

        if outcome.kind != KIND_IQ:
            return
        item = outcome.item
        folder = history.folder_key(item)
        rec = self._recorder(folder)
        rec["paths"].add(os.path.dirname(item))
        self._seen.add(folder)
        self._rows[item] = {
            "item": item,
            "status": outcome.status,
            "finished": outcome.finished,
            "error": outcome.error,
        }
        if outcome.status != OK:
            return
        night.note(rec, outcome, self.www)
        full, zoom = history.split_pngs(item, outcome.products)
        if not (full or zoom):
            return
        probe = self._probe(outcome)
        latest = rec["latest"]
        # One order for the strip, `latest` and the fixed-name copies (status_doc.order_key).
        newest = not latest or status_doc.order_key(probe) >= status_doc.order_key(latest)
        hist = rec["history"]
        if (
            len(hist) >= self.keep
            and not newest
            and status_doc.order_key(probe) < status_doc.order_key(hist[-1])
        ):
            return  # older than everything kept: no copies that would be removed at once
        images = history.add(self.www, folder, item, full, zoom)
        self._own.update(v for v in images.values() if v)
        entry = {
            **probe,
            **{k: images.get(k) for k in ("image", "zoom_image", "thumb")},
            # The pictures' title lines as text: the card shows them legibly.
            "image_text": _title_lines(full),
            "zoom_text": _title_lines(zoom),
        }
        rec["history"] = status_doc.merge_history(hist, [entry], keep=self.keep)
        if newest:
            rec["latest"] = entry

    def _recorder(self, folder: str) -> dict[str, Any]:
        rec = self._recorders.get(folder)
        if rec is None:
            rec = {"folder": folder, "paths": set(), "latest": None, "history": []}
            self._recorders[folder] = rec
            history.history_dir(self.www, folder).mkdir(parents=True, exist_ok=True)
        return rec

    def _merge_recorders(self, doc: dict[str, Any]) -> None:
        """Take recorders another run (or another process) listed; ours win on conflicts.

        A recorder whose ``history/<folder>/`` was deleted is dropped: that is how a
        retired recorder's card is removed.
        """
        for r in doc.get("recorders", []):
            folder = r.get("folder")
            if not isinstance(folder, str) or not folder or "/" in folder or folder in (".", ".."):
                continue
            if not history.history_dir(self.www, folder).is_dir():
                self._recorders.pop(folder, None)
                continue
            rec = self._recorders.setdefault(
                folder, {"folder": folder, "paths": set(), "latest": None, "history": []}
            )
            rec["paths"].update(p for p in r.get("paths") or [] if isinstance(p, str))
            night.merge(rec, r)
            rec["history"] = status_doc.merge_history(
                rec["history"], r.get("history") or [], keep=self.keep
            )
            theirs = r.get("latest")
            mine = rec["latest"]
            if isinstance(theirs, dict) and (
                mine is None or status_doc.order_key(theirs) > status_doc.order_key(mine)
            ):
                rec["latest"] = theirs

    # ------------------------------------------------------------------ writing

    def _maybe_write(self, gap: float) -> None:
        if time.monotonic() - self._last_write >= gap:
            self.write()

    def write(self, *, final: bool = False) -> dict[str, Any] | None:
        """Rewrite status.json, index.html and trim the history now; the document or None."""
        self._last_write = time.monotonic()
        if final:
            self._ledger_cache = (-1e18, [], {})  # the last word: read the ledger again
        try:
            doc = self._write(final)
        except Exception as e:  # noqa: BLE001 - web folder gone, disk full, ledger busy
            self._warn(f"{self.www}: control-room page not updated: {e}")
            return None
        self._dirty = False
        self.writes += 1
        return doc

    def _write(self, final: bool) -> dict[str, Any]:
        from crunchctl.quicklook.products import clean_stale_temps

        self.www.mkdir(parents=True, exist_ok=True)
        status_path = self.www / status_doc.STATUS_NAME
        prev = status_doc.load(status_path)
        if prev:
            self._merge_recorders(prev)  # another process may have added recorders
        for folder in list(self._recorders):
            if not history.history_dir(self.www, folder).is_dir():
                # Deleted by hand while we run: recreate only if this run saw recordings.
                if self._recorders[folder]["paths"] and folder in self._seen:
                    history.history_dir(self.www, folder).mkdir(parents=True, exist_ok=True)
                else:
                    del self._recorders[folder]
        if not self._cleaned:
            self._cleaned = True
            for folder in self._recorders:
                clean_stale_temps(history.history_dir(self.www, folder))
        try:
            night.refresh_trends(self.www, self.ledger, self._recorders.values(), final=final)
        except Exception as e:  # noqa: BLE001 - the page goes on without the trend picture
            self._warn(f"{self.www}: trend picture not drawn: {e}")
        now = time.time()
        doc = status_doc.build(
            self._recorders.values(),
            self._folders(),
            settings={
                "refresh_s": int(self.settings.www_refresh),
                "stale_after_min": float(self.settings.www_stale_after),
                "history": self.keep,
            },
            heartbeat=self._heartbeat(now, final),
        )
        status_doc.write_json(status_path, doc)
        page.write_index(self.www, doc)
        for r in doc["recorders"]:
            keep = [e.get(k) for e in r["history"] for k in ("image", "zoom_image", "thumb")]
            if r.get("latest"):
                keep += [r["latest"].get(k) for k in ("image", "zoom_image", "thumb")]
            history.trim(self.www, r["folder"], [k for k in keep if k], self._own, now=now)
        return doc

    def _folders(self) -> dict[str, dict[str, Any]]:
        """Counts and newest errors per recorder folder: the ledger's latest attempts, with
        this run's outcomes on top (they reach the ledger just after the page hears of
        them), and the files with no attempt yet (pending).

        The ledger is read again when the folders change, every ``LEDGER_REREAD_S`` and for
        the final write, not for every new outcome: this run's outcomes since the last read
        are laid over it. What is kept of a read is compact (counts, and per folder one
        polars column of names: docs/ARCHITECTURE.md, flat memory), not a Python object
        per recording.
        """
        import polars as pl

        paths = sorted({p for r in self._recorders.values() for p in r["paths"]})
        cached: dict[str, dict[str, Any]] = {}
        if self.ledger is not None and paths:
            when, cached_paths, cached = self._ledger_cache
            if cached_paths != paths or time.monotonic() - when >= LEDGER_REREAD_S:
                cached = self.ledger.folder_latest(paths, errors=status_doc.ERRORS_PER_RECORDER)
                for led in cached.values():
                    names = led["names"]
                    led["attempted"] = names.filter(pl.col("status") != "reset")["name"]
                    led["suffixes"] = set(
                        names["name"]
                        .str.extract(r"(\.[^.]+)$")
                        .str.to_lowercase()
                        .drop_nulls()
                        .unique()
                        .to_list()
                    )
                self._ledger_cache = (time.monotonic(), paths, cached)
                self._drop_recorded(cached)
        mine_by_folder = self._rows_by_folder()
        out: dict[str, dict[str, Any]] = {}
        for folder in paths:
            led = cached.get(folder)
            mine = mine_by_folder.get(folder, {})
            counts: dict[str, int] = dict(led["counts"]) if led else {}
            prior = _statuses_of(led["names"], mine) if led and mine else {}
            errors = list(led["errors"]) if led else []
            for name, row in mine.items():
                old = prior.get(name)
                if old is not None:
                    counts[old] -= 1
                counts[row["status"]] = counts.get(row["status"], 0) + 1
                errors = [e for e in errors if e["item"] != row["item"]]
                if row["status"] == "error":
                    errors.append(
                        {"item": row["item"], "error": row["error"], "finished": row["finished"]}
                    )
            suffixes = ((led["suffixes"] if led else set()) | {_suffix(n) for n in mine}) - {
                ""
            } or {_suffix(p) for p in formats.patterns()}
            pending = _count_pending(
                (n for n in _recording_names(folder, suffixes) if n not in mine),
                led["attempted"] if led else None,
            )
            out[folder] = {
                "counts": {
                    "done": sum(counts.get(s, 0) for s in status_doc.DONE),
                    "failed": counts.get("error", 0),
                    "pending": pending,
                },
                "errors": errors,
            }
        return out

    def _drop_recorded(self, latest: dict[str, dict[str, Any]]) -> None:
        """Forget this run's outcomes that a fresh ledger read shows as they are; the one
        noted but not yet recorded stays until the next read."""
        for folder, mine in self._rows_by_folder().items():
            theirs = latest.get(folder)
            if theirs is None:
                continue
            # An error of ours missing from the ledger's newest few has as many newer ones
            # above it there: the page would not list it either way.
            for name, status in _statuses_of(theirs["names"], mine).items():
                if mine[name]["status"] == status:
                    del self._rows[mine[name]["item"]]

    def _rows_by_folder(self) -> dict[str, dict[str, dict[str, Any]]]:
        """This run's outcomes not yet seen in the ledger, as ``{folder: {name: row}}``."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for item, row in self._rows.items():
            out.setdefault(os.path.dirname(item), {})[os.path.basename(item)] = row
        return out

    def _heartbeat(self, now: float, final: bool) -> dict[str, Any]:
        watchers = []
        if self.ledger is not None:
            try:
                for w in _watches(self.ledger.path):
                    if not w.get("running"):
                        continue
                    if final and w.get("pid") == os.getpid():
                        continue  # our own watch, ending now
                    watchers.append({k: w.get(k) for k in ("folder", "host", "pid", "since")})
            except Exception as e:  # noqa: BLE001 - without lock files: no watcher known
                self._warn(f"control-room page: cannot tell which watches run: {e}")
        return {
            "written_unix": round(now, 3),
            "writer": _command(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "version": __version__,
            "final": final,
            "watcher_running": bool(watchers),
            "watchers": watchers,
        }

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)
