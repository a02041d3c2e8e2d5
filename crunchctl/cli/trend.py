"""``crunchctl trend``: options in, one ``night.trend.run`` call, a table, JSON, CSV or PNG out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crunchctl.cli import options as opt, output
from crunchctl.cli.application import Application

if TYPE_CHECKING:
    from rich.console import Console

NO_PEAKS = (
    "no peaks in the ledger yet: process recordings with the peaks product, e.g. "
    "crunchctl process FILE... --products png,zoom,npz,peaks"
)


def _check_at(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        [float(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: expected frequencies in Hz, e.g. 245.1e6,245.3e6"
        ) from None
    return text


def trend(
    ctx: typer.Context,
    folders: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Only recordings under these folders [default: all].",
            show_default=False,
            metavar="FOLDER",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only recordings acquired since then: ISO time (UTC unless it says "
            "its zone), UNIX seconds, or 30m/6h/2d.",
            show_default=False,
            metavar="WHEN",
        ),
    ] = None,
    lines: Annotated[
        int,
        typer.Option(
            "--lines",
            help="Follow the N strongest lines of the latest recording.",
            min=1,
            metavar="N",
        ),
    ] = 3,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Follow the lines at these frequencies instead, Hz (comma list).",
            show_default=False,
            metavar="FREQ[,FREQ...]",
            callback=_check_at,
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            help="A line matches within this many Hz [default: 3 bins of each recording].",
            show_default=False,
            metavar="HZ",
        ),
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write a PNG: frequency offset and power against time.",
            dir_okay=False,
            show_default=False,
            metavar="FILE.png",
        ),
    ] = None,
    json_out: opt.JsonOpt = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print one CSV line per point.")] = False,
    config: opt.ConfigOpt = None,
    ledger: opt.LedgerOpt = None,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """Follow the lines of the peaks product across recordings, in acquisition order: per
    line its first and last power, the change in dB per hour and the drift in Hz per hour.

    Example: crunchctl trend /data/rsa510 --since 12h --lines 3 --output trend.png
    """
    with Application(ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet) as app:
        from crunchctl.cli.status import parse_since
        from crunchctl.errors import UsageError
        from crunchctl.night import trend as core

        if json_out and csv_out:
            raise UsageError("--json and --csv: choose one")
        app.configure()
        at_hz = [float(f) for f in (at or "").split(",") if f.strip()]
        trends, found = core.run(
            app.ledger(write=False),
            [str(f) for f in folders or []],
            since=parse_since(since),
            at=at_hz,
            lines=lines,
            tolerance=tolerance,
        )
        if png is not None and trends:
            from crunchctl.quicklook.products import atomic_write

            with atomic_write(png) as f:
                f.write(core.draw(trends))
        _show(trends, found, folders, json_out=json_out, csv_out=csv_out, png=png, console=app.out)


def _show(
    trends: list[Any],
    found: int,
    folders: list[Path] | None,
    *,
    json_out: bool,
    csv_out: bool,
    png: Path | None,
    console: Console,
) -> None:
    from crunchctl.night import trend as core

    if not found:
        where = f" for recordings under {', '.join(map(str, folders))}" if folders else ""
        typer.echo(
            NO_PEAKS.replace("in the ledger", f"in the ledger{where}"), err=json_out or csv_out
        )
        if json_out:
            output.print_json({"lines": []})
        elif csv_out:
            typer.echo(core.CSV_HEADER)
        return
    if not trends and not (json_out or csv_out):
        typer.echo(
            f"{found} recording{'s' if found != 1 else ''} with peaks, but no line "
            f"above the threshold (--peak-snr) to follow"
        )
        return
    if json_out:
        output.print_json(core.as_json(trends))
    elif csv_out:
        typer.echo(core.as_csv(trends), nl=False)
    else:
        render(core.summary(trends), console)
        if png is not None:
            typer.echo(f"trend picture in {png}")


def render(rows: list[dict[str, Any]], console: Console) -> None:
    from rich.table import Table

    from crunchctl.quicklook.render import fmt_hz

    def num(value: float | None, fmt: str) -> str:
        if value is None:
            return "-"
        return format(value if abs(value) >= 1e-6 else 0.0, fmt)  # no "-0.00"

    table = Table(title="Lines across recordings")
    for name in ("line", "points", "first dB", "last dB", "dB/h", "Hz/h"):
        table.add_column(name, justify="left" if name == "line" else "right")
    for r in rows:
        table.add_row(
            fmt_hz(r["frequency_hz"]),
            str(r["points"]),
            num(r["first_db"], ".2f"),
            num(r["last_db"], ".2f"),
            num(r["db_per_hour"], "+.2f"),
            num(r["hz_per_hour"], "+.1f"),
        )
    console.print(table)
