"""``crunchctl status``: what is done, failed and pending, for people or (``--json``) scripts."""

from __future__ import annotations

import datetime as _dt
import os
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from crunchctl.cli import options as opt, output

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

_MAX_PENDING = 50


def parse_since(text: str | None) -> float | None:
    """``--since``: ISO 8601 date/time, UNIX seconds, or an age like ``30m``, ``6h``, ``2d``."""
    from crunchctl.errors import UsageError

    if text is None:
        return None
    t = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        if t and t[-1] in units and t[:-1].replace(".", "", 1).isdigit():
            return _dt.datetime.now(_dt.timezone.utc).timestamp() - float(t[:-1]) * units[t[-1]]
        if t.replace(".", "", 1).isdigit():
            return float(t)
        when = _dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
        if when.tzinfo is None:  # a time without a zone is UTC, in every command
            when = when.replace(tzinfo=_dt.timezone.utc)
        return when.timestamp()
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected an ISO 8601 time (2024-04-17T13:00 is "
            f"UTC; add an offset such as +02:00 for another zone), UNIX "
            f"seconds, or an age such as 30m, 6h, 2d"
        ) from None


def status(
    ctx: typer.Context,
    since: Annotated[
        Optional[str],
        typer.Option(
            "--since",
            metavar="WHEN",
            help="Only attempts since then: an ISO 8601 time (UTC unless it says its zone: "
            "2024-04-17T13:00 or 2024-04-17T15:00+02:00), UNIX seconds, or an age: 30m, 6h, 2d.",
            show_default=False,
        ),
    ] = None,
    item: Annotated[
        Optional[str],
        typer.Option(
            "--item",
            metavar="GLOB",
            help="Only items matching this glob (e.g. '*2024*.tiq').",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        Optional[str],
        typer.Option(
            "--source",
            metavar="SOURCE",
            help="Only this source (process, watch:<folder>, batch:<file>, import:...;"
            " a glob works too).",
            show_default=False,
            autocompletion=lambda: known_sources(),
        ),
    ] = None,
    errors: Annotated[
        bool,
        typer.Option(
            "--errors",
            help="Only items whose latest status is error (same as --status error).",
        ),
    ] = False,
    statuses: Annotated[
        Optional[list[str]],
        typer.Option(
            "--status",
            help="Only items whose latest status is this: ok, error, no_data or reset; "
            "repeat it (or give a comma list) for several.",
            metavar="STATUS",
            show_default=False,
            callback=opt.status_choices("ok", "error", "no_data", "reset"),
            autocompletion=lambda: ["ok", "error", "no_data", "reset"],
        ),
    ] = None,
    list_items: Annotated[
        bool,
        typer.Option(
            "--list",
            help="List each matching item: latest status, when, how long, products, error.",
        ),
    ] = False,
    json_out: opt.JsonOpt = False,
    config: opt.ConfigOpt = None,
    ledger: opt.LedgerOpt = None,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """Show what is done, failed and pending: totals, sources, throughput, latest errors.

    Example: crunchctl status --since 6h --errors
    """
    from crunchctl.cli.application import Application

    with Application(ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet) as app:
        from crunchctl.watch.status import document

        settings = app.configure()
        since_ts = parse_since(since)
        doc = document(
            app.ledger(write=False),
            settings,
            since=since_ts,
            item_glob=item,
            source=source,
            errors_only=errors,
            statuses=statuses,
            list_items=list_items,
        )
        for w in doc["warnings"]:
            typer.echo(f"Warning: {w}", err=True)
        if json_out:
            output.print_json(doc)
        else:
            render(doc, app.out)


def known_sources() -> list[str]:
    try:
        from crunchctl.ledger import open_for_reading

        return sorted(open_for_reading(None).sources())[:50]
    except Exception:  # noqa: BLE001 - completion must never fail
        return []


# ---------------------------------------------------------------------------- rendering


def render(doc: dict[str, Any], console: Console) -> None:
    """The status document as tables. Off a terminal nothing is cut or wrapped (a grep
    for a file name finds it); on a terminal file names stay whole and only the folder
    part of a long path is shortened."""
    from rich import box
    from rich.table import Table

    from crunchctl.words import count

    console.print(
        f"Ledger {doc['ledger']}: {count(doc['items'], 'item')}, {count(doc['rows'], 'attempt')}"
    )
    if not doc["rows"]:
        console.print("Nothing recorded yet (or nothing matches the filters).")
    else:
        t = Table(box=box.SIMPLE, title="Items by latest status", title_justify="left")
        t.add_column("status")
        t.add_column("items", justify="right")
        t.add_column("attempts", justify="right")
        for st in sorted(set(doc["by_status"]) | set(doc["attempts_by_status"])):
            t.add_row(
                st, str(doc["by_status"].get(st, 0)), str(doc["attempts_by_status"].get(st, 0))
            )
        console.print(t)
        statuses = sorted({s for v in doc["by_source"].values() for s in v})
        rows = [
            (src, *(str(counts.get(s, 0)) for s in statuses))
            for src, counts in sorted(doc["by_source"].items())
        ]
        _path_table(console, "By source", ("source", *statuses), rows, path_col=0, counts=True)
        rate = doc.get("throughput_per_hour")
        console.print(
            f"First activity {_when(doc.get('first_activity'))}, last activity "
            f"{_when(doc.get('last_activity'))}"
            + (f", throughput {rate:.1f} ok per hour" if rate else "")
        )
    if doc.get("latest_errors"):
        rows = [
            (_when(e["finished"]), e["item"], e.get("error") or "") for e in doc["latest_errors"]
        ]
        _path_table(console, "Latest errors", ("when", "item", "error"), rows, path_col=1)
    if doc.get("pending"):
        shown = doc["pending"][:_MAX_PENDING]
        rows = [(p["item"], p["reason"]) for p in shown]
        _path_table(console, "Pending in watched folders", ("recording", "why"), rows, path_col=0)
        if len(doc["pending"]) > _MAX_PENDING:
            console.print(f"... and {len(doc['pending']) - _MAX_PENDING} more")
    _watches(doc.get("watches") or [], console)
    if doc.get("list"):
        rows = [
            (
                e["item"],
                e["status"],
                _when(e["finished"]),
                _seconds(e["duration_s"]),
                " ".join(os.path.basename(p) for p in e["products"]),
                e.get("error") or "",
                e.get("warning") or "",
            )
            for e in doc["list"]
        ]
        _path_table(
            console,
            "Items",
            ("item", "status", "when", "took", "products", "error", "warning"),
            rows,
            path_col=0,
        )


def _watches(watches: list[dict[str, Any]], console: Console) -> None:
    """Each running watcher; a watcher that died without stopping in one line."""
    running = [w for w in watches if w.get("running")]
    if running:
        rows = [
            (
                w["folder"],
                str(w.get("pid") or ""),
                str(w.get("host") or ""),
                _when(w.get("started")),
                _when(w.get("last_event")) or "none yet",
                _last(w),
                str(w.get("queue") or 0),
                _when(w.get("quiet_since")) or "no",
            )
            for w in running
        ]
        _path_table(
            console,
            "Watching now",
            (
                "folder",
                "pid",
                "host",
                "since",
                "last event",
                "last recording",
                "queue",
                "quiet since",
            ),
            rows,
            path_col=0,
        )
    for w in watches:
        if not w.get("running") and not w.get("stopped"):
            console.print(
                f"Watch of {w['folder']} (pid {w.get('pid')} on {w.get('host')}) "
                f"ended without stopping cleanly; last heard of "
                f"{_when(w.get('heartbeat'))}"
            )
    if watches and not running:
        console.print("No watch is running with this ledger.")


def _last(w: dict[str, Any]) -> str:
    if not w.get("last_recording"):
        return "none yet"
    return (
        f"{os.path.basename(w['last_recording'])} {w.get('last_status') or ''} "
        f"{_when(w.get('last_finished'))[11:]}"
    ).strip()  # the time of day, with UTC


def _path_table(
    console: Console,
    title: str,
    headers: tuple[str, ...],
    rows: list[tuple[str, ...]],
    path_col: int,
    counts: bool = False,
) -> None:
    """A table whose ``path_col`` holds paths: never cut inside a file name. With
    ``counts`` the other columns are numbers (right-aligned)."""
    from rich import box
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    whole = rows
    if console.is_terminal:
        # What the other columns need (long text folds at 24), 3 per column for padding
        # and rule: the rest is for the paths.
        other = sum(
            min(max(len(x) for x in (headers[i], *(r[i] for r in rows))), 24)
            for i in range(len(headers))
            if i != path_col
        )
        budget = console.width - other - 3 * len(headers) - 1
        rows = [
            r[:path_col] + (shorten_path(r[path_col], budget),) + r[path_col + 1 :] for r in rows
        ]
    t = Table(box=box.SIMPLE, title=title, title_justify="left")
    for i, h in enumerate(headers):
        if i == path_col:
            t.add_column(h, no_wrap=True, min_width=max(len(r[i]) for r in rows))
        else:
            t.add_column(h, overflow="fold", justify="right" if counts else "left")
    for r in rows:
        t.add_row(*(Text(x) for x in r))  # Text: a name with [brackets] is not markup
    if console.is_terminal and _min_width(console, t) > console.width:
        # Too narrow for a table that keeps the names whole: one block per row instead.
        # The path has a line of its own: shortened to the terminal, not to a column.
        console.print(Text(title))
        for r, full in zip(rows, whole):
            console.print(
                Text(shorten_path(full[path_col], console.width)),
                no_wrap=True,
                crop=False,
                overflow="ignore",
            )
            # The rest under it, indented as a whole when it wraps.
            console.print(
                Padding(
                    Text("  ".join(x for i, x in enumerate(r) if i != path_col and x)),
                    (0, 0, 0, 4),
                    expand=False,
                )
            )
        return
    if not console.is_terminal:
        # Off a terminal nobody reads the width: make it what the table needs.
        console.width = max(console.width, _width(console, t).maximum)
    console.print(t)


def _width(console: Console, table: Table) -> Any:
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(10**6), table)


def _min_width(console: Console, table: Table) -> int:
    return _width(console, table).minimum


def shorten_path(path: str, width: int) -> str:
    """``path`` in at most ``width`` characters where possible, shortening only the folder
    part and keeping the name of the folder the file is in where it fits
    (``…/rsa510/20240417_130522.tiq``: recorders differ by it); the file name always stays
    whole."""
    if len(path) <= width:
        return path
    name = os.path.basename(path) or path
    if len(name) + 2 > width:
        return "…" + os.sep + name if name != path else name
    tail = path[len(path) - width + 1 :]
    # Start the kept part at a folder boundary (there is one: before the name).
    return "…" + tail[max(0, tail.find(os.sep)) :]


def _when(iso: str | None) -> str:
    from crunchctl.words import when_iso

    return when_iso(iso)  # in UTC, saying so, whatever zone the document had


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} s"
