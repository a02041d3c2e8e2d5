"""The application object every command runs inside: its settings, consoles, log file,
ledger, stop signals and the one way out (docs/ARCHITECTURE.md, "The application").

Light imports only: rich, the ledger and the engine are imported when a command uses them.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from crunchctl.cli.app import _NOTES, Common, common
from crunchctl.cli.output import error_line, plain_output, reporter_for
from crunchctl.errors import CrunchError

if TYPE_CHECKING:
    from rich.console import Console

    from crunchctl.config import Settings
    from crunchctl.ledger.store import Ledger
    from crunchctl.run.engine import RunSummary, StopFlags
    from crunchctl.run.logs import LogSetup

log = logging.getLogger("crunchctl")


def internal_error_message(exc: BaseException, log_path: Path | None) -> str:
    """What an unexpected error tells the user: what happened and what to attach."""
    attach = f"the log file {log_path}" if log_path is not None else "the log file (see --log-file)"
    return (
        f"internal error: {type(exc).__name__}: {exc}. This is a bug in crunchctl; "
        f"when reporting it, attach {attach} and the output of the same command run "
        f"with -v."
    )


def stop_message(signum: int, in_progress: int, cancelling: bool) -> str:
    """What a command says when a stop signal arrives: the same words in every command."""
    if cancelling:
        return f"cancelling: {in_progress} in progress (they will be done by the next run)"
    if not in_progress:
        return "stopping: nothing in progress"
    again = ", Ctrl-C again to cancel" if signum == signal.SIGINT else ""
    return f"stopping: {in_progress} in progress{again}"


class Application:
    """One command invocation, from its options to its exit code.

    Use it as a context manager around the command's body: errors become one line on
    stderr and their exit code, Ctrl-C before the run starts is 130, an unexpected error
    is a bug report line (exit 1), and the log file is closed last.

    Args:
        ctx: the command's typer context (options given before the command name).
        **shared: the command's own shared options (config, ledger, verbose, quiet,
            log_file).
    """

    def __init__(self, ctx: typer.Context | None = None, **shared: Any) -> None:
        self.opts: Common = common(ctx, **shared)
        self.settings: Settings | None = None
        self.logs: LogSetup | None = None
        self._err: Console | None = None

    # ------------------------------------------------------------------ the way out

    def __enter__(self) -> Application:
        return self

    def __exit__(self, etype: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc is None or isinstance(exc, (typer.Exit, typer.Abort, SystemExit)):
                return
            code = self._report(exc)
        finally:
            self.close()
        raise typer.Exit(code) from None

    def _report(self, exc: BaseException) -> int:
        """One line on stderr for an error that ends the command; its exit code."""
        if isinstance(exc, CrunchError):
            if self.opts.verbose:
                _print_traceback(exc)
            error_line(str(exc))
            return exc.exit_code
        if isinstance(exc, KeyboardInterrupt):
            # Ctrl-C before the stop signals were routed to the run (starting up).
            typer.echo("Interrupted.", err=True)
            return 130
        log.error("internal error", exc_info=exc, extra={"file_only": True})
        if self.logs is not None:
            self.logs.flush()
        if self.opts.verbose:
            _print_traceback(exc)
        error_line(internal_error_message(exc, self.logs.path if self.logs else None))
        return 1

    def close(self) -> None:
        if self.logs is not None:
            self.logs.close()
            self.logs = None

    def exit(self, summary: RunSummary, *, service: bool = False) -> NoReturn:
        """End the command with the exit code of a run (``run.engine.exit_code``).

        ``service``: a watch that runs until it is stopped; its failed recordings are
        ``error`` rows and a line in the summary, not a failed service.
        """
        from crunchctl.run.engine import exit_code

        raise typer.Exit(exit_code(summary, service=service))

    # ------------------------------------------------------------------ consoles

    @property
    def err(self) -> Console:
        """The console on stderr that messages, logs, progress bars and panels share."""
        if self._err is None:
            from crunchctl.cli.output import err_console

            self._err = err_console()
        return self._err

    @property
    def out(self) -> Console:
        """The console on stdout, for results (tables)."""
        from crunchctl.cli.output import out_console

        return out_console()

    # ------------------------------------------------------------------ settings

    def configure(self, **overrides: Any) -> Settings:
        """Resolve settings (CLI > env > config > defaults) with the command's overrides.

        Settings that work but are probably not what was meant (``config.notes``) are said
        once, as a warning line on stderr, and go to the log file when it opens.
        """
        from crunchctl.config import notes, resolve

        opts = self.opts
        if opts.ledger is not None:
            overrides.setdefault("ledger_path", str(opts.ledger))
        if opts.log_file is not None:
            overrides["log_file"] = str(opts.log_file)
        settings = resolve(
            opts.config, {k: (str(v) if isinstance(v, Path) else v) for k, v in overrides.items()}
        )
        for note in notes(settings):
            if note not in _NOTES:
                _NOTES[note] = False  # not logged yet
                if not opts.quiet:
                    typer.echo(f"Warning: {note}", err=True)
        self.settings = settings
        return settings

    # ------------------------------------------------------------------ logs

    def start_logs(self, *, flush_every: int = 10, to_file: bool = True) -> LogSetup:
        """Open the log file and the console log lines (``-q``/``-v`` pick the level);
        ``to_file`` False: the console lines only (a dry run writes no log file).

        Raises:
            UsageError: a log file named by --log-file, the config or the environment
                cannot be opened (exit 2, before any work).
        """
        from crunchctl.run import logs

        settings = self.settings
        log_file = (
            settings.log_file
            if settings is not None
            else (str(self.opts.log_file) if self.opts.log_file else None)
        )
        self.logs = logs.setup(
            log_file=log_file,
            verbosity=self.opts.verbosity,
            console=self.err,
            plain=plain_output(),
            flush_every=flush_every,
            to_file=to_file,
        )
        for note, logged in list(_NOTES.items()):
            if not logged:  # said on stderr already
                log.warning("%s", note, extra={"file_only": True})
                _NOTES[note] = True
        if settings is not None and self.opts.verbosity >= 2:
            from crunchctl.config import describe

            # -vv: every setting and where it came from, once per command.
            log.debug("settings (config file: %s):", settings.config_file or "none")
            for line in describe(settings):
                log.debug("  %s", line)
        return self.logs

    # ------------------------------------------------------------------ the ledger

    def ledger(self, *, write: bool = True, flush_every: int = 50) -> Ledger:
        """The ledger named by --ledger, the config, CRUNCHCTL_STATE_DIR or platformdirs.

        ``write``: commands that record (created if missing); otherwise read only, and a
        named folder must exist (a typo must not read as an empty ledger).
        """
        from crunchctl.ledger import default_ledger_path, open_for_reading

        named = (
            self.settings.ledger_path
            if self.settings is not None
            else (str(self.opts.ledger) if self.opts.ledger else None)
        )
        if not write:
            return open_for_reading(named)
        from crunchctl.ledger.store import Ledger

        return Ledger(
            Path(named) if named else default_ledger_path(), flush_every=flush_every, create=True
        )

    def ledger_to_read(self) -> Ledger | None:
        """The ledger a dry run asks what is done, or None when its folder does not exist
        yet (nothing is done then); nothing is created or written."""
        from crunchctl.ledger import default_ledger_path
        from crunchctl.ledger.store import Ledger

        named = (
            self.settings.ledger_path
            if self.settings is not None
            else (str(self.opts.ledger) if self.opts.ledger else None)
        )
        path = Path(named) if named else default_ledger_path()
        return Ledger(path, create=False) if path.exists() else None

    # ------------------------------------------------------------------ signals

    @contextmanager
    def signals(self, say: Callable[[str], None]) -> Iterator[StopFlags]:
        """SIGINT and SIGTERM into the engine's stop flags, said (``say``) the same way
        everywhere; the flags count the items in progress (``StopFlags.in_progress``).

        First SIGINT or SIGTERM: no new work, items in progress finish; a second Ctrl-C
        cancels them (docs/ARCHITECTURE.md, "Rules every command follows").
        """
        from crunchctl.run import engine
        from crunchctl.run.executor import Cancelled

        class _Signals(engine.signals_to_flags):
            def _handler(self, signum: int, frame: Any) -> None:
                self.flags.request(signum)
                if self.on_signal is not None:
                    self.on_signal(signum)
                # A task running in this very process can only be cancelled by an
                # exception; worker processes are killed by the engine.
                if self.flags.cancel.is_set() and _inline_task(frame):
                    raise Cancelled

        def said(signum: int) -> None:
            text = stop_message(signum, flags.in_progress(), flags.cancel.is_set())
            log.info("%s", text, extra={"file_only": True})
            say(text)

        flags = engine.StopFlags()
        with _Signals(flags, said):
            yield flags

    @contextmanager
    def engine_run(
        self, label: str, *, flush_every: int = 50
    ) -> Iterator[tuple[Ledger, Any, StopFlags]]:
        """The ledger, a progress reporter and the stop flags for one run of the engine."""
        from crunchctl.run.executor import warm_up

        assert self.settings is not None, "configure() first"
        warm_up(self.settings)
        with self.ledger(flush_every=flush_every) as ledger:
            reporter = reporter_for(self.err, label, self.opts.quiet)
            with self.signals(reporter.message) as flags:
                yield ledger, reporter, flags


def _print_traceback(exc: BaseException) -> None:
    import traceback

    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


def _inline_task(frame: Any) -> bool:
    """The signal arrived while a task ran in this process (``executor.run_inline``)."""
    while frame is not None:
        if frame.f_code.co_name == "run_inline":
            return True
        frame = frame.f_back
    return False


def page_for(settings: Settings, ledger: Ledger | None) -> Any:
    """The control-room page of the web folder (``www.site.WebPage``), or None without a
    web folder. The command builds it; the recordings path only tells it what happened."""
    if not settings.www_path:
        return None
    from crunchctl.www.site import WebPage

    return WebPage(settings.www_path, settings, ledger)
