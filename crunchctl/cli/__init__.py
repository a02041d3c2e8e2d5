"""The ``crunchctl`` command line: the Typer app, global options, command registration.

Command modules are thin (options in, one core call, output). Nothing heavy is imported
here, so ``crunchctl --help`` and shell completion stay fast.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from crunchctl import __version__
from crunchctl.cli import common as c
from crunchctl.cli.batch import batch
from crunchctl.cli.demo import demo
from crunchctl.cli.importcmd import import_
from crunchctl.cli.process import process
from crunchctl.cli.reset import reset
from crunchctl.cli.status import status
from crunchctl.cli.watch import watch

app = typer.Typer(
    name="crunchctl",
    help="Spectrogram quicklooks and analysis files from IQ recordings (.tiq), live while "
         "an experiment runs and in resumable batches afterwards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crunchctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    config: c.ConfigOpt = None,
    ledger: c.LedgerOpt = None,
    log_file: c.LogFileOpt = None,
    verbose: c.VerboseOpt = 0,
    quiet: c.QuietOpt = False,
) -> None:
    """crunchctl: IQ recordings to spectrograms, live and in batches."""
    ctx.obj = c.Common(config=config, ledger=ledger, verbose=verbose, quiet=quiet,
                       log_file=log_file)


app.command("process")(process)
app.command("status")(status)
app.command("reset")(reset)
app.command("import")(import_)
app.command("demo")(demo)
app.command("watch")(watch)
app.command("batch")(batch)


def main() -> None:
    """Entry point of the ``crunchctl`` script."""
    app(prog_name="crunchctl")
