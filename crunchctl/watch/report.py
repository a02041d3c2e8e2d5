"""What a watch shows while it runs and returns at the end: the panel's snapshot, the
reporter callbacks (rich panel or plain lines live in ``cli/watch.py``), the quiet-recorder
alarm and the result.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from crunchctl.outcome import Outcome
    from crunchctl.run.engine import RunSummary

log = logging.getLogger("crunchctl.watch")


@dataclass
class WatchSnapshot:
    """What the live panel shows; built by the loop a few times a second."""

    folder: str
    observer: str
    started: float
    queued: int = 0
    in_progress: list[str] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    no_data: int = 0
    skipped: int = 0
    rate_per_min: float = 0.0  # finished per minute over the last 5 min (1 min at least)
    last: Outcome | None = None
    last_published: list[str] = field(default_factory=list)
    pending: list[tuple[str, str]] = field(default_factory=list)
    restarts: int = 0
    stopping: bool = False
    quiet_since: float | None = None  # no new recording since then (``--quiet-after``)


class WatchReporter:
    """Callbacks of a watch; the CLI plugs in a rich panel or plain lines, tests nothing."""

    def start(self, snapshot: WatchSnapshot) -> None: ...
    def update(self, snapshot: WatchSnapshot) -> None: ...
    def item_done(self, outcome: Outcome, published: list[str]) -> None: ...
    def waiting(self, path: str, reason: str) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self, snapshot: WatchSnapshot) -> None: ...


def _clock(ts: float) -> str:
    from crunchctl.words import when

    return when(ts, date=False, seconds=False)


def _iso(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _minutes(seconds: float) -> str:
    m = seconds / 60.0
    return f"{m:.0f} min" if m >= 10 else f"{m:.1f} min"


class QuietAlarm:
    """``--quiet-after``: one warning when no new recording arrived for that long, one more
    when recordings come again. Fed arrival times; never looks at a folder.

    Args:
        minutes: the quiet time; None or 0 switches the alarm off.
        folder: named in the warnings.
        notify: called as ``notify("quiet" or "back", **fields)`` with each warning (the
            watch's alerts, ``alerts.py``).
    """

    def __init__(
        self, minutes: float | None, folder: str, notify: Callable[..., Any] | None = None
    ) -> None:
        self.after = minutes * 60.0 if minutes else None
        self.folder = folder
        self.notify = notify
        self.last_arrival: float | None = None
        #: When the recorder went quiet (its last new recording, or the watch's start),
        #: while the warning stands; None otherwise.
        self.since: float | None = None

    def start(self, now: float) -> None:
        if self.last_arrival is None:
            self.last_arrival = now

    def arrived(self, path: str, now: float) -> None:
        """A recording not seen before appeared."""
        if self.since is not None:
            log.warning(
                "recordings arrive again in %s (%s, after %s without one)",
                self.folder,
                os.path.basename(path),
                _minutes(now - self.since),
            )
            if self.notify is not None:
                self.notify("back", item=path, quiet_seconds=round(now - self.since, 1))
            self.since = None
        self.last_arrival = now

    def check(self, now: float) -> None:
        if self.after is None or self.since is not None or self.last_arrival is None:
            return
        if now - self.last_arrival >= self.after:
            self.since = self.last_arrival
            log.warning(
                "no new recording in %s for %s (since %s): is the recorder running?",
                self.folder,
                _minutes(now - self.last_arrival),
                _clock(self.last_arrival),
            )
            if self.notify is not None:
                self.notify(
                    "quiet",
                    since=_iso(self.last_arrival),
                    quiet_seconds=round(now - self.last_arrival, 1),
                )


@dataclass
class WatchResult:
    """What a watch did, for the exit code and the final summary."""

    summary: RunSummary
    pending: list[tuple[str, str]] = field(default_factory=list)
    published: int = 0
    outcomes: int = 0
