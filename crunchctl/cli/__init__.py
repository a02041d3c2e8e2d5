"""The ``crunchctl`` command line: one thin module per command, registered on the root app.

The root app, its options and the error-to-exit mapping are in ``app.py``, shared option
declarations in ``options.py``, consoles and progress in ``output.py``. Nothing heavy is
imported here, so ``crunchctl --help`` and shell completion stay fast.
"""

from __future__ import annotations

from crunchctl.cli.app import app
from crunchctl.cli.batch import batch
from crunchctl.cli.demo import demo
from crunchctl.cli.importcmd import import_
from crunchctl.cli.output import Command
from crunchctl.cli.process import process
from crunchctl.cli.reset import reset
from crunchctl.cli.status import status
from crunchctl.cli.trend import trend
from crunchctl.cli.watch import watch

app.command("process")(process)
app.command("status")(status)
app.command("reset")(reset)
app.command("import")(import_)
app.command("demo")(demo)
app.command("watch")(watch)
app.command("batch")(batch)
app.command("trend")(trend)
for _info in app.registered_commands:  # help that names arguments as a person reads them
    _info.cls = Command

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``crunchctl`` script."""
    try:
        app(prog_name="crunchctl")
    finally:
        # The command is over: what it imported (numpy, polars, Dask and its dashboard)
        # need not be scanned by the collector again as the interpreter exits. That scan
        # took over a second after a Dask run (docs/ARCHITECTURE.md, "Where tasks run").
        import gc

        gc.freeze()
