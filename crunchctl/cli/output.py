"""What commands print: consoles, JSON, summary tables and progress, rich or plain.

Plain (no colours, bars or panels) when stderr is not a terminal or NO_COLOR / TERM=dumb
is set, so log collectors get one timestamped line per item. rich is imported only when
something is printed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from rich.console import Console

#: Lines of a failure list shown at the end of a run; the rest is in ``crunchctl status``.
SHOWN_FAILURES = 10


class Command(TyperCommand):
    """A command whose help names each argument as a person reads it: ``FILE...`` in the
    usage line and the argument list, not ``{FILE...}...`` and ``FILE... <list[Path]>``
    (Typer adds the Python type of an argument even when it has a metavar)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        rows: dict[str, list[tuple[str, str]]] = {"argument": [], "option": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or param.param_type_name not in rows:
                continue
            if param.param_type_name == "argument":
                record = (_argument_name(param), record[1])
            rows[param.param_type_name].append(record)
        for title, kind in (("Arguments", "argument"), ("Options", "option")):
            if rows[kind]:
                with formatter.section(title):
                    formatter.write_dl(rows[kind])


def _argument_name(param: Any) -> str:
    name = param.metavar or (param.name or "").upper()
    return name if param.nargs == 1 or name.endswith("...") else name + "..."


def plain_output() -> bool:
    """No colours, bars or panels: stderr is not a terminal, or NO_COLOR / TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return True
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return True


def err_console() -> Console:
    """The console on stderr that logs, progress bars and panels share."""
    from rich.console import Console

    plain = plain_output()
    return Console(
        stderr=True,
        no_color=plain,
        highlight=False,
        force_terminal=False if plain else None,
        soft_wrap=plain,
    )


def out_console() -> Console:
    """The console on stdout for tables."""
    from rich.console import Console

    plain = bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()
    # Off a terminal nothing knows the width; rich would assume 80 and fold long paths.
    width = None if sys.stdout.isatty() else 200
    return Console(
        no_color=plain,
        highlight=False,
        soft_wrap=plain,
        width=width,
        force_terminal=False if plain else None,
    )


def print_json(doc: Any) -> None:
    """JSON on stdout, never through rich (no wrapping, no colour codes)."""
    import json

    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def stdout_to_stderr(*, fd_level: bool = False) -> Iterator[None]:
    """While it lasts, what anything writes to stdout goes to stderr.

    For user code (batch loaders) run by a command whose stdout is a document (``--json``).
    ``fd_level`` also moves file descriptor 1, so output of C code, subprocesses and worker
    processes started meanwhile goes to stderr too.
    """
    fd = saved = None
    if fd_level:
        try:
            sys.stdout.flush()
            fd = sys.stdout.fileno()
            target = sys.stderr.fileno()
            saved = os.dup(fd)
            os.dup2(target, fd)
        except (AttributeError, OSError, ValueError):
            fd = saved = None  # no real stdout (tests, embedding): Python-level only
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if fd is not None and saved is not None:
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.flush()
            os.dup2(saved, fd)
            os.close(saved)


def error_line(message: str) -> None:
    """The one line a command that stops prints on stderr."""
    typer.echo(f"Error: {message}", err=True)


def print_summary(
    title: str, rows: Sequence[tuple[str, str]], lists: Sequence[tuple[str, Sequence[str]]] = ()
) -> None:
    """An end-of-run table on stdout, then titled lists (at most ``SHOWN_FAILURES`` lines).

    A rich table on a terminal; aligned ``label  value`` lines otherwise (scripts, pipes).
    """
    more = "  ... and {} more (crunchctl status --errors)"
    if sys.stdout.isatty():
        from rich.table import Table

        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for label, value in rows:
            table.add_row(label, value)
        console = out_console()
        console.print(table)
        for name, lines in lists:
            if lines:
                console.print(f"[bold]{name}:[/bold]")
                for line in lines[:SHOWN_FAILURES]:
                    console.print(f"  {line}", markup=False)
                if len(lines) > SHOWN_FAILURES:
                    console.print(more.format(len(lines) - SHOWN_FAILURES))
        return
    width = max(len(label) for label, _ in rows)
    out = [f"{label:<{width}}  {value}" for label, value in rows]
    for name, lines in lists:
        if lines:
            out.append(f"{name}:")
            out.extend(f"  {line}" for line in lines[:SHOWN_FAILURES])
            if len(lines) > SHOWN_FAILURES:
                out.append(more.format(len(lines) - SHOWN_FAILURES))
    typer.echo("\n".join(out))


# ------------------------------------------------------------------------------ progress


class _Counter:
    """What both reporters share: the engine's reporter calls, counting finished items."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.total: int | None = None
        self.done = 0
        self.failed = 0
        self.started = 0
        self._t0 = time.time()

    @property
    def in_progress(self) -> int:
        """Items started and not finished yet."""
        return max(0, self.started - self.done)

    def start(self, total: int | None) -> None:
        self.total = total

    def item_started(self, task: Any) -> None:
        self.started += 1

    def item_done(self, outcome: Any) -> None:
        self.done += 1
        if outcome.status == "error":
            self.failed += 1
        self.show(outcome)

    def show(self, outcome: Any) -> None:
        raise NotImplementedError

    def message(self, text: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RichReporter(_Counter):
    """A rich progress bar on stderr: done/total, items per second, ETA, the last item."""

    def __init__(self, console: Console, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        super().__init__(label)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[last]}", style="dim"),
            console=console,
            transient=False,
            refresh_per_second=8,
        )
        self.task_id: Any = None

    def start(self, total: int | None) -> None:
        super().start(total)
        self.progress.start()
        self.task_id = self.progress.add_task(self.label, total=total, rate="", last="")

    def show(self, outcome: Any) -> None:
        rate = self.done / max(1e-9, time.time() - self._t0)
        name = Path(outcome.item).name if os.sep in outcome.item else outcome.item
        if self.task_id is not None:
            self.progress.update(
                self.task_id, advance=1, rate=f"{rate:.2f}/s", last=f"{outcome.status} {name}"
            )

    def message(self, text: str) -> None:
        self.progress.console.print(text)

    def close(self) -> None:
        self.progress.stop()


class PlainReporter(_Counter):
    """One plain, timestamped line per item on stderr, for log collectors."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        super().__init__(label)
        self.quiet = quiet

    def show(self, outcome: Any) -> None:
        if self.quiet or outcome.status == "error":
            return  # errors are logged on stderr already
        from crunchctl.words import stamp as utc_stamp

        stamp = utc_stamp()
        of = f"/{self.total}" if self.total else ""
        typer.echo(
            f"{stamp} {self.label} [{self.done}{of}] {outcome.status} {outcome.item} "
            f"({outcome.duration:.2f} s)",
            err=True,
        )

    def message(self, text: str) -> None:
        if not self.quiet:
            typer.echo(text, err=True)


def reporter_for(console: Console, label: str, quiet: bool) -> RichReporter | PlainReporter:
    """A progress bar on a terminal, plain lines otherwise or with ``--quiet``."""
    if plain_output() or quiet:
        return PlainReporter(label, quiet=quiet)
    return RichReporter(console, label)


def print_plan(planned: Any, json_out: bool) -> None:
    """A dry run's answer: one line per item on stdout and a count line on stderr, or one
    JSON document (``recordings.run.Planned`` items)."""
    from crunchctl.recordings import run as recordings

    if json_out:
        print_json(recordings.plan_as_json(planned))
        return
    for line in recordings.plan_lines(planned):
        typer.echo(line)
    typer.echo(recordings.describe_plan(planned), err=True)
