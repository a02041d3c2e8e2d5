"""``crunchctl process``: options in, one ``recordings.process_files`` call, a summary out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crunchctl.cli import options as opt
from crunchctl.cli.output import print_json, print_plan

if TYPE_CHECKING:
    from crunchctl.cli.application import Application


def process(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Recordings to process (.tiq, SigMF, TDMS, WAV, raw IQ).",
            show_default=False,
            metavar="FILE...",
            # An unreadable file is that file's error, not a usage error for all.
            readable=False,
        ),
    ],
    output: opt.OutputOpt = None,
    www: opt.WwwOpt = None,
    workers: opt.WorkersOpt = None,
    scheduler: opt.SchedulerOpt = None,
    scheduler_timeout: opt.SchedulerTimeoutOpt = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Process recordings even when the ledger says they are done."),
    ] = False,
    incomplete: Annotated[
        bool,
        typer.Option(
            "--incomplete",
            help="Process a recording shorter than its header says (a cut or "
            "still growing .tiq) as far as it goes: ok with a warning, its picture titled "
            "(incomplete), as watch --incomplete-after does.",
        ),
    ] = False,
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
    dry_run: opt.DryRunOpt = False,
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
    from crunchctl.cli.application import Application

    with Application(
        ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet, log_file=log_file
    ) as app:
        settings = app.configure(
            output_path=output,
            www_path=www,
            workers=workers,
            scheduler=scheduler,
            scheduler_timeout=scheduler_timeout,
            products=products,
            **opt.format_options(fmt, sample_rate, center, tdms_channels, verify_checksum),
            **opt.levels(peaks, peak_snr, db_range, scaling),
            **opt.numerics(lframes, nframes, n_avg, zoom_center, zoom_span, window, cmap),
        )
        opt.check_cmap(settings)
        app.start_logs(to_file=not dry_run)
        if dry_run:
            from crunchctl.recordings import run as recordings

            print_plan(
                recordings.plan_files(files, settings, app.ledger_to_read(), force=force), json_out
            )
            return
        _run(app, files, force, json_out, incomplete)


def _run(
    app: Application, files: list[Path], force: bool, json_out: bool, incomplete: bool = False
) -> None:
    from crunchctl.cli.application import page_for
    from crunchctl.ledger.legacy import import_on_first_use
    from crunchctl.recordings import run as recordings

    settings = app.settings
    assert settings is not None
    with app.engine_run("process") as (ledger, reporter, flags):
        import_on_first_use(ledger, settings.tracking_file_path)
        result = recordings.process_files(
            files,
            settings,
            ledger=ledger,
            force=force,
            reporter=reporter,
            flags=flags,
            page=page_for(settings, ledger),
            incomplete=incomplete,
        )
    if json_out:
        print_json(recordings.as_json(result))
    else:
        typer.echo(recordings.describe(result.summary))
        if result.outcomes and result.summary.ok:
            typer.echo(f"products in {settings.output_dir()}")
    app.exit(result.summary)
