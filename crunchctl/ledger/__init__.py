"""The ledger: every attempt at every item, in Parquet part files (see docs/ledger.md).

Where the ledger lives is decided here. ``Ledger`` is re-exported lazily: importing this
package (for example for ``legacy``) does not import polars.
"""

from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crunchctl.ledger.store import Ledger

__all__ = ["Ledger", "default_ledger_path", "open_for_reading"]


def default_ledger_path() -> pathlib.Path:
    """Where the ledger lives when none is named.

    Returns:
        ``$CRUNCHCTL_STATE_DIR/ledger`` when that variable is set and not empty, else
        ``<platformdirs user_state_path>/ledger``. Nothing is created.
    """
    state = os.environ.get("CRUNCHCTL_STATE_DIR", "").strip()
    if state:
        return pathlib.Path(state).expanduser() / "ledger"
    from platformdirs import PlatformDirs

    from crunchctl.config import APP_NAME

    return PlatformDirs(APP_NAME, appauthor=False).user_state_path / "ledger"


def open_for_reading(named: str | os.PathLike | None) -> Ledger:
    """The ledger a read-only command (status, reset) looks at; nothing is created.

    A named folder (``--ledger``, ``ledger_path``) must exist: a typo must not read as an
    empty ledger. The default folder may be missing (nothing recorded yet).

    Raises:
        LedgerError: the named folder does not exist, or is a file.
    """
    from crunchctl.errors import LedgerError

    if named is None or not os.fspath(named):
        return _store().Ledger(default_ledger_path(), create=False)
    led = _store().Ledger(named, create=False)
    if not led.path.exists():
        raise LedgerError(
            f"ledger folder {led.path} does not exist (check --ledger or ledger_path)"
        )
    return led


def _store() -> Any:
    from crunchctl.ledger import store

    return store


def __getattr__(name: str) -> Any:
    if name == "Ledger":
        return _store().Ledger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
