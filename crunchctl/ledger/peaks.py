"""The ``peaks`` column read back: each recording's latest lines, for ``crunchctl trend`` and
the control-room page (docs/ledger.md, "peaks").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import polars as pl

from crunchctl.outcome import KIND_IQ, OK

LINE = pl.Struct(
    {
        "frequency_hz": pl.Float64(),
        "power_db": pl.Float64(),
        "fwhm_hz": pl.Float64(),
        "snr_db": pl.Float64(),
    }
)
VALUE = pl.Struct(
    {
        "acquired": pl.Float64(),
        "bin_hz": pl.Float64(),
        "center_hz": pl.Float64(),
        "unit": pl.String(),
        "scaling": pl.String(),
        "lines": pl.List(LINE),
    }
)


def under(folders: Sequence[str]) -> pl.Expr | None:
    """Items inside any of ``folders`` (absolute paths; sub-folders count)."""
    if not folders:
        return None
    expr = None
    for folder in folders:
        prefix = os.path.abspath(folder).rstrip(os.sep) + os.sep
        part = pl.col("item").str.starts_with(prefix)
        expr = part if expr is None else expr | part
    return expr


def latest_peaks(
    ledger: Any, folders: Sequence[str] = (), *, since: float | None = None
) -> list[dict[str, Any]]:
    """Recordings whose latest attempt succeeded and recorded peaks, in acquisition order.

    Args:
        ledger: a ``store.Ledger``.
        folders: only recordings under these folders (none: all).
        since: only recordings acquired at or after this UNIX time.

    Returns:
        ``{"item", "time", "bin_hz", "unit", "lines": [{"frequency_hz", "power_db",
        "fwhm_hz", "snr_db"}, ...]}`` per recording; ``time`` is the acquisition start from
        the header (the file's mtime when the header has none).
    """
    frame = ledger.latest(KIND_IQ, where=under(folders), columns=["status", "peaks", "mtime_ns"])
    frame = frame.filter((pl.col("status") == OK) & pl.col("peaks").is_not_null())
    if frame.height == 0:
        return []
    frame = frame.with_columns(pl.col("peaks").str.json_decode(VALUE).alias("_p")).unnest("_p")
    frame = frame.with_columns(
        pl.coalesce(pl.col("acquired"), pl.col("mtime_ns") / 1e9).alias("time")
    )
    if since is not None:
        frame = frame.filter(pl.col("time") >= since)
    frame = frame.sort(["time", "item"])
    return [
        {
            "item": r["item"],
            "time": r["time"],
            "bin_hz": r["bin_hz"],
            "unit": r["unit"],
            "lines": r["lines"] or [],
        }
        for r in frame.select("item", "time", "bin_hz", "unit", "lines").iter_rows(named=True)
    ]
