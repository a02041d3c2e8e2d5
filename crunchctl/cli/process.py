"""``crunchctl process``: options in, one ``jobs.process_files`` call, a summary out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crunchctl.cli import common as c


def process(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(
        help="Recordings (.tiq) to process.", show_default=False, metavar="FILE...",
        # An unreadable file is that file's error, not a usage error for all (issue 8).
        readable=False)],
    output: c.OutputOpt = None,
    www: c.WwwOpt = None,
    workers: c.WorkersOpt = None,
    scheduler: c.SchedulerOpt = None,
    fmt: c.FormatOpt = None,
    sample_rate: c.SampleRateOpt = None,
    center: c.CenterOpt = None,
    tdms_channels: c.TdmsChannelsOpt = None,
    verify_checksum: c.VerifyChecksumOpt = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Process recordings even when the ledger says they are done.")] = False,
    lframes: c.LframesOpt = None,
    nframes: c.NframesOpt = None,
    n_avg: c.NavgOpt = None,
    zoom_center: c.ZoomCenterOpt = None,
    zoom_span: c.ZoomSpanOpt = None,
    window: c.WindowOpt = None,
    cmap: c.CmapOpt = None,
    json_out: c.JsonOpt = False,
    config: c.ConfigOpt = None,
    ledger: c.LedgerOpt = None,
    log_file: c.LogFileOpt = None,
    verbose: c.VerboseOpt = 0,
    quiet: c.QuietOpt = False,
) -> None:
    """Process recordings now: <stem>.png, <stem>_zoom.png and <stem>.npz for each.

    Recordings the ledger says are done (same file, same settings, products present) are
    skipped; --force processes them again.

    Example: crunchctl process /data/rsa510/*.tiq --output out/ --lframes 65536
    """
    opts = c.common(ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet,
                    log_file=log_file)
    with c.errors_to_exit(opts):
        settings = c.settings_for(opts, output_path=output, www_path=www, workers=workers,
                                  scheduler=scheduler,
                                  **c.format_options(fmt, sample_rate, center, tdms_channels,
                                                     verify_checksum),
                                  **c.numerics(lframes, nframes, n_avg, zoom_center,
                                               zoom_span, window, cmap))
        c.check_cmap(settings)
        console = c.err_console()
        with c.command_logs(opts, settings, console):
            code = _run(files, settings, opts, console, force, json_out)
        raise typer.Exit(code)


def _run(files: list[Path], settings, opts, console, force: bool, json_out: bool) -> int:
    from crunchctl.run import engine, recordings as jobs

    with c.open_ledger(settings, opts) as ledger:
        c.import_tracking_file(ledger, settings)
        reporter = c.reporter_for(console, "process", opts)
        with engine.signals_to_flags(engine.StopFlags(), raise_on_cancel=True) as flags:
            result = jobs.process_files(files, settings, ledger=ledger, force=force,
                                        reporter=reporter, flags=flags)
    if json_out:
        c.print_json(jobs.as_json(result))
    else:
        typer.echo(jobs.describe(result))
        if result.outcomes and result.summary.ok:
            typer.echo(f"products in {settings.output_dir()}")
    return c.exit_code_for(result.summary)
