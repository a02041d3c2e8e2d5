"""Compatibility names for command modules not yet moved to app.py, options.py and output.py.

Removed once no module imports it.
"""

from __future__ import annotations

from typing import Any

from crunchctl.cli.app import (Common, command_logs, common, errors_to_exit,  # noqa: F401
                               exit_code_for, open_ledger, settings_for, start_logging)
from crunchctl.cli.options import *  # noqa: F401,F403
from crunchctl.cli.options import check_cmap, numerics  # noqa: F401
from crunchctl.cli.output import (PlainReporter, RichReporter, err_console,  # noqa: F401
                                  error_line, out_console, plain_output, print_json)
from crunchctl.cli import output as _output


def reporter_for(console: Any, label: str, opts: Common) -> Any:
    return _output.reporter_for(console, label, opts.quiet)


def import_tracking_file(ledger: Any, settings: Any) -> None:
    from crunchctl.ledger.legacy import import_on_first_use

    import_on_first_use(ledger, settings.tracking_file_path)
