"""``status.json``: what the control-room page shows, built from ledger rows and run outcomes.

Pure functions on plain values (no ledger, no file writes except :func:`write_json`), so the
document's schema is tested on its own. The keys are described in the README's section on
the control-room page.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from crunchctl import catalog

SCHEMA_VERSION = 1
STATUS_NAME = "status.json"
#: The page shows its banner when the heartbeat is older than this (browser clock), s.
HEARTBEAT_STALE_S = 120
#: Latest errors kept per recorder and overall.
ERRORS_PER_RECORDER = 5
ERRORS_OVERALL = 10

#: Latest statuses counted as done on the page.
DONE = ("ok", "no_data")


def iso(ts: float | None) -> str | None:
    """UNIX seconds as ISO 8601 UTC with a ``Z`` (None stays None)."""
    if ts is None:
        return None
    d = _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc)
    return d.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def unix(value: Any) -> float | None:
    """A datetime (naive = UTC), UNIX seconds or None, as UNIX seconds."""
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.timestamp()
    return float(value)


def acquisition_start(item: str, products: Iterable[str]) -> _dt.datetime | None:
    """The recording's acquisition start from its header (via the NPZ product if any).

    The NPZ holds the header's time for every format; without one, a ``.tiq`` header is
    read (a few kB). None when neither says.
    """
    from crunchctl.formats.tiq import parse_datetime

    for p in products:
        if p.endswith(".npz") and not p.endswith("_spectrum.npz"):
            try:
                import numpy as np

                with np.load(p, allow_pickle=False) as z:
                    if "acquisition_start" in z.files:
                        text = str(z["acquisition_start"])
                        return parse_datetime(text) if text else None
            except Exception:  # noqa: BLE001 - an unreadable NPZ: try the header
                pass
    if item.lower().endswith(".tiq"):
        try:
            from crunchctl.formats import tiq

            return tiq.read_header(item).acquired_at()
        except Exception:  # noqa: BLE001 - the recording may be gone or damaged by now
            return None
    return None


def make_entry(
    item: str,
    *,
    processed: float,
    acquired: _dt.datetime | None,
    images: Mapping[str, str | None],
    warning: str | None = None,
) -> dict[str, Any]:
    """One recording as the page lists it (history strip and ``latest``); ``warning``: an
    ok recording's (e.g. processed although incomplete), shown on its card."""
    acq = acquired.timestamp() if acquired is not None else None
    token = f"{item}\0{processed:.6f}".encode()
    return {
        "file": Path(item).name,
        "item": item,
        "acquired_at": iso(acq),
        "acquired_unix": acq,
        "processed_at": iso(processed),
        "processed_unix": round(processed, 3),
        "image": images.get("image"),
        "zoom_image": images.get("zoom_image"),
        "thumb": images.get("thumb"),
        "version": hashlib.sha1(token).hexdigest()[:10],
        "warning": warning,
    }


def sort_key(entry: Mapping[str, Any]) -> float:
    """Recording time: acquisition start, else when it was processed."""
    acq = entry.get("acquired_unix")
    return float(acq if acq is not None else entry.get("processed_unix") or 0.0)


def order_key(entry: Mapping[str, Any]) -> tuple[float, float]:
    """The one order of a recorder's recordings on the page (history strip, ``latest``, the
    fixed-name copies): recording time (:func:`sort_key`), then when it was processed."""
    return sort_key(entry), float(entry.get("processed_unix") or 0.0)


def merge_history(*lists: Iterable[Mapping[str, Any]], keep: int) -> list[dict[str, Any]]:
    """Union of history lists by recording (the latest processing wins), newest first."""
    by_item: dict[str, dict[str, Any]] = {}
    for entries in lists:
        for e in entries:
            key = e.get("item") or e.get("file")
            if not key:
                continue
            old = by_item.get(key)
            if old is None or (e.get("processed_unix") or 0) >= (old.get("processed_unix") or 0):
                by_item[key] = dict(e)
    ordered = sorted(by_item.values(), key=order_key, reverse=True)
    return ordered[: max(0, keep)]


def build(
    recorders: Iterable[Mapping[str, Any]],
    folders: Mapping[str, Mapping[str, Any]],
    *,
    settings: Mapping[str, Any],
    heartbeat: Mapping[str, Any],
) -> dict[str, Any]:
    """The whole ``status.json`` document.

    Args:
        recorders: per recorder folder ``folder`` (name), ``paths`` (absolute folders its
            recordings come from), ``latest`` (entry or None), ``history`` (entries).
        folders: per absolute folder, its recordings by their latest attempt: ``counts``
            (``done``, ``failed``, ``pending``: files named like recordings with no
            attempt yet) and ``errors`` (newest first: ``item``, ``error``, ``finished`` in
            UNIX seconds).
        settings: ``refresh_s``, ``stale_after_min``, ``history`` for the page.
        heartbeat: ``written_unix`` and who wrote it (``writer``, ``pid``, ``host``,
            ``watcher_running``, ``watchers``).
    """
    recs = sorted((dict(r) for r in recorders), key=lambda r: r["folder"].lower())
    out_recs = []
    all_errors = []
    totals = {"done": 0, "failed": 0, "pending": 0}
    for r in recs:
        counts = {"done": 0, "failed": 0, "pending": 0}
        errors = []
        for path in sorted(r.get("paths") or []):
            summary = folders.get(path) or {}
            for k, n in (summary.get("counts") or {}).items():
                if k in counts:
                    counts[k] += int(n)
            for e in summary.get("errors") or []:
                errors.append(
                    {
                        "item": e["item"],
                        "file": Path(e["item"]).name,
                        "message": e.get("error") or "error",
                        "time": iso(e.get("finished")),
                        "time_unix": e.get("finished"),
                    }
                )
        errors.sort(key=lambda e: e["time_unix"] or 0, reverse=True)
        all_errors.extend({"folder": r["folder"], **e} for e in errors[:ERRORS_OVERALL])
        for k in totals:
            totals[k] += counts[k]
        out_recs.append(
            {
                "folder": r["folder"],
                "paths": sorted(r.get("paths") or []),
                "image": catalog.web_name("png", r["folder"]),
                "zoom_image": catalog.web_name("zoom", r["folder"]),
                "latest": r.get("latest"),
                "history": list(r.get("history") or []),
                "counts": counts,
                "errors": errors[:ERRORS_PER_RECORDER],
                # the night (www/night.py): null until made
                "campaign_image": r.get("campaign_image"),
                "trend_image": r.get("trend_image"),
                "peaks": r.get("peaks"),
            }
        )
    all_errors.sort(key=lambda e: e["time_unix"] or 0, reverse=True)
    hb = dict(heartbeat)
    hb["written_at"] = iso(hb.get("written_unix"))
    return {
        "schema": SCHEMA_VERSION,
        "heartbeat": hb,
        "settings": {**settings, "heartbeat_stale_s": HEARTBEAT_STALE_S},
        "totals": totals,
        "recorders": out_recs,
        "errors": all_errors[:ERRORS_OVERALL],
    }


def load(path: str | os.PathLike) -> dict[str, Any] | None:
    """An existing ``status.json``, or None if it is missing, damaged or of another schema."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
        return None
    if not isinstance(doc.get("recorders"), list):
        return None
    return doc


def dumps(doc: Mapping[str, Any]) -> str:
    """Compact JSON (the page is embedded in index.html too: size counts)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def write_json(path: str | os.PathLike, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` to ``path`` by temp + rename (a browser never reads half a file)."""
    from crunchctl.quicklook.products import atomic_write

    with atomic_write(path) as f:
        f.write(dumps(doc).encode("utf-8"))
