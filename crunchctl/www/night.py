"""The night on the control-room page: each recorder's campaign waterfall, the latest
recording's peaks and a small trend picture of its strongest lines (docs/products.md).

Everything here is best effort: the page must never stop a run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Lines of the latest recording listed in ``status.json`` per recorder.
PEAKS_LISTED = 5
#: Shortest time between two drawings of a recorder's trend picture, s (it reads the
#: ledger's peaks of that folder).
TREND_EVERY_S = 60.0
KEYS = ("campaign_image", "trend_image", "peaks")


def note(rec: dict[str, Any], outcome: Any, www: Path) -> None:
    """Take a finished recording's campaign picture and peaks into its recorder's entry."""
    folder = rec["folder"]
    if (www / f"campaign_{folder}.png").exists():
        rec["campaign_image"] = f"campaign_{folder}.png"
    raw = outcome.extra.get("peaks")
    if not raw:
        return
    value = json.loads(raw)
    rec["peaks"] = {
        "item": outcome.item,
        "file": Path(outcome.item).name,
        "acquired_unix": value.get("acquired"),
        "unit": value.get("unit") or "",
        "lines": value.get("lines", [])[:PEAKS_LISTED],
    }
    rec["_trend_due"] = True


def merge(rec: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Keep what another run listed where this one has nothing yet."""
    for key in KEYS:
        if rec.get(key) is None and theirs.get(key):
            rec[key] = theirs[key]


def refresh_trends(
    www: Path, ledger: Any, recorders: Iterable[dict[str, Any]], *, final: bool = False
) -> None:
    """Redraw ``trend_<folder>.png`` of each recorder with new peaks (at most once a
    minute each, and at the end of a run)."""
    if ledger is None:
        return
    from crunchctl.night import trend
    from crunchctl.quicklook.products import atomic_write

    now = time.monotonic()
    for rec in recorders:
        if not rec.get("_trend_due") or (
            not final and now - rec.get("_trend_at", -1e18) < TREND_EVERY_S
        ):
            continue
        rec["_trend_due"] = False
        rec["_trend_at"] = now
        trends, _ = trend.run(ledger, sorted(rec["paths"]))
        if not any(len(t.points) > 1 for t in trends):
            continue
        name = f"trend_{rec['folder']}.png"
        with atomic_write(www / name) as f:
            f.write(
                trend.draw(
                    trends, title=f"{rec['folder']}: strongest lines", size=(6.0, 4.0), dpi=80
                )
            )
        rec["trend_image"] = name
