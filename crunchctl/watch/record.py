"""What each watch says about itself, for ``status``: one small JSON file per watched folder
in the ledger folder (``<ledger>/watches/<key>.json``), written atomically, kept after the
watch ends (``running`` false). :func:`known_watches` reads them back.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crunchctl import formats

log = logging.getLogger("crunchctl.watch")

#: Seconds between heartbeats of a running watch.
HEARTBEAT = 5.0
#: A change of the queue length or the quiet state is written within this many seconds.
CHANGE_GAP = 1.0
#: A record from another host whose heartbeat is older than this is not running any more.
STALE_AFTER = 60.0
FOLDER = "watches"


def watch_key(folder: str) -> str:
    """A short stable name for a watched folder (its real path hashed)."""
    return hashlib.sha1(os.path.realpath(folder).encode()).hexdigest()[:12]


def record_path(ledger_dir: str | os.PathLike, folder: str) -> Path:
    return Path(ledger_dir) / FOLDER / f"{watch_key(folder)}.json"


def now_iso(ts: float | None = None) -> str:
    when = _dt.datetime.fromtimestamp(time.time() if ts is None else ts).astimezone()
    return when.isoformat(timespec="seconds")


def read_record(path: Path) -> dict[str, Any]:
    """A record's JSON, or {} if it is missing or damaged."""
    try:
        doc = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


class WatchRecord:
    """The record of one running watch: written at start, on heartbeats and at the end.

    A record that cannot be written is logged once and otherwise ignored: ``status`` is
    worse off, the watch itself is not.
    """

    def __init__(
        self, ledger_dir: str | os.PathLike, folder: str, patterns: Sequence[str], recursive: bool
    ) -> None:
        self.path = record_path(ledger_dir, folder)
        self.doc: dict[str, Any] = {
            "folder": folder,
            "patterns": list(patterns),
            "recursive": recursive,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": now_iso(),
            "running": True,
            "last_event": None,
            "queue": 0,
            "heartbeat": now_iso(),
            "stopped": None,
            "last_recording": None,
            "last_status": None,
            "last_finished": None,
            "quiet_since": None,
        }
        self._next_beat = 0.0
        self._last_write = 0.0
        self._warned = False

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.doc) + "\n")
            os.replace(tmp, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if not self._warned:
                self._warned = True
                log.warning("cannot write the watch record %s: %s", self.path, e.strerror or e)

    def start(self) -> None:
        self._write()
        self._next_beat = time.monotonic() + HEARTBEAT

    def beat(
        self,
        *,
        queue: int,
        last_event: float | None,
        last_recording: Any = None,
        quiet_since: float | None = None,
        force: bool = False,
    ) -> None:
        """Refresh the record: every ``HEARTBEAT`` seconds, within ``CHANGE_GAP`` seconds
        of a change of the queue length, the last recording or the quiet state, or now
        with ``force``.

        Args:
            queue: recordings ready or about to be looked at.
            last_event: UNIX time of the last file-system event (or poll hit).
            last_recording: the last outcome (``item``, ``status``, ``finished``), or None.
            quiet_since: no new recording since then (``--quiet-after``), or None.
        """
        now = time.monotonic()
        changes = {
            "queue": queue,
            "quiet_since": None if quiet_since is None else now_iso(quiet_since),
        }
        if last_recording is not None:
            changes.update(
                last_recording=last_recording.item,
                last_status=last_recording.status,
                last_finished=now_iso(last_recording.finished),
            )
        changed = any(self.doc.get(k) != v for k, v in changes.items())
        if (
            not force
            and now < self._next_beat
            and not (changed and now >= self._last_write + CHANGE_GAP)
        ):
            return
        self._next_beat = now + HEARTBEAT
        self._last_write = now
        self.doc.update(
            changes,
            heartbeat=now_iso(),
            last_event=None if last_event is None else now_iso(last_event),
        )
        self._write()

    def stop(self) -> None:
        self.doc.update(
            running=False, stopped=now_iso(), heartbeat=now_iso(), queue=0, quiet_since=None
        )
        self._write()


def _running(doc: dict[str, Any], host: str, now: float) -> bool:
    if not doc.get("running"):
        return False
    pid = doc.get("pid")
    if doc.get("host") == host:
        from crunchctl.ledger.files import pid_gone

        return isinstance(pid, int) and not pid_gone(pid)
    try:  # another machine: trust a fresh heartbeat only
        beat = _dt.datetime.fromisoformat(str(doc.get("heartbeat"))).timestamp()
    except ValueError:
        return False
    return now - beat < STALE_AFTER


def known_watches(ledger_path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every watch that has used the ledger in ``ledger_path``, sorted by folder.

    Returns:
        One dict per watched folder: ``folder``, ``patterns``, ``recursive``, ``pid``,
        ``host``, ``started``, ``last_event``, ``queue``, ``heartbeat``, ``stopped``,
        ``last_recording``, ``last_status``, ``last_finished``, ``quiet_since`` (ISO times
        or None) and ``running`` (checked now: the process is alive on this host, or, for another
        host, its heartbeat is recent); a watch that was killed shows ``running`` false.
    """
    host, now = socket.gethostname(), time.time()
    out = []
    for path in sorted((Path(ledger_path) / FOLDER).glob("*.json")):
        doc = read_record(path)
        if not isinstance(doc.get("folder"), str):
            continue
        doc["patterns"] = [str(p) for p in doc.get("patterns") or ()] or list(formats.patterns())
        doc["recursive"] = bool(doc.get("recursive"))
        doc["running"] = _running(doc, host, now)
        out.append(doc)
    return sorted(out, key=lambda d: d["folder"])


def watched_folders(
    ledger_path: str | os.PathLike, sources: Sequence[str], folder_path: str | None = None
) -> list[tuple[str, tuple[str, ...], bool]]:
    """(folder, patterns, recursive) of every folder watched with a ledger, sorted.

    From the watches' records, then folders that only the ledger's ``watch:<folder>``
    sources name (recorded before watches kept records) and the config's ``folder_path``,
    those two with the default patterns (every registered format's), not recursive.
    """

    found: dict[str, tuple[str, ...]] = {}
    recursive: dict[str, bool] = {}
    for doc in known_watches(ledger_path):
        found[doc["folder"]] = tuple(doc["patterns"])
        recursive[doc["folder"]] = doc["recursive"]
    extra = [s[len("watch:") :] for s in sources if s.startswith("watch:")]
    for folder in [*extra, *([folder_path] if folder_path else [])]:
        folder = os.path.abspath(folder)
        found.setdefault(folder, formats.patterns())
        recursive.setdefault(folder, False)
    return [(f, found[f], recursive[f]) for f in sorted(found)]
