"""The root ``crunchctl`` app and what every command runs inside: its shared options, its
settings, logs and ledger, and the one way out (errors to one line and an exit code).

Exit codes are listed in docs/ARCHITECTURE.md ("Errors and exit codes"). Light imports only.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from crunchctl import __version__
from crunchctl.cli import options as opt
from crunchctl.cli.output import error_line, plain_output, reporter_for
from crunchctl.errors import CrunchError

if TYPE_CHECKING:
    from rich.console import Console

    from crunchctl.config import Settings
    from crunchctl.ledger.store import Ledger
    from crunchctl.run.logs import LogSetup

# ------------------------------------------------------------------- usage errors

# Typer raises the usage errors of the click it bundles; found through its public BadParameter.
_ERRORS = sys.modules[typer.BadParameter.__module__]
_UsageError: type[Exception] = getattr(_ERRORS, "UsageError")
_NoSuchOption: type[Exception] = getattr(_ERRORS, "NoSuchOption")


#: The validation layer's wording of a bad value -> what the user reads.
_PLAIN = (
    (r"Input should be a valid integer.*", "expected a whole number"),
    (r"Input should be a valid number.*", "expected a number"),
    (r"Input should be a valid boolean.*", "expected true or false"),
    (r"Input should be greater than or equal to (\S+)", r"expected at least \1"),
    (r"Input should be less than or equal to (\S+)", r"expected at most \1"),
    (r"Input should be greater than (\S+)", r"expected more than \1"),
    (r"Input should be less than (\S+)", r"expected less than \1"),
)


def _choice_message(message: str) -> str:
    """A bad value's message in plain words: "Value error, 'x' is not one of 'a', 'b'." (the
    validation layer's wording) becomes a sentence listing the choices."""
    for pattern, plain in _PLAIN:
        if re.fullmatch(pattern, message.strip(), flags=re.S):
            return re.sub(pattern, plain, message.strip(), flags=re.S)
    m = re.fullmatch(r"(?:Value error, )?(.+?) is not one of (.+?)\.?", message.strip(),
                     flags=re.S)
    if m is None:
        return message.removeprefix("Value error, ")
    choices = [c.strip().strip("'\"") for c in m.group(2).split(",")]
    return f"{m.group(1)} is not a choice; choose {', '.join(choices[:-1])} or {choices[-1]}" \
        if len(choices) > 1 else f"{m.group(1)} is not a choice; choose {choices[0]}"


def _positional_hint(error: Any, argv: list[str]) -> str | None:
    """For ``watch --folder X``: FOLDER is an argument, so say how to give it."""
    ctx = getattr(error, "ctx", None)
    option = getattr(error, "option_name", "") or ""
    if ctx is None or not option.startswith("--"):
        return None
    name = option[2:].split("=", 1)[0]
    wanted = name.replace("-", "_").lower()
    for param in ctx.command.params:
        if getattr(param, "param_type_name", "") != "argument":
            continue
        metavar = (param.metavar or param.name or "").strip("[].").upper()
        if wanted not in ((param.name or "").lower(), metavar.lower()):
            continue
        value = None
        for i, word in enumerate(argv):
            if word == option and i + 1 < len(argv):
                value = argv[i + 1]
            elif word.startswith(option + "="):
                value = word.split("=", 1)[1]
        example = f"{ctx.command_path} {value if value is not None else metavar}"
        return (f"{metavar} is a positional argument, not an option: give it without "
                f"--{name} (for example: {example})")
    return None


class CrunchGroup(TyperGroup):
    """The root group: usage errors say what to type, in plain words."""

    _argv: list[str] = []

    def main(self, args: Any = None, *a: Any, **kw: Any) -> Any:
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().main(args, *a, **kw)

    def _plain(self, e: Any) -> None:
        if isinstance(e, _NoSuchOption):
            hint = _positional_hint(e, self._argv)
            if hint is not None:
                e.message = hint
                e.possibilities = None
        elif isinstance(e, typer.BadParameter):
            e.message = _choice_message(e.message)

    def make_context(self, *a: Any, **kw: Any) -> Any:
        try:
            return super().make_context(*a, **kw)
        except _UsageError as e:
            self._plain(e)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _UsageError as e:
            self._plain(e)
            raise


app = typer.Typer(
    name="crunchctl",
    cls=CrunchGroup,
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
    _NOTES.clear()
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


#: Notes on the settings said in this invocation (said once, logged when the log opens).
_NOTES: dict[str, bool] = {}


def settings_for(opts: Common, **overrides: Any) -> Settings:
    """Resolve settings (CLI > env > config > defaults) with the command's overrides.

    Settings that work but are probably not what was meant (``config.notes``) are said
    once, as a warning line on stderr, and go to the log file when it opens.
    """
    from crunchctl.config import notes, resolve

    if opts.ledger is not None:
        overrides["ledger_path"] = str(opts.ledger)
    if opts.log_file is not None:
        overrides["log_file"] = str(opts.log_file)
    settings = resolve(opts.config, {k: (str(v) if isinstance(v, Path) else v)
                                     for k, v in overrides.items()})
    for note in notes(settings):
        if note not in _NOTES:
            _NOTES[note] = False  # not logged yet
            if not opts.quiet:
                typer.echo(f"Warning: {note}", err=True)
    return settings


def start_logging(opts: Common, settings: Settings | None, console: Console | None,
                  *, flush_every: int = 10) -> LogSetup:
    """The run's log file and console lines (``-q``/``-v`` pick the console level)."""
    from crunchctl.run import logs

    log_file = settings.log_file if settings is not None else (
        str(opts.log_file) if opts.log_file else None)
    setup = logs.setup(log_file=log_file, verbosity=opts.verbosity, console=console,
                       plain=plain_output(), flush_every=flush_every)
    log = logging.getLogger("crunchctl")
    for note, logged in list(_NOTES.items()):
        if not logged:  # said on stderr already
            log.warning("%s", note, extra={"file_only": True})
            _NOTES[note] = True
    if settings is not None and opts.verbosity >= 2:
        from crunchctl.config import describe

        # -vv: every setting and where it came from, once per command.
        log.debug("settings (config file: %s):", settings.config_file or "none")
        for line in describe(settings):
            log.debug("  %s", line)
    return setup


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
    import signal

    from crunchctl.run import engine
    from crunchctl.run.executor import warm_up

    warm_up(settings)

    class _Signals(engine.signals_to_flags):
        def _handler(self, signum: int, frame: Any) -> None:
            self.flags.request(signum)
            if self.on_signal is not None:
                self.on_signal(signum)
            # A task running in this very process can only be cancelled by an exception;
            # worker processes are killed by the engine, which then ends the run as usual.
            if self.flags.cancel.is_set() and _inline_task(frame):
                raise KeyboardInterrupt

    def said(signum: int) -> None:
        n = getattr(reporter, "in_progress", 0)
        if flags.cancel.is_set():
            text = f"cancelling: {n} in progress (they will be done by the next run)"
        else:
            how = ", Ctrl-C again to cancel" if signum == signal.SIGINT and n else ""
            text = (f"stopping: {n} in progress{how}" if n
                    else "stopping: nothing in progress")
        logging.getLogger("crunchctl").info("%s", text, extra={"file_only": True})
        reporter.message(text)

    with open_ledger(settings, opts, flush_every=flush_every) as ledger:
        reporter = reporter_for(console, label, opts.quiet)
        with _Signals(engine.StopFlags(), said) as flags:
            yield ledger, reporter, flags


def _inline_task(frame: Any) -> bool:
    """The signal arrived while a task ran in this process (``executor.run_inline``)."""
    while frame is not None:
        if frame.f_code.co_name == "run_inline":
            return True
        frame = frame.f_back
    return False
