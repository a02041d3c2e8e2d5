"""``crunchctl process``: options in, one ``recordings.process_files`` call, a summary out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crunchctl.cli import options as opt
from crunchctl.cli.app import (Common, command_logs, common, engine_run, errors_to_exit,
                               exit_code_for, settings_for)
from crunchctl.cli.output import err_console, print_json

if TYPE_CHECKING:
    from rich.console import Console

    from crunchctl.config import Settings


def process(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(
        help="Recordings to process (.tiq, SigMF, TDMS, WAV, raw IQ).", show_default=False,
        metavar="FILE...",
        # An unreadable file is that file's error, not a usage error for all.
        readable=False)],
    output: opt.OutputOpt = None,
    www: opt.WwwOpt = None,
    workers: opt.WorkersOpt = None,
    scheduler: opt.SchedulerOpt = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Process recordings even when the ledger says they are done.")] = False,
    fmt: opt.FormatOpt = None,
    sample_rate: opt.SampleRateOpt = None,
    center: opt.CenterOpt = None,
    tdms_channels: opt.TdmsChannelsOpt = None,
    verify_checksum: opt.VerifyChecksumOpt = None,
    lframes: opt.LframesOpt = None,
    nframes: opt.NframesOpt = None,
    n_avg: opt.NavgOpt = None,
    zoom_center: opt.ZoomCenterOpt = None,
    zoom_span: opt.ZoomSpanOpt = None,
    window: opt.WindowOpt = None,
    cmap: opt.CmapOpt = None,
    products: opt.ProductsOpt = None,
    peaks: opt.PeaksOpt = None,
    peak_snr: opt.PeakSnrOpt = None,
    db_range: opt.DbRangeOpt = None,
    scaling: opt.ScalingOpt = None,
    json_out: opt.JsonOpt = False,
    config: opt.ConfigOpt = None,
    ledger: opt.LedgerOpt = None,
    log_file: opt.LogFileOpt = None,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """Process recordings now: <stem>.png, <stem>_zoom.png and <stem>.npz for each
    (--products chooses; spectrum adds <stem>_spectrum.npz, the mean power spectrum).

    Recordings the ledger says are done (same file, same settings, products present) are
    skipped; --force processes them again. An output folder that cannot be written stops
    the command before any recording runs (exit 2).

    Example: crunchctl process /data/rsa510/*.tiq --output out/ --lframes 65536
    """
    opts = common(ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet,
                  log_file=log_file)
    with errors_to_exit(opts):
        settings = settings_for(opts, output_path=output, www_path=www, workers=workers,
                                scheduler=scheduler, products=products,
                                **opt.format_options(fmt, sample_rate, center, tdms_channels,
                                                     verify_checksum),
                                **opt.levels(peaks, peak_snr, db_range, scaling),
                                **opt.numerics(lframes, nframes, n_avg, zoom_center,
                                               zoom_span, window, cmap))
        opt.check_cmap(settings)
        console = err_console()
        with command_logs(opts, settings, console):
            code = _run(files, settings, opts, console, force, json_out)
        raise typer.Exit(code)


def _run(files: list[Path], settings: Settings, opts: Common, console: Console, force: bool,
         json_out: bool) -> int:
    from crunchctl.ledger.legacy import import_on_first_use
    from crunchctl.recordings import run as recordings

    with engine_run(opts, settings, console, "process") as (ledger, reporter, flags):
        import_on_first_use(ledger, settings.tracking_file_path)
        result = recordings.process_files(files, settings, ledger=ledger, force=force,
                                          reporter=reporter, flags=flags)
    if json_out:
        print_json(recordings.as_json(result))
    else:
        typer.echo(recordings.describe(result.summary))
        if result.outcomes and result.summary.ok:
            typer.echo(f"products in {settings.output_dir()}")
    return exit_code_for(result.summary)
