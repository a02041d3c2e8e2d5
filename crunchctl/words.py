"""Wording every room shares: a count with its noun in the right number ("1 item", "2 items"),
and times as people read them, always with their zone (UTC; README, "Times")."""

from __future__ import annotations

import datetime as _dt
import time


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and its noun: ``count(1, "entry", "entries")`` is "1 entry"; the plural
    defaults to the singular with an "s"."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def when(ts: float | None, *, date: bool = True, seconds: bool = True) -> str:
    """UNIX seconds as UTC text that says so: ``2026-12-04 17:56:03 UTC`` (``date=False``:
    ``17:56:03 UTC``; ``seconds=False`` leaves them out); empty for None."""
    if ts is None:
        return ""
    fmt = ("%Y-%m-%d " if date else "") + ("%H:%M:%S" if seconds else "%H:%M")
    return time.strftime(fmt, time.gmtime(ts)) + " UTC"


def when_iso(text: str | None, *, date: bool = True) -> str:
    """An ISO 8601 time (with ``Z``, an offset, or none: UTC) as :func:`when` prints it;
    text that is not such a time comes back as it is."""
    if not text:
        return ""
    try:
        value = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return text
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return when(value.timestamp(), date=date)


def stamp(ts: float | None = None) -> str:
    """A plain log line's time stamp, ISO 8601 in UTC: ``2026-12-04T17:56:03Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))
