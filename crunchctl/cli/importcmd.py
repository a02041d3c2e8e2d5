"""``crunchctl import``: legacy tracking TOML or batch progress JSON into the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crunchctl.cli import options as opt


def import_(
    ctx: typer.Context,
    legacy: Annotated[
        list[Path],
        typer.Argument(
            help="Legacy files: datacrunch tracking TOML (processed = [...]) or batch progress JSON.",
            show_default=False,
            metavar="LEGACY...",
            dir_okay=False,
        ),
    ],
    config: opt.ConfigOpt = None,
    ledger: opt.LedgerOpt = None,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """Import legacy state so finished work is not redone; importing twice adds nothing.

    Example: crunchctl import /data/crunch/processed.toml generic_progress.json
    """
    from crunchctl.cli.application import Application

    with Application(ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet) as app:
        from crunchctl.ledger.legacy import import_legacy, read_legacy
        from crunchctl.words import count

        app.configure()
        for path in legacy:
            read_legacy(path)  # every file is checked before anything is written
        with app.ledger() as led:
            for path in legacy:
                added, present = import_legacy(led, path)
                typer.echo(
                    f"{path}: imported {count(added, 'entry', 'entries')}"
                    + (f" ({present} already in the ledger)" if present else "")
                )
            typer.echo(f"ledger: {led.path}")
