"""What every command shares: option aliases, the console, errors to exit codes, progress.

Light imports only (typer and the standard library) at module level: this runs on every
``--help`` and every TAB of shell completion.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from crunchctl.errors import CrunchError

if TYPE_CHECKING:
    from rich.console import Console

    from crunchctl.config import Settings
    from crunchctl.run.logs import LogSetup

REPORT_URL = "the crunchctl issue tracker"

# ------------------------------------------------------------------------ option aliases
ConfigOpt = Annotated[Optional[Path], typer.Option(
    "--config", "-c", help="Config file (TOML; a legacy datacrunch config works unchanged).",
    envvar="CRUNCHCTL_CONFIG", dir_okay=False, show_default=False)]
LedgerOpt = Annotated[Optional[Path], typer.Option(
    "--ledger", help="Ledger folder [default: the user's state dir].", show_default=False)]
OutputOpt = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Folder for the products [default: ./crunchctl-out].",
    file_okay=False, show_default=False)]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", "-j", help="Worker processes [default: number of cores].", show_default=False)]
VerboseOpt = Annotated[int, typer.Option(
    "--verbose", "-v", count=True, help="More output; -v shows tracebacks, -vv debug.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")]
LogFileOpt = Annotated[Optional[Path], typer.Option(
    "--log-file", help="Log file [default: the user's log dir].", dir_okay=False,
    show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


@dataclass
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


def common(ctx: typer.Context, **kw: Any) -> Common:
    """Merge a command's shared options with those given before the command name."""
    root: Common = ctx.obj if isinstance(ctx.obj, Common) else Common()
    return Common(
        config=kw.get("config") or root.config,
        ledger=kw.get("ledger") or root.ledger,
        verbose=max(kw.get("verbose") or 0, root.verbose),
        quiet=bool(kw.get("quiet")) or root.quiet,
        log_file=kw.get("log_file") or root.log_file,
    )


# ---------------------------------------------------------------------------- consoles


def plain_output() -> bool:
    """No colours, bars or panels: stderr is not a terminal, or NO_COLOR / TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return True
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return True


def err_console() -> Console:
    from rich.console import Console

    plain = plain_output()
    return Console(stderr=True, no_color=plain, highlight=False,
                   force_terminal=False if plain else None, soft_wrap=plain)


def out_console() -> Console:
    from rich.console import Console

    plain = bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()
    # Off a terminal nothing knows the width; rich would assume 80 and fold long paths.
    width = None if sys.stdout.isatty() else 200
    return Console(no_color=plain, highlight=False, soft_wrap=plain, width=width,
                   force_terminal=False if plain else None)


def print_json(doc: Any) -> None:
    """JSON on stdout, never through rich (no wrapping, no colour codes)."""
    import json

    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def error_line(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)


# ------------------------------------------------------------------------ error handling


def _print_traceback() -> None:
    import traceback

    traceback.print_exc(file=sys.stderr)


@contextlib.contextmanager
def errors_to_exit(opts: Common, logs: LogSetup | None = None) -> Iterator[None]:
    """Turn crunchctl errors into one line on stderr and the right exit code.

    Tracebacks only with ``-v``. Unexpected errors say how to report them and where the
    log file is.
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
        where = f" The log file is {logs.path}." if logs is not None and logs.path else ""
        error_line(f"internal error: {type(e).__name__}: {e}. This is a bug in crunchctl; "
                   f"please report it to {REPORT_URL} with the output of the same command "
                   f"run with -v.{where}")
        raise typer.Exit(1) from None


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
                flush_every: int = 50) -> Any:
    """The ledger named by --ledger, the config, CRUNCHCTL_STATE_DIR or platformdirs."""
    from crunchctl.ledger.store import Ledger, default_ledger_path

    path = (settings.ledger_path if settings is not None and settings.ledger_path
            else (str(opts.ledger) if opts.ledger else None))
    return Ledger(Path(path) if path else default_ledger_path(), flush_every=flush_every,
                  create=create)


def import_tracking_file(ledger: Any, settings: Settings) -> None:
    """Import a legacy ``tracking_file_path`` on first use, once (DESIGN section 5)."""
    import logging

    from crunchctl.ledger.store import import_legacy

    path = settings.tracking_file_path
    if not path or not os.path.exists(path):
        return
    source = "import:" + os.path.abspath(path)
    if ledger.has_source(source):
        return
    added, _ = import_legacy(ledger, path)
    logging.getLogger("crunchctl").warning(
        "imported %d entries from the legacy tracking file %s", added, path)


# ------------------------------------------------------------------------------ progress


class RichReporter:
    """A rich progress bar on stderr: done/total, items per second, ETA."""

    def __init__(self, console: Console, label: str) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                   TaskProgressColumn, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), TextColumn("{task.fields[last]}", style="dim"),
            console=console, transient=False, refresh_per_second=8)
        self.label = label
        self.task_id: Any = None
        self.done = 0
        self.failed = 0
        import time

        self._t0 = time.time()

    def start(self, total: int | None) -> None:
        self.progress.start()
        self.task_id = self.progress.add_task(self.label, total=total, rate="", last="")

    def item_started(self, task: Any) -> None:
        pass

    def item_done(self, outcome: Any) -> None:
        import time

        self.done += 1
        if outcome.status == "error":
            self.failed += 1
        rate = self.done / max(1e-9, time.time() - self._t0)
        name = Path(outcome.item).name if os.sep in outcome.item else outcome.item
        if self.task_id is not None:
            self.progress.update(self.task_id, advance=1, rate=f"{rate:.2f}/s",
                                 last=f"{outcome.status} {name}")

    def message(self, text: str) -> None:
        self.progress.console.print(text)

    def close(self) -> None:
        self.progress.stop()


class PlainReporter:
    """One plain, timestamped line per item on stderr, for log collectors."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label = label
        self.quiet = quiet
        self.total: int | None = None
        self.done = 0

    def start(self, total: int | None) -> None:
        self.total = total

    def item_started(self, task: Any) -> None:
        pass

    def item_done(self, outcome: Any) -> None:
        import time

        self.done += 1
        if self.quiet or outcome.status == "error":
            return  # errors are logged on stderr already
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        of = f"/{self.total}" if self.total else ""
        typer.echo(f"{stamp} {self.label} [{self.done}{of}] {outcome.status} {outcome.item} "
                   f"({outcome.duration:.2f} s)", err=True)

    def message(self, text: str) -> None:
        if not self.quiet:
            typer.echo(text, err=True)

    def close(self) -> None:
        pass


def reporter_for(console: Console, label: str, opts: Common) -> Any:
    if plain_output() or opts.quiet:
        return PlainReporter(label, quiet=opts.quiet)
    return RichReporter(console, label)


# ---------------------------------------------------------------- numerics option aliases
LframesOpt = Annotated[Optional[int], typer.Option(
    "--lframes", help="FFT length, samples per frame [default: 65536].", show_default=False,
    rich_help_panel="Spectrogram")]
NframesOpt = Annotated[Optional[int], typer.Option(
    "--nframes", help="Frames read from the start of each recording [default: all].",
    show_default=False, rich_help_panel="Spectrogram")]
NavgOpt = Annotated[Optional[int], typer.Option(
    "--n-avg", help="Average every N frames for the zoom image [default: 1].",
    show_default=False, rich_help_panel="Spectrogram")]
ZoomCenterOpt = Annotated[Optional[float], typer.Option(
    "--zoom-center", help="Zoom centre, Hz offset from the recording's centre [default: 0].",
    show_default=False, rich_help_panel="Spectrogram")]
ZoomSpanOpt = Annotated[Optional[float], typer.Option(
    "--zoom-span", help="Zoom span, Hz [default: 1e6].", show_default=False,
    rich_help_panel="Spectrogram")]
WindowOpt = Annotated[Optional[str], typer.Option(
    "--window", help="FFT window: rectangular (legacy numbers), hann, hamming, blackman.",
    show_default=False, rich_help_panel="Spectrogram",
    autocompletion=lambda: ["rectangular", "hann", "hamming", "blackman"])]
CmapOpt = Annotated[Optional[str], typer.Option(
    "--cmap", help="Matplotlib colour map of the quicklooks [default: viridis].",
    show_default=False, rich_help_panel="Spectrogram",
    autocompletion=lambda: ["viridis", "magma", "inferno", "plasma", "cividis", "jet",
                            "gray"])]
WwwOpt = Annotated[Optional[Path], typer.Option(
    "--www", help="Web folder: <folder>.png and zoom_<folder>.png after each recording.",
    file_okay=False, show_default=False)]


def numerics(lframes: int | None, nframes: int | None, n_avg: int | None,
             zoom_center: float | None, zoom_span: float | None, window: str | None,
             cmap: str | None) -> dict[str, Any]:
    return {"lframes": lframes, "nframes": nframes, "n_avg": n_avg, "zoom_center": zoom_center,
            "zoom_span": zoom_span, "window": window, "cmap": cmap}


def check_cmap(settings: Settings) -> None:
    """A colour map matplotlib does not know is a usage error, found before any work."""
    from crunchctl.errors import ConfigError

    import matplotlib

    if settings.cmap not in matplotlib.colormaps:
        raise ConfigError(f"cmap {settings.cmap!r}: not a matplotlib colour map "
                          f"(for example viridis, magma, inferno, jet)")


def exit_code_for(summary: Any) -> int:
    import signal

    if summary.interrupted_by is not None:
        return 130 if summary.interrupted_by == signal.SIGINT else 128 + int(summary.interrupted_by)
    return 1 if summary.error else 0
