"""The ledger: every attempt at every item, in Parquet part files (see docs/ledger.md).

``Ledger`` and ``default_ledger_path`` are re-exported lazily: importing this package (for
example for ``legacy``) does not import polars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crunchctl.ledger.store import Ledger, default_ledger_path

__all__ = ["Ledger", "default_ledger_path"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from crunchctl.ledger import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
