"""The zoom: the bins within ``zoom_span`` around ``zoom_center``, averaged every ``n_avg``
frames. The one zoom computation, used by the quicklook (chunk by chunk) and by the batch
``iq`` loader (whole arrays).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from crunchctl.errors import FormatError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ZoomWindow:
    """Which bins and frames make the zoom of one recording.

    Args:
        start, stop: the bins (columns of the shifted spectrum) in the span.
        centre: the zoom centre, absolute Hz.
        span: Hz.
        n_avg: frames per averaged row.
        nframes: frames of the recording's spectrogram.
        notes: what was clamped to what the recording has (one line each), for the
            outcome's warning.
    """

    start: int
    stop: int
    centre: float
    span: float
    n_avg: int
    nframes: int
    notes: tuple[str, ...] = ()

    @property
    def columns(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def rows(self) -> int:
        """Averaged rows: one per whole group of ``n_avg`` frames (a partial tail is
        dropped); all frames make one row when there are fewer than ``n_avg``."""
        if self.n_avg <= 1:
            return self.nframes
        return max(1, self.nframes // self.n_avg)

    def freqs(self, freqs: np.ndarray) -> np.ndarray:
        return freqs[self.start : self.stop]

    def times(self, lframes: int, sample_rate: float) -> np.ndarray:
        """Start time of each averaged row, s."""
        from crunchctl.quicklook import spectrum

        return spectrum.time_axis(self.nframes, lframes, sample_rate, self.n_avg)[: self.rows]


def zoom_window(
    path: str,
    freqs: np.ndarray,
    center_frequency: float,
    *,
    zoom_center: float,
    zoom_span: float,
    n_avg: int,
    nframes: int,
) -> ZoomWindow:
    """The zoom of a recording whose shifted bins are at ``freqs`` (absolute Hz).

    ``zoom_center`` is an offset from ``center_frequency``, as in the settings.

    Raises:
        FormatError: fewer than two bins of the recording fall in the span (one line
            naming the file).
    """
    from crunchctl.quicklook import spectrum
    from crunchctl.quicklook.render import fmt_hz

    centre = center_frequency + zoom_center
    sl = spectrum.zoom_slice(freqs, centre, zoom_span)
    if sl.stop - sl.start < 2:
        raise FormatError(
            f"{path}: zoom window {fmt_hz(zoom_span)} around {fmt_hz(centre)} lies outside "
            f"the recording's span ({fmt_hz(freqs[0])} to {fmt_hz(freqs[-1])})"
        )
    notes = []
    # Ask for more than the recording has and get what it has, said once, labelled true.
    bin_hz = float(freqs[1] - freqs[0]) if len(freqs) > 1 else 0.0
    shown = (sl.stop - sl.start) * bin_hz
    span = zoom_span
    if bin_hz and zoom_span > shown + bin_hz:
        span = shown
        notes.append(
            f"zoom span {fmt_hz(zoom_span)} is wider than what the recording has "
            f"there: the zoom shows {fmt_hz(shown)}"
        )
    n_avg = max(1, n_avg)
    if n_avg > max(1, nframes):
        notes.append(
            f"n_avg {n_avg} is more than the recording's {nframes} frames: the zoom "
            f"averages all {nframes}"
        )
        n_avg = max(1, nframes)
    return ZoomWindow(sl.start, sl.stop, centre, span, n_avg, nframes, tuple(notes))


class ZoomAverager:
    """Averages the zoom columns of power chunks as they come; ``add`` returns the rows
    completed by a chunk, ``finish`` the last one when there were fewer frames than
    ``n_avg``.

    Each row is the float64 sum of its ``n_avg`` frames in frame order, divided by
    ``n_avg``, as float32: what ``power[:, cols].reshape(-1, n_avg, n).mean(axis=1,
    dtype=float64)`` gives, whatever the chunking.
    """

    def __init__(self, window: ZoomWindow) -> None:
        import numpy as np

        self.window = window
        self._acc = np.zeros(window.stop - window.start, dtype=np.float64)
        self._in_acc = 0
        self._frames = 0
        self._emitted = 0

    def add(self, power: np.ndarray) -> np.ndarray | None:
        """Take the next frames (k, nbins) of the spectrogram; return completed rows."""
        import numpy as np

        w = self.window
        cols = power[:, w.start : w.stop]
        k = cols.shape[0]
        first = self._frames
        self._frames += k
        if self._frames > w.nframes:
            raise ValueError(f"got more than {w.nframes} frames")
        if w.n_avg <= 1:
            self._emitted += k
            return cols
        groups = w.nframes // w.n_avg
        # Frames past the last whole group are dropped, unless there is no whole group.
        usable = groups * w.n_avg if groups else w.nframes
        take = max(0, min(k, usable - first))
        rows = []
        for i in range(take):
            np.add(self._acc, cols[i], out=self._acc)
            self._in_acc += 1
            if groups and self._in_acc == w.n_avg:
                rows.append(self._row(w.n_avg))
        if not rows:
            return None
        return np.stack(rows) if len(rows) > 1 else rows[0][np.newaxis, :]

    def _row(self, count: int) -> np.ndarray:
        import numpy as np

        row = np.true_divide(self._acc, count).astype(np.float32)
        self._acc[:] = 0.0
        self._in_acc = 0
        self._emitted += 1
        return row

    def finish(self) -> np.ndarray | None:
        """The single row of a recording with fewer frames than ``n_avg``, else None."""
        w = self.window
        if self._frames != w.nframes:
            raise ValueError(f"got {self._frames} frames, expected {w.nframes}")
        if w.n_avg > 1 and w.nframes // w.n_avg == 0 and self._in_acc:
            return self._row(self._in_acc)[None, :]
        return None


@dataclass
class Zoom:
    """A computed zoom: averaged power (rows, bins) float32 with its axes."""

    power: np.ndarray
    freqs: np.ndarray
    times: np.ndarray
    window: ZoomWindow


def zoom_of(
    path: str,
    power: np.ndarray,
    freqs: np.ndarray,
    center_frequency: float,
    sample_rate: float,
    settings: object,
) -> Zoom:
    """The zoom of a whole spectrogram in memory, per the settings' ``zoom_center``,
    ``zoom_span`` and ``n_avg`` (the batch loader's entry; the quicklook streams).

    Raises:
        FormatError: the zoom span holds fewer than two bins of the recording.
    """
    import numpy as np

    nframes, lframes = power.shape
    window = zoom_window(
        path,
        freqs,
        center_frequency,
        zoom_center=settings.zoom_center,  # type: ignore[attr-defined]
        zoom_span=settings.zoom_span,  # type: ignore[attr-defined]
        n_avg=settings.n_avg,
        nframes=nframes,
    )  # type: ignore[attr-defined]
    averager = ZoomAverager(window)
    parts = [averager.add(power)]
    parts.append(averager.finish())
    rows = [p for p in parts if p is not None]
    averaged = rows[0] if len(rows) == 1 else np.concatenate(rows)
    return Zoom(averaged, window.freqs(freqs), window.times(lframes, sample_rate), window)
