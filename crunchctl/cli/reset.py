"""``crunchctl reset``: forget done-state so items are processed again; history is kept."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from crunchctl.cli import common as c
from crunchctl.cli.status import known_sources


def reset(
    ctx: typer.Context,
    errors: Annotated[bool, typer.Option("--errors", help="Items whose latest status is error (same as --status error).")] = False,
    status: Annotated[Optional[list[str]], typer.Option(
        "--status", help="Items whose latest status is this (ok, error, no_data); repeatable.",
        show_default=False, autocompletion=lambda: ["ok", "error", "no_data"])] = None,
    item: Annotated[Optional[str], typer.Option(
        "--item", help="Items matching this glob.", show_default=False)] = None,
    source: Annotated[Optional[str], typer.Option(
        "--source", help="Items whose latest attempt came from this source (glob allowed).",
        show_default=False, autocompletion=lambda: known_sources())] = None,
    all_items: Annotated[bool, typer.Option("--all", help="Every item.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be reset; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    config: c.ConfigOpt = None,
    ledger: c.LedgerOpt = None,
    verbose: c.VerboseOpt = 0,
    quiet: c.QuietOpt = False,
) -> None:
    """Forget done-state of the selected items so the next run processes them again.

    Filters combine (all must match). History stays in the ledger; a 'reset' row is added.

    Example: crunchctl reset --errors --source 'watch:*' --dry-run
    """
    from crunchctl.errors import UsageError

    opts = c.common(ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet)
    with c.errors_to_exit(opts):
        statuses = list(status or [])
        if errors:
            statuses.append("error")
        if not (statuses or item or source or all_items):
            raise UsageError("say what to reset: --errors, --status, --item, --source or --all")
        settings = c.settings_for(opts)
        led = c.open_ledger(settings, opts, create=False)
        rows = led.select_for_reset(statuses=statuses or None, item_glob=item, source=source,
                                    all_items=all_items)
        n = rows.height
        if n == 0:
            typer.echo("nothing to reset")
            raise typer.Exit(0)
        items = rows.get_column("item").to_list()
        if dry_run:
            for kind, it, st in zip(rows.get_column("kind"), items, rows.get_column("status")):
                typer.echo(f"would reset {kind} {it} ({st})")
            typer.echo(f"{n} item{'s' if n != 1 else ''} would be reset (dry run)")
            raise typer.Exit(0)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(f"{n} item{'s' if n != 1 else ''} would be reset; add --yes to confirm when not "
                                 f"on a terminal (or --dry-run to list them)")
            for it in items[:20]:
                typer.echo(f"  {it}")
            if n > 20:
                typer.echo(f"  ... and {n - 20} more")
            typer.confirm(f"Reset {n} item{'s' if n != 1 else ''}?", abort=True)
        done = led.reset(rows)
        typer.echo(f"reset {done} item{'s' if done != 1 else ''}; they will be processed "
                   f"on the next run")
