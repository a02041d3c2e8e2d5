"""The root ``crunchctl`` app: its shared options and usage errors in plain words.

What every command runs inside (settings, logs, ledger, signals, the way out) is the
application object of ``application.py``. Light imports only.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from crunchctl import __version__
from crunchctl.cli import options as opt

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
    m = re.fullmatch(r"(?:Value error, )?(.+?) is not one of (.+?)\.?", message.strip(), flags=re.S)
    if m is None:
        return message.removeprefix("Value error, ")
    choices = [c.strip().strip("'\"") for c in m.group(2).split(",")]
    return (
        f"{m.group(1)} is not a choice; choose {', '.join(choices[:-1])} or {choices[-1]}"
        if len(choices) > 1
        else f"{m.group(1)} is not a choice; choose {choices[0]}"
    )


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
        return (
            f"{metavar} is a positional argument, not an option: give it without "
            f"--{name} (for example: {example})"
        )
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


#: Notes on the settings said in this invocation (said once, logged when the log opens).
_NOTES: dict[str, bool] = {}


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
    version: Annotated[
        Optional[bool],
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = None,
    config: opt.ConfigOpt = None,
    ledger: opt.LedgerOpt = None,
    log_file: opt.LogFileOpt = None,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """crunchctl: IQ recordings to spectrograms, live and in batches."""
    _NOTES.clear()
    ctx.obj = Common(config=config, ledger=ledger, verbose=verbose, quiet=quiet, log_file=log_file)


def common(ctx: typer.Context | None, **kw: Any) -> Common:
    """Merge a command's shared options with those given before the command name."""
    obj = getattr(ctx, "obj", None)
    root_opts: Common = obj if isinstance(obj, Common) else Common()
    return Common(
        config=kw.get("config") or root_opts.config,
        ledger=kw.get("ledger") or root_opts.ledger,
        verbose=max(kw.get("verbose") or 0, root_opts.verbose),
        quiet=bool(kw.get("quiet")) or root_opts.quiet,
        log_file=kw.get("log_file") or root_opts.log_file,
    )
