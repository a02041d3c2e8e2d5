"""What a watch shows while it runs and returns at the end: the panel's snapshot, the
reporter callbacks (rich panel or plain lines live in ``cli/watch.py``) and the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crunchctl.run.engine import RunSummary
    from crunchctl.run.outcome import Outcome


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


class WatchReporter:
    """Callbacks of a watch; the CLI plugs in a rich panel or plain lines, tests nothing."""

    def start(self, snapshot: WatchSnapshot) -> None: ...
    def update(self, snapshot: WatchSnapshot) -> None: ...
    def item_done(self, outcome: Outcome, published: list[str]) -> None: ...
    def waiting(self, path: str, reason: str) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self, snapshot: WatchSnapshot) -> None: ...


@dataclass
class WatchResult:
    """What a watch did, for the exit code and the final summary."""

    summary: RunSummary
    pending: list[tuple[str, str]] = field(default_factory=list)
    published: int = 0
    outcomes: int = 0
