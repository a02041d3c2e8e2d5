"""When a recording in a watched folder may be processed: the format's own completeness
check (through the format registry) and the quiet time a file must then stay unchanged.

:func:`readiness` is the one place watch asks a format; :class:`SettleTracker` is pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crunchctl.config import Settings
    from crunchctl.formats.base import Readiness

#: Seconds a recording its format proves complete must keep its size and mtime (copy tools
#: set the mtime right after the last byte) before it is processed.
QUIET = 0.1
#: Seconds between own stats of a recording being written (fastest, and after backing off).
RECHECK_MIN = 0.25
RECHECK_MAX = 5.0


def readiness(path: str, settings: Settings | None = None) -> Readiness:
    """Whether the recording at ``path`` is complete, per its format (docs/formats.md).

    ``complete`` True: the format proves it whole (``.tiq``: every byte its header
    announces); False: it proves it is not (the reason says why); None: only a settle time
    can tell (also for a file no format claims). A file its format cannot read counts as
    complete: processing records its error.
    """
    from crunchctl import formats
    from crunchctl.formats.base import ReadOptions

    forced = settings.format if settings is not None else None
    return formats.readiness(path, ReadOptions.from_settings(settings), forced)


def pending_reason(path: str, settings: Settings | None = None) -> str:
    """Why a recording that is not done is pending: its format's reason, or not done yet."""
    state = readiness(path, settings)
    return state.reason if state.complete is False and state.reason else "not done yet"


class SettleTracker:
    """Decides when a file has settled: size and mtime unchanged for ``settle`` seconds.

    Pure: it is fed observations ``(path, size, mtime_ns, now)`` and never looks at a clock
    or a file system, so it is easy to test.

    Args:
        settle: seconds a (size, mtime) must be observed unchanged; 0 settles at once.
    """

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._seen: dict[str, tuple[int, int, float]] = {}

    def observe(self, path: str, size: int, mtime_ns: int, now: float) -> bool:
        """Record an observation; return True when the file has settled.

        The clock starts at the first observation of a (size, mtime) pair; any change
        restarts it.
        """
        prev = self._seen.get(path)
        if prev is None or (prev[0], prev[1]) != (size, mtime_ns):
            self._seen[path] = (size, mtime_ns, now)
            return self.settle <= 0
        return now - prev[2] >= self.settle

    def due(self, path: str) -> float | None:
        """When the file will have settled if nothing changes (None if unknown)."""
        prev = self._seen.get(path)
        return None if prev is None else prev[2] + self.settle

    def forget(self, path: str) -> None:
        self._seen.pop(path, None)

    def __contains__(self, path: object) -> bool:
        return path in self._seen

    def __len__(self) -> int:
        return len(self._seen)


def written_long_ago(mtime_ns: int, now_wall: float) -> bool:
    """Last written longer ago than the quiet time (moved in, or found by a scan)."""
    return now_wall - mtime_ns / 1e9 >= QUIET


def stalled(mtime_ns: int, now_wall: float, minutes: float | None) -> bool:
    """``--incomplete-after``: an incomplete recording last written ``minutes`` ago or
    longer is processed as far as it goes (its recorder stopped). Every write moves the
    mtime, so the mtime alone tells how long it has not grown, across restarts too.
    """
    return bool(minutes) and now_wall - mtime_ns / 1e9 >= minutes * 60.0  # type: ignore[operator]
