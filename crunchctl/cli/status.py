"""``crunchctl status``: what is done, failed and pending, for people or (``--json``) scripts."""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Any, Optional

import typer

from crunchctl.cli import common as c


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
        if when.tzinfo is None:
            when = when.astimezone()
        return when.timestamp()
    except ValueError:
        raise UsageError(f"--since {text!r}: expected an ISO 8601 time (2024-04-17T13:00), "
                         f"UNIX seconds, or an age such as 30m, 6h, 2d") from None


def status(
    ctx: typer.Context,
    since: Annotated[Optional[str], typer.Option(
        "--since", help="Only attempts since then: ISO time, UNIX seconds, or 30m/6h/2d.",
        show_default=False)] = None,
    item: Annotated[Optional[str], typer.Option(
        "--item", help="Only items matching this glob (e.g. '*2024*.tiq').",
        show_default=False)] = None,
    source: Annotated[Optional[str], typer.Option(
        "--source", help="Only this source (process, watch:<folder>, batch:<file>, import:...;"
                         " a glob works too).", show_default=False,
        autocompletion=lambda: known_sources())] = None,
    errors: Annotated[bool, typer.Option("--errors", help="Only items whose latest status is error.")] = False,
    json_out: c.JsonOpt = False,
    config: c.ConfigOpt = None,
    ledger: c.LedgerOpt = None,
    verbose: c.VerboseOpt = 0,
    quiet: c.QuietOpt = False,
) -> None:
    """Show what is done, failed and pending: totals, sources, throughput, latest errors.

    Example: crunchctl status --since 6h --errors
    """
    opts = c.common(ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet)
    with c.errors_to_exit(opts):
        settings = c.settings_for(opts)
        since_ts = parse_since(since)
        led = c.open_ledger(settings, opts, create=False)
        doc = led.status(since=since_ts, item_glob=item, source=source, errors_only=errors)
        doc["pending"] = _pending(led, settings, source)
        for w in doc.get("warnings", []):
            typer.echo(f"Warning: {w}", err=True)
        if json_out:
            c.print_json(doc)
        else:
            _render(doc)


def known_sources() -> list[str]:
    try:
        from crunchctl.ledger.store import Ledger, default_ledger_path

        return sorted(Ledger(default_ledger_path(), create=False).sources())[:50]
    except Exception:  # noqa: BLE001 - completion must never fail
        return []


def _pending(led: Any, settings: Any, source: str | None) -> list[dict[str, str]]:
    """Recordings in watched folders that are not done yet (DESIGN section 8).

    "Done" here means done with any settings: status cannot know the watcher's settings.
    """
    from crunchctl.watch import session as watchjob
    from crunchctl.run.outcome import KIND_IQ
    from crunchctl.quicklook.task import fingerprint

    folders = {src[len("watch:"):] for src in led.sources() if src.startswith("watch:")}
    if settings.folder_path:
        folders.add(settings.folder_path)
    out = []
    for folder in sorted(folders):
        if source and source not in ("watch", f"watch:{folder}"):
            continue
        try:
            paths = [p for p, _, _ in watchjob.scan_folder(folder, "*.tiq", False)]
        except OSError:
            continue
        done = led.done_items(KIND_IQ, [(p, *fingerprint(p)) for p in paths], None)
        for p in paths:
            if p not in done:
                complete, reason = watchjob.tiq_state(p)
                out.append({"folder": folder, "item": p,
                            "reason": reason if not complete else "not done yet"})
    return out


def _render(doc: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    console = c.out_console()
    console.print(f"Ledger {doc['ledger']}: {doc['items']} items, {doc['rows']} attempts")
    if not doc["rows"]:
        console.print("Nothing recorded yet (or nothing matches the filters).")
    else:
        t = Table(box=box.SIMPLE, title="Items by latest status", title_justify="left")
        t.add_column("status")
        t.add_column("items", justify="right")
        t.add_column("attempts", justify="right")
        for st in sorted(set(doc["by_status"]) | set(doc["attempts_by_status"])):
            t.add_row(st, str(doc["by_status"].get(st, 0)),
                      str(doc["attempts_by_status"].get(st, 0)))
        console.print(t)
        statuses = sorted({s for v in doc["by_source"].values() for s in v})
        t = Table(box=box.SIMPLE, title="By source", title_justify="left")
        t.add_column("source", overflow="fold")
        for st in statuses:
            t.add_column(st, justify="right")
        for src, counts in sorted(doc["by_source"].items()):
            t.add_row(src, *(str(counts.get(s, 0)) for s in statuses))
        console.print(t)
        rate = doc.get("throughput_per_hour")
        console.print(f"First activity {doc.get('first_activity')}, last activity "
                      f"{doc.get('last_activity')}" +
                      (f", throughput {rate:.1f} ok per hour" if rate else ""))
    if doc.get("latest_errors"):
        t = Table(box=box.SIMPLE, title="Latest errors", title_justify="left")
        t.add_column("when")
        t.add_column("item", overflow="fold")
        t.add_column("error", overflow="fold")
        for e in doc["latest_errors"]:
            t.add_row(str(e["finished"]), e["item"], e.get("error") or "")
        console.print(t)
    if doc.get("pending"):
        t = Table(box=box.SIMPLE, title="Pending in watched folders", title_justify="left")
        t.add_column("recording", overflow="fold")
        t.add_column("why", overflow="fold")
        for p in doc["pending"][:50]:
            t.add_row(p["item"], p["reason"])
        if len(doc["pending"]) > 50:
            t.add_row(f"... and {len(doc['pending']) - 50} more", "")
        console.print(t)
