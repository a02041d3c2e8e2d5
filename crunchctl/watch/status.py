"""The status document ``crunchctl status`` prints: totals, sources, throughput, latest
errors, the per-item list and the recordings of watched folders that are still pending.

Plain, JSON-serialisable values only; the command renders them (docs/ledger.md, "Status").
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from crunchctl.ledger import query
from crunchctl.outcome import ERROR, KIND_IQ, OK, RESET, STATUSES

if TYPE_CHECKING:
    from crunchctl.config import Settings
    from crunchctl.ledger.store import Ledger

_SUMMARY_COLUMNS = ["seq", "item", "kind", "source", "status", "finished", "error"]
_LIST_COLUMNS = ["source", "status", "duration_s", "products", "error", "warning"]


def document(
    ledger: Ledger,
    settings: Settings | None,
    *,
    since: float | None = None,
    item_glob: str | None = None,
    source: str | None = None,
    errors_only: bool = False,
    statuses: Sequence[str] | None = None,
    list_items: bool = False,
) -> dict[str, Any]:
    """Everything ``crunchctl status`` shows, as one JSON-serialisable dict.

    The keys of :func:`summary`, then ``pending`` (see :func:`pending`), ``watches`` (every
    watch that used this ledger, ``watch.record.known_watches``: folder, pid, host, started,
    last event, last recording, queue, quiet since, running now), then with
    ``list_items`` the key ``list`` (see :func:`item_list`); ``warnings`` is moved to the
    end and holds what every read found.
    """
    doc = summary(
        ledger,
        since=since,
        item_glob=item_glob,
        source=source,
        errors_only=errors_only,
        statuses=statuses,
    )
    del doc["warnings"]
    doc["pending"] = pending(ledger, settings, source)
    from crunchctl.watch.record import known_watches

    doc["watches"] = known_watches(ledger.path)  # with ``running`` checked now
    if list_items:
        doc["list"] = item_list(
            ledger,
            since=since,
            item_glob=item_glob,
            source=source,
            errors_only=errors_only,
            statuses=statuses,
        )
    doc["warnings"] = list(ledger.warnings)
    return doc


def summary(
    ledger: Ledger,
    *,
    since: float | None = None,
    item_glob: str | None = None,
    source: str | None = None,
    errors_only: bool = False,
    statuses: Sequence[str] | None = None,
    latest_errors: int = 10,
) -> dict[str, Any]:
    """Totals over the rows the filters select (filters as in ``query.filters``).

    Items are counted by their latest status among the selected rows; ``statuses`` keeps
    the items whose latest status is one of them (``errors_only``: ``error``). Throughput counts ``ok`` attempts
    per hour between the first and last selected attempt that was work: ``reset`` rows and
    imported rows (source ``import:...``) are left out. An error message does not repeat
    the item it belongs to.

    Returns:
        ``{"ledger", "rows", "items", "by_status", "attempts_by_status", "by_source",
        "first_activity", "last_activity", "throughput_per_hour", "latest_errors",
        "warnings"}``; ``by_status`` and ``attempts_by_status`` always list every status.
    """
    predicate = query.filters(since=since, item_glob=item_glob, source=source)
    rows = ledger.read(_SUMMARY_COLUMNS, predicate)
    latest = query.latest(rows)
    wanted = _wanted(errors_only, statuses)
    if wanted is not None:
        latest = latest.filter(pl.col("status").is_in(wanted))
        rows = rows.join(latest.select("kind", "item"), on=["kind", "item"], how="semi")

    by_source: dict[str, dict[str, int]] = {}
    for src, status, n in (
        latest.group_by("source", "status").len().sort("source", "status").iter_rows()
    ):
        by_source.setdefault(src, dict.fromkeys(STATUSES, 0))[status] = int(n)

    errors = (
        rows.filter(pl.col("status") == ERROR)
        .sort(["finished", "seq"], descending=True, nulls_last=True)
        .head(max(0, latest_errors))
    )
    return {
        "ledger": str(ledger.path),
        "rows": rows.height,
        "items": latest.height,
        "by_status": _counts(latest),
        "attempts_by_status": _counts(rows),
        "by_source": by_source,
        "first_activity": _iso(rows["finished"].min()) if rows.height else None,
        "last_activity": _iso(rows["finished"].max()) if rows.height else None,
        "throughput_per_hour": _throughput(rows),
        "latest_errors": [
            {
                "item": r["item"],
                "source": r["source"],
                "finished": _iso(r["finished"]),
                "error": without_item(r["error"], r["item"]),
            }
            for r in errors.iter_rows(named=True)
        ],
        "warnings": list(ledger.warnings),
    }


def item_list(
    ledger: Ledger,
    *,
    since: float | None = None,
    item_glob: str | None = None,
    source: str | None = None,
    errors_only: bool = False,
    statuses: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Each item the filters select, by name, with its latest attempt.

    Returns:
        ``{"item", "kind", "status", "finished", "duration_s", "source", "products",
        "error", "warning"}`` per item, sorted by item then kind. Rows of older versions
        kept an ok item's warning in ``error``: it is shown as the warning.
    """
    predicate = query.filters(since=since, item_glob=item_glob, source=source)
    latest = ledger.latest(where=predicate, columns=_LIST_COLUMNS)
    wanted = _wanted(errors_only, statuses)
    if wanted is not None:
        latest = latest.filter(pl.col("status").is_in(wanted))
    return [
        {
            "item": r["item"],
            "kind": r["kind"],
            "status": r["status"],
            "finished": _iso(r["finished"]),
            "duration_s": r["duration_s"],
            "source": r["source"],
            "products": list(r["products"] or []),
            **_error_and_warning(r),
        }
        for r in latest.sort("item", "kind").iter_rows(named=True)
    ]


def _error_and_warning(row: dict[str, Any]) -> dict[str, str | None]:
    error, warning = row["error"], row["warning"]
    if row["status"] == OK and error and not warning:  # an older version's row
        error, warning = None, error
    return {
        "error": without_item(error, row["item"]),
        "warning": without_item(warning, row["item"]),
    }


# ---------------------------------------------------------------------- pending


def pending(ledger: Ledger, settings: Settings | None, source: str | None) -> list[dict[str, str]]:
    """Recordings of watched folders that are not done yet: ``{folder, item, reason}``.

    The one place pending recordings are computed. A recording whose latest attempt
    failed is not pending: it is shown once, among the errors.
    """
    found = _not_done_in_watched_folders(ledger, settings, source)
    failed = _failed(ledger, [p["item"] for p in found])
    return [p for p in found if p["item"] not in failed]


def _not_done_in_watched_folders(
    ledger: Ledger, settings: Settings | None, source: str | None
) -> list[dict[str, str]]:
    """Recordings of the folders watches recorded (and the config's ``folder_path``) that
    are not done at all: status cannot know a watcher's settings, so any settings count.
    """
    from crunchctl.watch.record import watched_folders
    from crunchctl.watch.scan import pending_recordings

    out = []
    for folder, patterns, recursive in watched_folders(
        ledger.path, ledger.sources(), settings.folder_path if settings else None
    ):
        if source and not query.source_matches(source, f"watch:{folder}"):
            continue
        for path, reason in pending_recordings(folder, patterns, recursive, ledger, None):
            out.append({"folder": folder, "item": path, "reason": reason})
    return out


def _failed(ledger: Ledger, items: list[str]) -> set[str]:
    """Those of ``items`` (recordings) whose latest attempt is an error."""
    if not items:
        return set()
    where = pl.col("item").is_in(pl.Series(items, dtype=pl.String()).implode())
    latest = ledger.latest(KIND_IQ, where, ["status"])
    return set(latest.filter(pl.col("status") == ERROR)["item"].to_list())


# ---------------------------------------------------------------------- helpers


def _wanted(errors_only: bool, statuses: Sequence[str] | None) -> list[str] | None:
    """The latest statuses an item may have to be shown; None: any."""
    wanted = list(statuses or []) + ([ERROR] if errors_only else [])
    return sorted(set(wanted)) if wanted else None


def without_item(error: str | None, item: str) -> str | None:
    """An error message without the leading ``<item>: `` (the row shows the item)."""
    if error and error.startswith(item + ": "):
        return error[len(item) + 2 :]
    return error


def _counts(frame: pl.DataFrame) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for value, n in frame.group_by("status").len().iter_rows():
        out[value] = int(n)
    return out


def _throughput(rows: pl.DataFrame) -> float | None:
    work = rows.filter((pl.col("status") != RESET) & ~pl.col("source").str.starts_with("import:"))
    if work.height < 2:
        return None
    span = (work["finished"].max() - work["finished"].min()).total_seconds()
    if span <= 0:
        return None
    ok = work.filter(pl.col("status") == OK).height
    return round(ok / (span / 3600.0), 3)


def _iso(value: _dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")
