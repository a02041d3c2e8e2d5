"""``crunchctl watch``: options in, one ``watch.session.run_watch`` call, a panel or log lines
out. The loop, readiness and the lock are in ``crunchctl.watch`` (imported inside the
command: ``--help`` stays fast).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from crunchctl import formats, words
from crunchctl.cli import options as opt
from crunchctl.cli.output import plain_output, print_plan

if TYPE_CHECKING:
    from rich.console import Console

    from crunchctl.cli.application import Application
    from crunchctl.config import Settings
    from crunchctl.outcome import Outcome
    from crunchctl.watch.options import WatchOptions
    from crunchctl.watch.report import WatchSnapshot


def watch(
    ctx: typer.Context,
    folder: Annotated[
        Optional[Path],
        typer.Argument(
            help="Folder the recorder writes into [default: folder_path from the config].",
            show_default=False,
            file_okay=False,
            metavar="FOLDER",
        ),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Watch sub-folders too.")
    ] = False,
    pattern: Annotated[
        Optional[list[str]],
        typer.Option(
            "--pattern",
            metavar="GLOB",
            show_default=False,
            help="File-name pattern of recordings (case-insensitive); repeat it for several "
            f"[default: every format crunchctl reads: {' '.join(formats.patterns())}; raw "
            "IQ too when --sample-rate is given].",
        ),
    ] = None,
    settle: Annotated[
        float,
        typer.Option(
            "--settle",
            metavar="SECONDS",
            min=0.0,
            help="Files whose format cannot prove them complete (raw IQ, unknown names) are "
            "ready once size and mtime are unchanged this long (.tiq files are ready when "
            "their header says they are complete).",
        ),
    ] = 2.0,
    poll: Annotated[
        Optional[float],
        typer.Option(
            "--poll",
            metavar="SECONDS",
            min=0.01,
            help="Poll the folder at this interval instead of file-system events (network "
            "shares: SMB/NFS deliver no events). 5 or more for big folders.",
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Process the backlog and exit (cron); incomplete recordings are "
            "reported as pending.",
        ),
    ] = False,
    retry_after: Annotated[
        float,
        typer.Option(
            "--retry-after",
            metavar="SECONDS",
            min=0.1,
            help="Try a recording again this long after its products could not be written "
            "(disk full, output share gone); --once does not wait for it.",
        ),
    ] = 60.0,
    incomplete_after: Annotated[
        Optional[float],
        typer.Option(
            "--incomplete-after",
            metavar="MINUTES",
            help="Process a recording that stayed incomplete this long without growing (its "
            "recorder crashed) with the whole frames it has; recorded ok, with a warning "
            "[default: off, wait for ever].",
            show_default=False,
        ),
    ] = None,
    quiet_after: Annotated[
        Optional[float],
        typer.Option(
            "--quiet-after",
            metavar="MINUTES",
            help="Warn once when no new recording arrived for this long, and once more when "
            "recordings come again; status shows it [default: off].",
            show_default=False,
        ),
    ] = None,
    on_alert: Annotated[
        Optional[str],
        typer.Option(
            "--on-alert",
            metavar="CMD",
            show_default=False,
            help="Run CMD (split like a shell does, never run by one) with the alert as JSON on "
            "its stdin when a recording fails, the recorder goes quiet (--quiet-after) or "
            "comes back, and when the watch stops; a failing hook is logged, the watch goes "
            "on [default: none].",
        ),
    ] = None,
    alert_timeout: Annotated[
        Optional[float],
        typer.Option(
            "--alert-timeout",
            metavar="SECONDS",
            show_default=False,
            help="Kill an --on-alert command still running after this long [default: 10].",
        ),
    ] = None,
    output: opt.OutputOpt = None,
    www: opt.WwwOpt = None,
    workers: opt.WorkersOpt = None,
    scheduler: opt.SchedulerOpt = None,
    scheduler_timeout: opt.SchedulerTimeoutOpt = None,
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
    dry_run: opt.DryRunOpt = False,
    json_out: opt.JsonOpt = False,
    config: opt.ConfigOpt = None,
    ledger: opt.LedgerOpt = None,
    log_file: opt.LogFileOpt = None,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """Process the backlog, then every new or changed recording, as it is complete.

    Backlog first (oldest first), then live file-system events (or --poll). A .tiq is
    processed once the bytes its header announces are all there; a recording is processed
    once per version and again when it changes. Ctrl-C or SIGTERM: no new work, recordings
    in progress finish (Ctrl-C again cancels them), the ledger is flushed; exit 130 after
    Ctrl-C, 0 after SIGTERM (failed recordings are error rows, counted in the summary;
    --once exits 1 when one failed). One watch per folder and ledger: a second one
    refuses to start.

    Example: crunchctl watch /data/rsa510 --www /var/www/quicklook --workers 4
    """
    from crunchctl.cli.application import Application

    with Application(
        ctx, config=config, ledger=ledger, verbose=verbose, quiet=quiet, log_file=log_file
    ) as app:
        from crunchctl.errors import UsageError

        settings = app.configure(
            folder_path=folder,
            output_path=output,
            www_path=www,
            workers=workers,
            scheduler=scheduler,
            scheduler_timeout=scheduler_timeout,
            products=products,
            incomplete_after=incomplete_after,
            quiet_after=quiet_after,
            on_alert=on_alert,
            alert_timeout=alert_timeout,
            **opt.format_options(fmt, sample_rate, center, tdms_channels, verify_checksum),
            **opt.levels(peaks, peak_snr, db_range, scaling),
            **opt.numerics(lframes, nframes, n_avg, zoom_center, zoom_span, window, cmap),
        )
        if not settings.folder_path:
            raise UsageError(
                "no folder to watch: give FOLDER, or set folder_path in the "
                "[paths] table of the config"
            )
        from crunchctl.formats.base import ReadOptions
        from crunchctl.watch.options import WatchOptions, check_options

        # Every registered format by default (docs/formats.md).
        default = formats.patterns(ReadOptions.from_settings(settings))
        options = WatchOptions(
            settings.folder_path,
            patterns=tuple(pattern or default),
            recursive=recursive,
            settle=settle,
            poll=poll,
            once=once,
            retry_after=retry_after,
        )
        check_options(options)
        opt.check_cmap(settings)
        if settings.on_alert:
            from crunchctl.watch.alerts import parse_command

            parse_command(settings.on_alert)  # a typo is a usage error before any work
        if dry_run or json_out:
            _dry_run(app, options, dry_run, json_out)
            return
        app.start_logs()
        _run(app, options)


def _dry_run(app: Application, options: WatchOptions, dry_run: bool, json_out: bool) -> None:
    from crunchctl.errors import UsageError
    from crunchctl.watch.scan import plan_once

    if not (dry_run and options.once):
        raise UsageError("--dry-run needs --once (and --json needs --dry-run)")
    app.start_logs(to_file=False)
    settings = app.settings
    assert settings is not None
    ledger = app.ledger_to_read()
    # The watch's own folders are never recordings (watch/session.py).
    excluded = [
        os.path.join(os.path.abspath(d), "")
        for d in (str(settings.output_dir()), settings.www_path, ledger.path if ledger else None)
        if d
    ]
    print_plan(
        plan_once(options.folder, options.patterns, options.recursive, settings, ledger, excluded),
        json_out,
    )


def _run(app: Application, options: WatchOptions) -> None:
    import signal

    from crunchctl.cli.application import page_for
    from crunchctl.ledger.legacy import import_on_first_use
    from crunchctl.recordings.run import describe
    from crunchctl.watch.session import run_watch

    settings, opts = app.settings, app.opts
    assert settings is not None
    _describe(options, settings)
    reporter: Any = (
        PlainLines(quiet=opts.quiet, verbose=opts.verbose)
        if opts.quiet or plain_output()
        else LivePanel(app.err)
    )
    # Flushes are timed by the watch loop (within 0.5 s of an outcome), not by row count.
    with app.ledger(flush_every=1000) as ledger:
        import_on_first_use(ledger, settings.tracking_file_path)
        with app.signals(reporter.message) as flags:
            result = run_watch(
                options,
                settings,
                ledger,
                reporter=reporter,
                flags=flags,
                page=page_for(settings, ledger),
            )
    s = result.summary
    how = {signal.SIGINT: "interrupted", signal.SIGTERM: "stopped (SIGTERM)"}.get(
        s.interrupted_by, "done" if options.once else "stopped"
    )  # type: ignore[arg-type]
    typer.echo(f"watch {how}: " + describe(s, f"pending {len(result.pending)}"))
    for path, reason in result.pending:
        typer.echo(f"pending: {path}: {reason}")
    # A watch that runs until stopped is a service; --once is a run over a list of work.
    app.exit(s, service=not options.once)


def _describe(options: WatchOptions, settings: Settings) -> None:
    """-vv: how this watch runs (the settings themselves are logged by ``cli/app.py``)."""
    import logging

    from crunchctl.watch.session import RESCAN_INTERVAL

    log = logging.getLogger("crunchctl.watch")
    if settings.scheduler:
        log.debug("workers: the Dask cluster at %s", settings.scheduler)
    else:
        log.debug(
            "workers: a local pool of %d worker processes (%d cores)",
            settings.workers,
            os.cpu_count() or 1,
        )
    log.debug(
        "patterns: %s%s",
        " ".join(options.patterns),
        ", sub-folders too" if options.recursive else "",
    )
    log.debug(
        "finding recordings: %s",
        "one scan (--once)"
        if options.once
        else (
            f"polling every {options.poll:g} s"
            if options.poll
            else f"file-system events, and a full rescan every {RESCAN_INTERVAL / 60:g} min"
        ),
    )
    log.debug(
        "ready: .tiq when its header's bytes are all there; other files after %g s "
        "unchanged (--settle)",
        options.settle,
    )
    log.debug(
        "incomplete recordings: %s",
        f"processed as they are after {settings.incomplete_after:g} min without growth"
        if settings.incomplete_after
        else "waited for (--incomplete-after is off)",
    )
    log.debug(
        "quiet recorder: %s",
        f"warned after {settings.quiet_after:g} min without a new recording"
        if settings.quiet_after
        else "no alarm (--quiet-after is off)",
    )
    log.debug(
        "alerts: %s",
        f"{settings.on_alert} (killed after {settings.alert_timeout:g} s)"
        if settings.on_alert
        else "none (--on-alert is off)",
    )


# ------------------------------------------------------------------------------ output


def _stamp() -> str:
    return words.stamp()


def _name(path: str) -> str:
    return os.path.basename(path) or path


class PlainLines:
    """Plain timestamped lines on stderr (systemd, nohup, cron); errors come from the log.

    With ``-v`` the log's own lines on stderr say what happens to each recording, so the
    per-recording lines here are left out (each event once).
    """

    def __init__(self, quiet: bool = False, verbose: int = 0) -> None:
        self.quiet = quiet
        self.verbose = verbose

    def _line(self, text: str) -> None:
        if not self.quiet:
            typer.echo(f"{_stamp()} {text}", err=True)

    def start(self, snap: WatchSnapshot) -> None:
        self._line(
            f"watching {snap.folder} ({snap.observer}); backlog: {snap.queued} to "
            f"check, {snap.skipped} already done"
        )

    def update(self, snap: WatchSnapshot) -> None:
        pass

    def item_done(self, outcome: Outcome, published: list[str]) -> None:
        if outcome.status == "error" or outcome.warning or self.verbose:
            return  # errors and warnings (with -v everything) are logged on stderr already
        png = published[0] if published else (outcome.products[0] if outcome.products else "")
        where = f" -> {os.path.abspath(png)}" if png else ""
        note = outcome.extra.get("note")
        what = f"{outcome.status} ({note})" if note else outcome.status
        self._line(f"{what} {outcome.item} ({outcome.duration:.2f} s){where}")

    def waiting(self, path: str, reason: str) -> None:
        if not self.verbose:
            self._line(f"waiting for {path}: {reason}")

    def message(self, text: str) -> None:
        self._line(text)

    def close(self, snap: WatchSnapshot) -> None:
        pass  # the command prints the summary line


#: Columns of the panel that are not the status counts: borders and padding, the label
#: column (labels have 7 letters at most) and the gap after it.
PANEL_MARGIN = 4 + 7 + 2


def _wrap_items(items: list[Any], width: int) -> Any:
    """Rich texts joined by two spaces, a new line where the next one would not fit."""
    from rich.text import Text

    out, used = Text(), 0
    for item in items:
        if used and used + 2 + len(item) > width:
            out.append("\n")
            used = 0
        elif used:
            out.append("  ")
            used += 2
        out.append_text(item)
        used += len(item)
    return out


def _quiet_ctrl_echo() -> Any:
    """Stop the terminal echoing ``^C`` while the panel is live; return the undo.

    The echo moves the cursor below the panel's last line, so the next redraw starts one
    line too low and leaves the old top border behind. Only for a terminal on stdin whose
    foreground this process is (changing it from the background would stop the process).
    """
    import sys

    try:
        import termios

        fd = sys.stdin.fileno()
        if not os.isatty(fd) or os.tcgetpgrp(fd) != os.getpgrp():
            return None
        old = termios.tcgetattr(fd)
        new = list(old)
        new[3] &= ~termios.ECHOCTL
        termios.tcsetattr(fd, termios.TCSANOW, new)
    except (ImportError, AttributeError, ValueError, OSError):
        return None

    def restore() -> None:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, old)
        except (OSError, termios.error):
            pass

    return restore


class LivePanel:
    """A rich live panel on stderr, refreshed four times a second.

    Shares the console with the log handler, so warnings print above the panel.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.snap: WatchSnapshot | None = None
        self.live: Any = None
        self._restore_echo: Any = None

    def start(self, snap: WatchSnapshot) -> None:
        from rich.live import Live

        self.snap = snap
        self.live = Live(
            console=self.console,
            get_renderable=self._render,
            refresh_per_second=4,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._restore_echo = _quiet_ctrl_echo()
        self.live.start()

    def update(self, snap: WatchSnapshot) -> None:
        self.snap = snap

    def item_done(self, outcome: Outcome, published: list[str]) -> None:
        pass

    def waiting(self, path: str, reason: str) -> None:
        pass

    def message(self, text: str) -> None:
        self.console.print(text)

    def close(self, snap: WatchSnapshot) -> None:

        self.snap = snap
        if self.live is not None:
            self.live.refresh()
            self.live.stop()
        if self._restore_echo is not None:
            self._restore_echo()
            self._restore_echo = None

    def _render(self) -> Any:
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        s = self.snap
        if s is None:
            return Text("")
        up = int(time.time() - s.started)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="ellipsis")
        items = []
        for label, value, style in (
            ("queue", s.queued, "cyan"),
            ("in progress", len(s.in_progress), "yellow"),
            ("done", s.done, "green"),
            ("failed", s.failed, "red" if s.failed else "dim"),
            ("pending", len(s.pending), "magenta" if s.pending else "dim"),
            ("rate", f"{s.rate_per_min:.1f}/min", ""),
        ):
            item = Text()
            item.append(f"{label} ", style="dim")
            item.append(f"{value}", style=f"bold {style}" if style else "")
            items.append(item)
        # Border, padding and the label column take PANEL_MARGIN columns; the counts wrap
        # between items, never inside one ("rate" and its value stay together).
        grid.add_row("status", _wrap_items(items, self.console.width - PANEL_MARGIN))

        if s.in_progress:
            grid.add_row("working", ", ".join(_name(p) for p in s.in_progress))
        if s.last is not None:
            o = s.last
            when = words.when(o.finished, date=False)
            line = Text(f"{_name(o.item)}  ")
            line.append(o.status, style="green" if o.status == "ok" else "red")
            line.append(f"  {o.duration:.2f} s  at {when}")
            grid.add_row("last", line)
            if o.extra.get("note"):  # "changed, processed again"
                grid.add_row("", Text(o.extra["note"], style="cyan"))

            if o.status == "ok":
                png = (
                    s.last_published[0]
                    if s.last_published
                    else (o.products[0] if o.products else "")
                )
                if png:
                    grid.add_row("png", os.path.abspath(png))
                if o.warning:  # e.g. processed although incomplete
                    grid.add_row("warning", Text(o.warning, style="yellow"))
            elif o.error:
                grid.add_row("error", Text(o.error, style="red"))
        if s.pending:
            shown = s.pending[:5]
            lines = Text()
            for i, (path, reason) in enumerate(shown):
                if i:
                    lines.append("\n")
                lines.append(_name(path), style="magenta")
                lines.append(f"  {reason}", style="dim")
            if len(s.pending) > len(shown):
                lines.append(f"\n+{len(s.pending) - len(shown)} more", style="dim")
            grid.add_row("pending", lines)
        if s.restarts:
            grid.add_row("events", f"observer restarted {words.count(s.restarts, 'time')}")
        if s.quiet_since is not None:
            quiet = int(time.time() - s.quiet_since) // 60
            grid.add_row(
                "quiet",
                Text(
                    f"no new recording since "
                    f"{words.when(s.quiet_since, date=False, seconds=False)}"
                    f" ({quiet} min)",
                    style="yellow",
                ),
            )
        if s.stopping:
            grid.add_row(
                "",
                Text(
                    "stopping: waiting for the recordings in progress (Ctrl-C again cancels them)"
                    if s.in_progress
                    else "stopping",
                    style="yellow",
                ),
            )
        else:
            grid.add_row("", Text("Ctrl-C stops after the recordings in progress", style="dim"))
        title = f"crunchctl watch {s.folder}"
        subtitle = f"{s.observer} · up {up // 3600}:{up // 60 % 60:02d}:{up % 60:02d}"
        return Panel(
            grid,
            title=title,
            title_align="left",
            subtitle=subtitle,
            subtitle_align="left",
            border_style="yellow" if s.stopping else "blue",
        )
