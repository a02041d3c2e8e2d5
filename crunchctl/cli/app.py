"""The root ``crunchctl`` app and what every command runs inside: its shared options, its
settings, logs and ledger, and the one way out (errors to one line and an exit code).

Exit codes are listed in docs/ARCHITECTURE.md ("Errors and exit codes"). Light imports only.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from crunchctl import __version__
from crunchctl.cli import options as opt
from crunchctl.cli.output import error_line, plain_output, reporter_for
from crunchctl.errors import CrunchError

if TYPE_CHECKING:
    from rich.console import Console

    from crunchctl.config import Settings
    from crunchctl.ledger.store import Ledger
    from crunchctl.run.logs import LogSetup

app = typer.Typer(
    name="crunchctl",
    help="Spectrogram quicklooks and analysis files from IQ recordings (.tiq), live while "
         "an experiment runs and in resumable batches afterwards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass(frozen=True)
class Common:
    """The shared options of one command invocation."""

    config: Path | None = None
    ledger: Path | None = None
    verbose: int = 0
    quiet: bool = False
    log_file: Path | None = None

    @property
    def verbosity(self) -> int:
        return -1 if self.quiet else self.verbose


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crunchctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    config: opt.ConfigOpt = None,
    ledger: opt.LedgerOpt = None,
    log_file: opt.LogFileOpt = None,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """crunchctl: IQ recordings to spectrograms, live and in batches."""
    ctx.obj = Common(config=config, ledger=ledger, verbose=verbose, quiet=quiet,
                     log_file=log_file)


def common(ctx: typer.Context, **kw: Any) -> Common:
    """Merge a command's shared options with those given before the command name."""
    root_opts: Common = ctx.obj if isinstance(ctx.obj, Common) else Common()
    return Common(
        config=kw.get("config") or root_opts.config,
        ledger=kw.get("ledger") or root_opts.ledger,
        verbose=max(kw.get("verbose") or 0, root_opts.verbose),
        quiet=bool(kw.get("quiet")) or root_opts.quiet,
        log_file=kw.get("log_file") or root_opts.log_file,
    )


# ------------------------------------------------------------------------ the way out


def _print_traceback() -> None:
    import traceback

    traceback.print_exc(file=sys.stderr)


def internal_error_message(exc: BaseException, log_path: Path | None) -> str:
    """What an unexpected error tells the user: what happened and what to attach."""
    attach = (f"the log file {log_path}" if log_path is not None
              else "the log file (see --log-file)")
    return (f"internal error: {type(exc).__name__}: {exc}. This is a bug in crunchctl; "
            f"when reporting it, attach {attach} and the output of the same command run "
            f"with -v.")


@contextlib.contextmanager
def errors_to_exit(opts: Common, logs: LogSetup | None = None) -> Iterator[None]:
    """Turn errors into one line on stderr and the exit code of their kind.

    ``CrunchError``: its message and ``exit_code``; Ctrl-C: 130; anything else is a bug:
    exit 1, the traceback goes to the log file. Tracebacks on stderr only with ``-v``.
    """
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except CrunchError as e:
        if opts.verbose:
            _print_traceback()
        error_line(str(e))
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        raise typer.Exit(130) from None
    except Exception as e:  # noqa: BLE001
        import logging

        logging.getLogger("crunchctl").error("internal error", exc_info=True,
                                             extra={"file_only": True})
        if logs is not None:
            logs.flush()
        if opts.verbose:
            _print_traceback()
        error_line(internal_error_message(e, logs.path if logs is not None else None))
        raise typer.Exit(1) from None


def exit_code_for(summary: Any) -> int:
    """A finished run's exit code; the rule is the engine's (``run.engine.exit_code``)."""
    from crunchctl.run.engine import exit_code

    return exit_code(summary)


# --------------------------------------------------------- settings, logs and ledger


def settings_for(opts: Common, **overrides: Any) -> Settings:
    """Resolve settings (CLI > env > config > defaults) with the command's overrides."""
    from crunchctl.config import resolve

    if opts.ledger is not None:
        overrides["ledger_path"] = str(opts.ledger)
    if opts.log_file is not None:
        overrides["log_file"] = str(opts.log_file)
    return resolve(opts.config, {k: (str(v) if isinstance(v, Path) else v)
                                 for k, v in overrides.items()})


def start_logging(opts: Common, settings: Settings | None, console: Console | None,
                  *, flush_every: int = 10) -> LogSetup:
    """The run's log file and console lines (``-q``/``-v`` pick the console level)."""
    from crunchctl.run import logs

    log_file = settings.log_file if settings is not None else (
        str(opts.log_file) if opts.log_file else None)
    return logs.setup(log_file=log_file, verbosity=opts.verbosity, console=console,
                      plain=plain_output(), flush_every=flush_every)


@contextlib.contextmanager
def command_logs(opts: Common, settings: Settings | None, console: Console | None,
                 *, flush_every: int = 10) -> Iterator[LogSetup]:
    """Logging for one command body; errors are logged and mapped before the log closes."""
    logs = start_logging(opts, settings, console, flush_every=flush_every)
    try:
        with errors_to_exit(opts, logs):
            yield logs
    finally:
        logs.close()


def open_ledger(settings: Settings | None, opts: Common, *, create: bool = True,
                flush_every: int = 50) -> Ledger:
    """The ledger named by --ledger, the config, CRUNCHCTL_STATE_DIR or platformdirs."""
    from crunchctl.ledger.store import Ledger, default_ledger_path

    path = (settings.ledger_path if settings is not None and settings.ledger_path
            else (str(opts.ledger) if opts.ledger else None))
    return Ledger(Path(path) if path else default_ledger_path(), flush_every=flush_every,
                  create=create)


@contextlib.contextmanager
def engine_run(opts: Common, settings: Settings, console: Console, label: str, *,
               flush_every: int = 50) -> Iterator[tuple[Ledger, Any, Any]]:
    """The ledger, a progress reporter and signal flags for one run of the engine.

    SIGINT and SIGTERM stop the run after the items in progress; a second Ctrl-C cancels
    them (docs/ARCHITECTURE.md, "Errors and exit codes").
    """
    from crunchctl.run import engine

    with open_ledger(settings, opts, flush_every=flush_every) as ledger:
        reporter = reporter_for(console, label, opts.quiet)
        with engine.signals_to_flags(engine.StopFlags(), raise_on_cancel=True) as flags:
            yield ledger, reporter, flags
