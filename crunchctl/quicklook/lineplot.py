"""Drawing a mean spectrum with its lines marked (``<stem>_spectrum.png``).

matplotlib's object API (Figure + Agg, no pyplot), safe in worker processes.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

#: Points drawn across the picture: longer spectra are cut into this many cells and each
#: cell drawn by its minimum and maximum, so a line one bin wide stays visible.
_POINTS = 2400
#: Lines labelled with frequency and power, strongest first.
_LABELLED = 5


def envelope(
    freqs: np.ndarray, db: np.ndarray, points: int = _POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) drawing the min and max of each of ``points`` cells of a long spectrum."""
    n = db.size
    if n <= 2 * points:
        return freqs, db
    factor = -(-n // points)
    starts = np.arange(0, n, factor)
    lo = np.minimum.reduceat(db, starts)
    hi = np.maximum.reduceat(db, starts)
    x = np.repeat(freqs[starts], 2)
    y = np.column_stack([lo, hi]).ravel()
    return x, y


def spectrum_png(
    freqs: np.ndarray,
    power: np.ndarray,
    peaks: list[Any],
    *,
    title: str,
    label: str,
    center: float,
    db_range: tuple[float, float] | None = None,
    dpi: int = 110,
) -> bytes:
    """The mean power in dB against frequency, each peak marked and labelled."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from crunchctl.quicklook.peaks import to_db
    from crunchctl.quicklook.render import fmt_hz, freq_scale

    db = to_db(power)
    span = float(freqs[-1] - freqs[0]) if freqs.size > 1 else 1.0
    div, unit = freq_scale(span)
    fig = Figure(figsize=(12.0, 5.0), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.07, 0.11, 0.9, 0.78))
    x, y = envelope(np.asarray(freqs, dtype=np.float64), db)
    ax.plot((x - center) / div, y, lw=0.7, color="#1f4e79")
    for rank, p in enumerate(peaks):
        fx = (p.frequency_hz - center) / div
        ax.plot([fx], [p.power_db], marker="v", color="#c0392b", ms=6)
        # The strongest lines get their numbers; the rest their rank (the CSV has all).
        text = (
            f"{fmt_hz(p.frequency_hz)}\n{p.power_db:.1f} dB" if rank < _LABELLED else f"{rank + 1}"
        )
        ax.annotate(
            text,
            (fx, p.power_db),
            textcoords="offset points",
            xytext=(0, 8 + 18 * (rank % 2) * (rank < _LABELLED)),
            ha="center",
            fontsize=7,
            color="#c0392b",
        )
    if db_range is not None:
        ax.set_ylim(*db_range)
    else:
        top = max([float(np.max(db))] + [p.power_db for p in peaks])
        ax.set_ylim(float(np.percentile(db, 1)) - 3.0, top + 12.0)
    ax.set_xlim((freqs[0] - center) / div, (freqs[-1] - center) / div)
    ax.set_xlabel(f"frequency offset from {fmt_hz(center)} ({unit})")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    fig.text(
        0.07,
        0.965,
        title + "   (mean spectrum)",
        fontsize=11,
        fontweight="bold",
        ha="left",
        va="top",
    )
    fig.text(
        0.07,
        0.925,
        f"{len(peaks)} lines marked, strongest first; numbers in <stem>_peaks.csv",
        fontsize=8,
        ha="left",
        va="top",
        color="0.25",
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
