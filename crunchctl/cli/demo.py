"""``crunchctl demo``: write a realistic recording, process it, say where everything is."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from crunchctl.cli import options as opt

if TYPE_CHECKING:
    from crunchctl.cli.application import Application
    from crunchctl.config import Settings


def demo(
    ctx: typer.Context,
    folder: Annotated[
        Path,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="Folder for the demo recording, products, web folder and ledger.",
            file_okay=False,
        ),
    ] = Path("crunchctl-demo"),
    frames: Annotated[
        int,
        typer.Option(
            "--frames",
            metavar="N",
            help="Frames of 65536 samples in the recording (94 is about 50 MB).",
            min=1,
        ),
    ] = 94,
    noise_only: Annotated[
        bool, typer.Option("--noise-only", help="A recording of receiver noise only, no lines.")
    ] = False,
    workers: opt.WorkersOpt = None,
    products: opt.ProductsOpt = None,
    ledger: Annotated[
        Optional[Path],
        typer.Option(
            "--ledger",
            metavar="DIR",
            help="Ledger folder [default: DIR/ledger].",
            show_default=False,
        ),
    ] = None,
    log_file: opt.LogFileOpt = None,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """Make a realistic recording and process it the way process and watch do.

    The recording (Int32 .tiq, 245 MHz centre, 3.125 MS/s, Schottky-like lines drifting
    over a noise floor) goes to DIR/recordings/rsa510/, the products to DIR/products/, the
    web copies to DIR/www/ and the ledger to DIR/ledger/ (unless --ledger is given).

    Example: crunchctl demo --dir /tmp/crunch-demo
    """
    from crunchctl.cli.application import Application

    with Application(ctx, ledger=ledger, verbose=verbose, quiet=quiet, log_file=log_file) as app:
        folder = folder.absolute()
        settings = app.configure(
            output_path=folder / "products",
            www_path=folder / "www",
            workers=workers,
            products=products,
            ledger_path=str(app.opts.ledger or folder / "ledger"),
        )
        _make_folder(folder)
        app.start_logs()
        _run(app, folder, frames, noise_only, settings)


def _make_folder(folder: Path) -> None:
    """The demo's folders are made first: one that cannot be is a usage error (exit 2)."""
    from crunchctl.errors import UsageError

    try:
        (folder / "recordings" / "rsa510").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{folder}: cannot create the demo folder: {e.strerror or e}") from None


def _run(app: Application, folder: Path, frames: int, noise_only: bool, settings: Settings) -> None:
    import time

    from crunchctl.cli.application import page_for
    from crunchctl.formats import synth
    from crunchctl.recordings import run as recordings

    rec_dir = folder / "recordings" / "rsa510"
    name = "20240417_130522_noise.tiq" if noise_only else "20240417_130522.tiq"
    path = rec_dir / name
    spec = synth.RecordingSpec(nframes=frames, lines=() if noise_only else None)
    t0 = time.time()
    made = "reused from an earlier demo"
    if not path.exists() or path.stat().st_size < spec.nsamples * 8:
        typer.echo(f"writing the demo recording {path} ...", err=True)
        synth.make_recording(path, spec)
        made = f"made in {time.time() - t0:.1f} s"
    size_mb = path.stat().st_size / 1e6
    typer.echo(
        f"recording: {path}  ({size_mb:.1f} MB, {frames} frames of {spec.lframes} "
        f"samples, centre {spec.center / 1e6:g} MHz, {spec.fs / 1e6:g} MS/s; "
        f"{made})"
    )
    with app.engine_run("demo") as (ledger, reporter, flags):
        result = recordings.process_files(
            [path],
            settings,
            ledger=ledger,
            force=True,
            reporter=reporter,
            flags=flags,
            source="demo",
            page=page_for(settings, ledger),
        )
    typer.echo(recordings.describe(result.summary))
    for o in result.outcomes:
        if o.status == "ok":
            typer.echo("products:")
            for p in o.products:
                typer.echo(f"  {p}")
    if result.published:
        typer.echo("web folder:")
        for p in result.published:
            typer.echo(f"  {p}")
    page = Path(settings.www_path or "") / "index.html"
    if settings.www_path and page.exists():
        typer.echo(f"control-room page: {page.as_uri()}")
    typer.echo(f"ledger: {ledger.path}   (try: crunchctl status --ledger {ledger.path})")
    app.exit(result.summary)
