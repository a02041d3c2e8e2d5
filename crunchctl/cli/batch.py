"""``crunchctl batch``: options in, one ``batch.run.run_batch`` call, a summary table out."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from crunchctl.cli import options as opt, output


class Scale(str, Enum):
    linear = "linear"
    log = "log"


class Names(str, Enum):
    full = "full"
    stem = "stem"


_FIG = "Figure"
_PICK = "Choosing items"


def batch(
    ctx: typer.Context,
    items: Annotated[
        str,
        typer.Argument(
            help="Items file: one item per line (paths or ids), blank lines and '#' comments "
            "ignored; '-' reads stdin.",
            show_default=False,
            metavar="ITEMS",
        ),
    ],
    loader: Annotated[
        Optional[str],
        typer.Option(
            "--loader",
            "-l",
            metavar="LOADER",
            show_default=False,
            help="iq, npz, package.module:function or path/to/file.py:function "
            "[default: npz for .npz items, iq for recordings].",
        ),
    ] = None,
    output_dir: opt.OutputOpt = None,
    workers: opt.WorkersOpt = None,
    scheduler: opt.SchedulerOpt = None,
    scheduler_timeout: opt.SchedulerTimeoutOpt = None,
    fmt: opt.FormatOpt = None,
    sample_rate: opt.SampleRateOpt = None,
    center: opt.CenterOpt = None,
    tdms_channels: opt.TdmsChannelsOpt = None,
    verify_checksum: opt.VerifyChecksumOpt = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--fresh",
            help="--resume skips items already done with the same settings; --fresh redoes "
            "every item.",
        ),
    ] = True,
    flush_every: Annotated[
        int,
        typer.Option(
            "--flush-every",
            metavar="N",
            min=1,
            help="Write progress to the ledger every N outcomes.",
        ),
    ] = 10,
    log_flush_every: Annotated[
        Optional[int],
        typer.Option(
            "--log-flush-every",
            metavar="N",
            min=1,
            show_default=False,
            help="Write buffered log records every N records [default: --flush-every].",
        ),
    ] = None,
    only: Annotated[
        Optional[list[str]],
        typer.Option(
            "--only",
            show_default=False,
            metavar="GLOB",
            rich_help_panel=_PICK,
            help="Only items matching this glob (the whole item or its file name); repeat for "
            "more.",
        ),
    ] = None,
    limit: Annotated[
        Optional[int],
        typer.Option(
            "--limit",
            min=1,
            show_default=False,
            metavar="N",
            rich_help_panel=_PICK,
            help="Run at most N due items now (try a loader on a few); the next run goes on "
            "with the rest.",
        ),
    ] = None,
    names: Annotated[
        Names,
        typer.Option(
            "--names",
            metavar="full|stem",
            rich_help_panel=_PICK,
            help="Figure names: full (the whole item, unique) or stem (a path item's file "
            "stem; items sharing a stem keep the full form).",
        ),
    ] = Names.full,
    y_min: Annotated[
        Optional[float],
        typer.Option(
            "--y-min",
            metavar="VALUE",
            help="Lower y limit of rows without their own.",
            show_default=False,
            rich_help_panel=_FIG,
        ),
    ] = None,
    y_max: Annotated[
        Optional[float],
        typer.Option(
            "--y-max",
            metavar="VALUE",
            help="Upper y limit of rows without their own.",
            show_default=False,
            rich_help_panel=_FIG,
        ),
    ] = None,
    z_min: Annotated[
        Optional[float],
        typer.Option(
            "--z-min",
            metavar="VALUE",
            help="Lower colour bound of rows without their own.",
            show_default=False,
            rich_help_panel=_FIG,
        ),
    ] = None,
    z_max: Annotated[
        Optional[float],
        typer.Option(
            "--z-max",
            metavar="VALUE",
            help="Upper colour bound of rows without their own.",
            show_default=False,
            rich_help_panel=_FIG,
        ),
    ] = None,
    y_scale: Annotated[
        Scale,
        typer.Option("--y-scale", metavar="linear|log", help="y axis scale.", rich_help_panel=_FIG),
    ] = Scale.linear,
    z_scale: Annotated[
        Scale,
        typer.Option(
            "--z-scale",
            metavar="linear|log",
            help="Colour scale (log: zeros and negatives get the lowest colour).",
            rich_help_panel=_FIG,
        ),
    ] = Scale.linear,
    percentiles: Annotated[
        str,
        typer.Option(
            "--percentiles",
            metavar="LO,HI",
            help="Colour bounds LO,HI as percentiles of the values, for rows without bounds.",
            rich_help_panel=_FIG,
        ),
    ] = "1,99",
    cmap: opt.CmapOpt = None,
    events: Annotated[
        Optional[Path],
        typer.Option(
            "--events",
            metavar="FILE",
            help="Event times, one per line (UNIX seconds, or ISO 8601: UTC unless the time "
            "says its zone, as --since), drawn as vertical lines.",
            dir_okay=False,
            show_default=False,
            rich_help_panel=_FIG,
        ),
    ] = None,
    zoom_minutes: Annotated[
        Optional[float],
        typer.Option(
            "--zoom-minutes",
            metavar="MINUTES",
            show_default=False,
            help="Add a right-hand zoom column this many minutes wide around each event (at "
            "most 4; the figure names the others). Without --events it warns once and zooms "
            "only on events a loader's rows bring.",
            rich_help_panel=_FIG,
        ),
    ] = None,
    dpi: Annotated[
        int,
        typer.Option(
            "--dpi", metavar="DPI", min=20, max=600, help="Figure resolution.", rich_help_panel=_FIG
        ),
    ] = 100,
    x_label: Annotated[
        Optional[str],
        typer.Option(
            "--x-label",
            metavar="TEXT",
            show_default=False,
            rich_help_panel=_FIG,
            help="x axis label; plain numbers are then drawn as numbers, never as dates "
            "[default: the rows' own, else 'time (UTC)' for times, 'time (s)' for rows "
            "with x_origin, else 'x'].",
        ),
    ] = None,
    y_label: Annotated[
        Optional[str],
        typer.Option(
            "--y-label",
            metavar="TEXT",
            show_default=False,
            rich_help_panel=_FIG,
            help="y axis label of every row [default: the row's own, else 'y'].",
        ),
    ] = None,
    z_label: Annotated[
        Optional[str],
        typer.Option(
            "--z-label",
            metavar="TEXT",
            show_default=False,
            rich_help_panel=_FIG,
            help="Colour bar label of every row [default: the row's own, else 'value'].",
        ),
    ] = None,
    lframes: opt.LframesOpt = None,
    nframes: opt.NframesOpt = None,
    n_avg: opt.NavgOpt = None,
    zoom_center: opt.ZoomCenterOpt = None,
    zoom_span: opt.ZoomSpanOpt = None,
    window: opt.WindowOpt = None,
    products: opt.ProductsOpt = None,
    peaks: opt.PeaksOpt = None,
    peak_snr: opt.PeakSnrOpt = None,
    db_range: opt.DbRangeOpt = None,
    scaling: opt.ScalingOpt = None,
    json_out: opt.JsonOpt = False,
    dry_run: opt.DryRunOpt = False,
    config: opt.ConfigOpt = None,
    ledger: opt.LedgerOpt = None,
    log_file: opt.LogFileOpt = None,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """One multi-row spectrogram figure per item, resumably: <output>/<item>.png.

    A loader turns each item into rows: built-in 'iq' (a recording in any format: full and
    zoomed spectrogram) and 'npz' (arr_0/arr_1/arr_2, or x, y, data arrays), or a plugin function
    returning a list of dicts with x, y, data and optional label, y_min, y_max, z_min,
    z_max, vmin, vmax, x_label, y_label, z_label, events, x_origin. With --products
    ...,spectrum,peaks,campaign the iq loader also writes those products of each recording
    beside the figure, as process does, and records them for trend. Items whose loader
    returns nothing are 'no data'; errors are recorded and the run goes on. Ctrl-C stops
    after the items in progress; run the same command again to finish.

    Example: crunchctl batch orbits.txt --loader myplugin.py:load --events events.txt
    --zoom-minutes 10 --z-scale log -o figures/
    """
    from crunchctl.cli.application import Application

    with Application(
        ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet, log_file=log_file
    ) as app:
        from crunchctl.batch import run as core
        from crunchctl.batch.figure import FigureOptions, parse_percentiles

        settings = app.configure(
            output_path=output_dir,
            workers=workers,
            scheduler=scheduler,
            scheduler_timeout=scheduler_timeout,
            products=products,
            **opt.levels(peaks, peak_snr, db_range, scaling),
            **opt.format_options(fmt, sample_rate, center, tdms_channels, verify_checksum),
            **opt.numerics(lframes, nframes, n_avg, zoom_center, zoom_span, window, cmap),
        )
        opt.check_cmap(settings)
        figure = FigureOptions(
            y_min=y_min,
            y_max=y_max,
            z_min=z_min,
            z_max=z_max,
            y_scale=y_scale.value,
            z_scale=z_scale.value,
            cmap=settings.cmap,
            percentiles=parse_percentiles(percentiles),
            zoom_minutes=zoom_minutes,
            dpi=dpi,
            x_label=x_label,
            y_label=y_label,
            z_label=z_label,
            events=core.read_events(events) if events is not None else (),
        )
        options = core.BatchOptions(
            output=str(settings.output_dir()),
            loader=loader or core.AUTO,
            figure=figure,
            settings=settings,
            workers=settings.workers,
            fresh=not resume,
            source=core.items_source(items),
            only=tuple(only or ()),
            limit=limit,
            names=names.value,
            products=core.recording_products(settings.products),
        )
        item_list = core.read_items(items)
        if dry_run:
            app.start_logs(to_file=False)
            output.print_plan(core.plan_batch(item_list, options, app.ledger_to_read()), json_out)
            return
        if not item_list:
            result = core.BatchResult(output=options.output)
        else:
            app.start_logs(flush_every=log_flush_every or flush_every)
            # User code's output goes to stderr; with --json, stdout is the document alone.
            with (
                output.stdout_to_stderr(fd_level=json_out),
                app.engine_run("batch", flush_every=flush_every) as (led, reporter, flags),
            ):
                result = core.run_batch(
                    item_list, options, ledger=led, reporter=reporter, flags=flags
                )
        _print(result, items, json_out)
        app.exit(result.summary)


def _print(result: Any, items: str, json_out: bool) -> None:
    from crunchctl.batch import run as core

    if json_out:
        output.print_json(core.as_json(result))
    elif not result.items:
        where = "stdin" if items == "-" else items
        typer.echo(
            f"nothing to do: no item of {where} matches --only"
            if result.filtered_out
            else f"nothing to do: {where} lists no items"
        )
    else:
        output.print_summary(
            "crunchctl batch",
            core.summary_rows(result),
            [
                ("failed", [o.error for o in result.by_status("error")]),
                ("no data", [o.error for o in result.by_status("no_data")]),
            ],
        )
