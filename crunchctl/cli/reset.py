"""``crunchctl reset``: forget done-state so items are processed again; history is kept."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from crunchctl.cli import options as opt
from crunchctl.cli.status import known_sources


def reset(
    ctx: typer.Context,
    errors: Annotated[
        bool,
        typer.Option(
            "--errors", help="Items whose latest status is error (same as --status error)."
        ),
    ] = False,
    status: Annotated[
        Optional[list[str]],
        typer.Option(
            "--status",
            help="Items whose latest status is this: ok, error or no_data; repeat it "
            "(or give a comma list) for several.",
            metavar="STATUS",
            show_default=False,
            callback=opt.status_choices("ok", "error", "no_data"),
            autocompletion=lambda: ["ok", "error", "no_data"],
        ),
    ] = None,
    item: Annotated[
        Optional[str],
        typer.Option(
            "--item", help="Items matching this glob.", metavar="GLOB", show_default=False
        ),
    ] = None,
    source: Annotated[
        Optional[str],
        typer.Option(
            "--source",
            help="Items whose latest attempt came from this source (glob allowed).",
            metavar="SOURCE",
            show_default=False,
            autocompletion=lambda: known_sources(),
        ),
    ] = None,
    all_items: Annotated[bool, typer.Option("--all", help="Every item.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be reset; change nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    config: opt.ConfigOpt = None,
    ledger: opt.LedgerOpt = None,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """Forget done-state of the selected items so the next run processes them again.

    Filters combine (all must match). History stays in the ledger; a 'reset' row is added.

    Example: crunchctl reset --errors --source 'watch:*' --dry-run
    """
    from crunchctl.cli.application import Application
    from crunchctl.errors import UsageError

    with Application(ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet) as app:
        statuses = list(status or [])
        if errors:
            statuses.append("error")
        if not (statuses or item or source or all_items):
            raise UsageError("say what to reset: --errors, --status, --item, --source or --all")
        app.configure()
        led = app.ledger(write=False)
        targets = led.select_for_reset(
            statuses=statuses or None, item_glob=item, source=source, all_items=all_items
        )
        n = len(targets)
        if n == 0:
            typer.echo("nothing to reset")
            raise typer.Exit(0)
        if dry_run:
            for t in targets:
                typer.echo(f"would reset {t.kind} {t.item} ({t.status})")
            typer.echo(f"{_items(n)} would be reset (dry run)")
            raise typer.Exit(0)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    f"{_items(n)} would be reset; add --yes to confirm when not "
                    f"on a terminal (or --dry-run to list them)"
                )
            for t in targets[:20]:
                typer.echo(f"  {t.item}")
            if n > 20:
                typer.echo(f"  ... and {n - 20} more")
            if not typer.confirm(f"Reset {_items(n)}?"):
                typer.echo("nothing reset")
                raise typer.Exit(0)
        done = led.reset(targets)
        typer.echo(f"reset {_items(done)}; they will be processed on the next run")


def _items(n: int) -> str:
    from crunchctl.words import count

    return count(n, "item")
