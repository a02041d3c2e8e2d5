"""``crunchctl batch``: options in, one ``batch.run_batch`` call, a summary table out."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from crunchctl.cli import common as c


class Scale(str, Enum):
    linear = "linear"
    log = "log"


_FIG = "Figure"


def batch(
    ctx: typer.Context,
    items: Annotated[str, typer.Argument(
        help="Items file: one item per line (paths or ids), blank lines and '#' comments "
             "ignored; '-' reads stdin.", show_default=False, metavar="ITEMS")],
    loader: Annotated[Optional[str], typer.Option(
        "--loader", "-l", show_default=False,
        help="iq, npz, package.module:function or path/to/file.py:function "
             "[default: iq for .tiq items, npz for .npz items].")] = None,
    output: c.OutputOpt = None,
    workers: c.WorkersOpt = None,
    resume: Annotated[bool, typer.Option(
        "--resume/--fresh",
        help="--resume skips items already done with the same settings; --fresh redoes "
             "every item.")] = True,
    flush_every: Annotated[int, typer.Option(
        "--flush-every", min=1, help="Write progress to the ledger every N outcomes.")] = 10,
    log_flush_every: Annotated[Optional[int], typer.Option(
        "--log-flush-every", min=1, show_default=False,
        help="Write buffered log records every N records [default: --flush-every].")] = None,
    y_min: Annotated[Optional[float], typer.Option(
        "--y-min", help="Lower y limit of rows without their own.", show_default=False,
        rich_help_panel=_FIG)] = None,
    y_max: Annotated[Optional[float], typer.Option(
        "--y-max", help="Upper y limit of rows without their own.", show_default=False,
        rich_help_panel=_FIG)] = None,
    z_min: Annotated[Optional[float], typer.Option(
        "--z-min", help="Lower colour bound of rows without their own.", show_default=False,
        rich_help_panel=_FIG)] = None,
    z_max: Annotated[Optional[float], typer.Option(
        "--z-max", help="Upper colour bound of rows without their own.", show_default=False,
        rich_help_panel=_FIG)] = None,
    y_scale: Annotated[Scale, typer.Option(
        "--y-scale", help="y axis scale.", rich_help_panel=_FIG)] = Scale.linear,
    z_scale: Annotated[Scale, typer.Option(
        "--z-scale", help="Colour scale (log: zeros and negatives get the lowest colour).",
        rich_help_panel=_FIG)] = Scale.linear,
    percentiles: Annotated[str, typer.Option(
        "--percentiles", help="Colour bounds LO,HI as percentiles of the values, for rows "
                              "without bounds.", rich_help_panel=_FIG)] = "1,99",
    cmap: c.CmapOpt = None,
    events: Annotated[Optional[Path], typer.Option(
        "--events", help="Event times, one per line (UNIX seconds or ISO 8601), drawn as "
                         "vertical lines.", dir_okay=False, show_default=False,
        rich_help_panel=_FIG)] = None,
    zoom_minutes: Annotated[Optional[float], typer.Option(
        "--zoom-minutes", show_default=False,
        help="Add a right-hand zoom column this many minutes wide around the events.",
        rich_help_panel=_FIG)] = None,
    dpi: Annotated[int, typer.Option(
        "--dpi", min=20, max=600, help="Figure resolution.", rich_help_panel=_FIG)] = 100,
    lframes: c.LframesOpt = None,
    nframes: c.NframesOpt = None,
    n_avg: c.NavgOpt = None,
    zoom_center: c.ZoomCenterOpt = None,
    zoom_span: c.ZoomSpanOpt = None,
    window: c.WindowOpt = None,
    json_out: c.JsonOpt = False,
    config: c.ConfigOpt = None,
    ledger: c.LedgerOpt = None,
    log_file: c.LogFileOpt = None,
    verbose: c.VerboseOpt = 0,
    quiet: c.QuietOpt = False,
) -> None:
    """One multi-row spectrogram figure per item, resumably: <output>/<item>.png.

    A loader turns each item into rows: built-in 'iq' (a .tiq recording: full and zoomed
    spectrogram) and 'npz' (arr_0/arr_1/arr_2, or x, y, data arrays), or a plugin function
    returning a list of dicts with x, y, data and optional label, y_min, y_max, z_min,
    z_max, vmin, vmax, y_label, z_label. Items whose loader returns nothing are 'no data';
    errors are recorded and the run goes on. Ctrl-C stops after the items in progress;
    run the same command again to finish.

    Example: crunchctl batch orbits.txt --loader myplugin.py:load --events events.txt
    --zoom-minutes 10 --z-scale log -o figures/
    """
    opts = c.common(ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet,
                    log_file=log_file)
    with c.errors_to_exit(opts):
        from crunchctl.errors import UsageError
        from crunchctl.batch.figure import FigureOptions, check_percentiles

        settings = c.settings_for(opts, output_path=output, workers=workers,
                                  **c.numerics(lframes, nframes, n_avg, zoom_center,
                                               zoom_span, window, cmap))
        c.check_cmap(settings)
        try:
            pct = check_percentiles(percentiles)
        except ValueError as e:
            raise UsageError(f"--percentiles {e}") from None
        from crunchctl.batch import run as core

        event_times = core.read_events(events) if events is not None else ()
        figure = FigureOptions(y_min=y_min, y_max=y_max, z_min=z_min, z_max=z_max,
                               y_scale=y_scale.value, z_scale=z_scale.value,
                               cmap=settings.cmap, percentiles=pct,
                               zoom_minutes=zoom_minutes, events=event_times, dpi=dpi)
        if zoom_minutes is not None and not zoom_minutes > 0:
            raise UsageError(f"--zoom-minutes {zoom_minutes:g}: expected a positive number "
                             f"of minutes")
        for lo, hi, what in ((y_min, y_max, "--y-min/--y-max"),
                             (z_min, z_max, "--z-min/--z-max")):
            if lo is not None and hi is not None and not hi > lo:
                raise UsageError(f"{what}: {lo:g} is not below {hi:g}")
        item_list = core.read_items(items)
        console = c.err_console()
        with c.command_logs(opts, settings, console,
                            flush_every=log_flush_every or flush_every) as logs:
            options = core.BatchOptions(
                output=str(settings.output_dir()), loader=loader or "auto",
                figure=figure, settings=settings, workers=settings.workers,
                fresh=not resume, source=core.items_source(items))
            code = _run(core, item_list, items, options, opts, settings, console,
                        flush_every, json_out, logs)
        raise typer.Exit(code)


def _run(core, item_list, items: str, options, opts, settings, console, flush_every: int,
         json_out: bool, logs) -> int:
    from crunchctl.run import engine

    if not item_list:
        where = "stdin" if items == "-" else items
        if json_out:
            c.print_json(core.as_json(core.BatchResult(engine.RunSummary(),
                                                       output=options.output)))
        else:
            typer.echo(f"nothing to do: {where} lists no items")
        return 0
    with c.open_ledger(settings, opts, flush_every=flush_every) as ledger:
        reporter = c.reporter_for(console, "batch", opts)
        with engine.signals_to_flags(engine.StopFlags(), raise_on_cancel=True) as flags:
            result = core.run_batch(item_list, options, ledger=ledger, reporter=reporter,
                                    flags=flags)
    if result.summary.interrupted_by is not None:
        logs.flush()
    if json_out:
        c.print_json(core.as_json(result))
    else:
        _print_summary(core, result)
    return c.exit_code_for(result.summary)


def _print_summary(core, result) -> None:
    import sys

    rows = core.summary_rows(result)
    failed = result.by_status("error")
    no_data = result.by_status("no_data")
    if sys.stdout.isatty():
        from rich.table import Table

        table = Table(title="crunchctl batch", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for label, value in rows:
            table.add_row(label, value)
        console = c.out_console()
        console.print(table)
        for title, outs in (("failed", failed), ("no data", no_data)):
            if outs:
                console.print(f"[bold]{title}:[/bold]")
                for o in outs[:10]:
                    console.print(f"  {o.error}", markup=False)
                if len(outs) > 10:
                    console.print(f"  ... and {len(outs) - 10} more (crunchctl status --errors)")
        return
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    for title, outs in (("failed", failed), ("no data", no_data)):
        if outs:
            lines.append(f"{title}:")
            lines.extend(f"  {o.error}" for o in outs[:10])
            if len(outs) > 10:
                lines.append(f"  ... and {len(outs) - 10} more (crunchctl status --errors)")
    typer.echo("\n".join(lines))
