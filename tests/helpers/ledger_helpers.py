"""Helpers shared by the ledger tests: outcomes with a fixed clock, a ledger with history."""

from __future__ import annotations

import pathlib

from crunchctl.ledger.store import Ledger
from crunchctl.outcome import Outcome

T0 = 1_700_000_000.0  # fixed clock for rows whose order matters


def oc(
    item,
    status="ok",
    *,
    t=T0,
    kind="iq",
    source="process",
    size=10,
    mtime_ns=20,
    digest="d1",
    products=(),
    error=None,
):
    return Outcome(
        item=item,
        kind=kind,
        source=source,
        status=status,
        started=t - 1.5,
        finished=t,
        size=size,
        mtime_ns=mtime_ns,
        settings_digest=digest,
        products=list(products),
        error=error,
    )


def files(path, prefix=""):
    return sorted(p for p in pathlib.Path(path).glob(f"{prefix}*.parquet"))


def status_ledger(tmp_path) -> Ledger:
    """Five items from three sources, with a retry and two errors."""
    led = Ledger(tmp_path)
    led.record_many(
        [
            oc("/data/w/2024_a.tiq", "error", t=T0, source="watch:/data/w", error="short read"),
            oc("/data/w/2024_a.tiq", "ok", t=T0 + 3600, source="watch:/data/w"),
            oc("/data/w/2024_b.tiq", "ok", t=T0 + 1800, source="watch:/data/w"),
            oc("/data/p/2023_c.tiq", "error", t=T0 + 7200, source="process", error="bad header"),
            oc("/data/p/2023_d.tiq", "no_data", t=T0 + 5400, source="process"),
            oc("orbit_001", "ok", kind="batch", t=T0 + 900, source="batch:/x/items.txt"),
        ]
    )
    led.flush()
    return led
